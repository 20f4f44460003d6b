/* NEON and NEON+dotprod matrix kernels of the aarch64 tiers for the per-32 types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, IQ4_NL). Included by ts_kernels.c after the block layouts; the others (Q2_0,
 * the K-quants) take the generic templates, which sum in the x86 orders on every tier
 * (ts_simd.h's eight-lane accumulators).
 *
 * llama.cpp's ARM build sums in orders of its own (its NEON vec_dot per type, its repacked
 * kernels), and its results differ from its x86 build's (the reference) in the last bits, enough
 * to change a greedy token now and then. These kernels sum in the x86 build's orders instead, so
 * an ARM board computes the same bits as the x86 reference (tests/parity.rs under qemu-aarch64,
 * kernels-c/tests/orders.rs: every tier equals the scalar tier), at the lowest work per weight
 * those orders allow (instructions per token, bench/arm-insns against llama.cpp under qemu):
 *
 *   - Four weight rows at a time. A block of each row is decoded straight into registers (codes
 *     as int8 vectors: nibbles with AND / shift, Q5 high bits through one table lookup and a bit
 *     test per 16 codes) and multiplied with the block's activations by SDOT (two per 32 codes;
 *     the neon tier builds SDOT's lanes from SMULL and pairwise adds).
 *   - Q4_0 (Q32_BLOCK): the four rows' int32 partial sums are reduced together by three pairwise
 *     adds, so a block costs one conversion and one fused multiply-add for four rows (rows in
 *     the float lanes); the offset of 8 leaves through the activations (-8 times the block's
 *     integer sum, prepared per call).
 *   - The lane types (Q32_LANES): each output keeps eight float lanes, the two SDOT results of a
 *     block converted and fused-multiply-added with the row's dw*da taken from a vector lane;
 *     Q4_1/Q5_1's min terms one chain per output (rows in lanes).
 *   - Activations are prepared once per call and column (codes contiguous, scales and offset
 *     terms in arrays), NV_KC elements per pass, the chains carried from pass to pass. */
#ifndef TS_NEON_H
#define TS_NEON_H

#if defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)

#define NV_ROWS 4     /* weight rows per group (the lanes of the float accumulators) */
#define NV_COLS 8     /* activation columns per decoded weight block */
#define NV_KC 4096    /* activation elements of each column prepared per pass */

/* acc plus the dot products of a and b, four consecutive products per int32 lane (SDOT); the
 * neon tier sums the same 16 products into other lanes. Products stay within int16 pair sums
 * (|w| <= 128, |a| <= 127). */
static inline int32x4_t nv_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(TS_ISA_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
#endif
}

/* nv_sdot with SDOT's lanes on every tier: lane i sums the products of bytes 4i..4i+3 (the neon
 * tier pays one instruction more than nv_sdot). */
static inline int32x4_t nv_sdot_lanes(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(TS_ISA_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    return vpadalq_s16(acc, vpaddq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vmull_high_s8(a, b)));
#endif
}

/* The 32 codes of one block: elements 0-15 and 16-31. */
typedef struct {
    int8x16_t lo, hi;
} nv_w32;

/* dot(w, a) over 32 codes as four int32 partial sums. */
static inline int32x4_t nv_dot32(nv_w32 w, int8x16_t a0, int8x16_t a1) {
    return nv_sdot(nv_sdot(vdupq_n_s32(0), w.lo, a0), w.hi, a1);
}

/* The totals of four rows' partial sums, row r in lane r (three pairwise adds). */
static inline int32x4_t nv_sum4(int32x4_t p0, int32x4_t p1, int32x4_t p2, int32x4_t p3) {
    return vpaddq_s32(vpaddq_s32(p0, p1), vpaddq_s32(p2, p3));
}

/* The block headers of four rows (each block's first 16 bytes: the f16 scale, for some types
 * an f16 min after it) as [scales of rows 0-3 | mins of rows 0-3] (three zips). */
static inline float16x8_t nv_hdr4(uint8x16_t v0, uint8x16_t v1, uint8x16_t v2, uint8x16_t v3) {
    const uint16x8_t t01 = vzip1q_u16(vreinterpretq_u16_u8(v0), vreinterpretq_u16_u8(v1));
    const uint16x8_t t23 = vzip1q_u16(vreinterpretq_u16_u8(v2), vreinterpretq_u16_u8(v3));
    return vreinterpretq_f16_u32(vzip1q_u32(vreinterpretq_u32_u16(t01), vreinterpretq_u32_u16(t23)));
}

/* ---- decoders: one block of 32 codes into registers ------------------------------------ */
/* Each takes the block and its first 16 bytes (loaded once for the scale gather). */

static inline nv_w32 nv_nibbles(const uint8_t *qs) {
    const uint8x16_t q = vld1q_u8(qs);
    const nv_w32 w = {vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(15))), vreinterpretq_s8_u8(vshrq_n_u8(q, 4))};
    return w;
}

/* Nibble codes plus 16 where the Q5 high bit is set (bit j of the four bytes at byte `at` of the
 * header v, for code j): one table lookup spreads each qh byte over its eight codes, a bit test
 * makes the mask (0 or -1), and a multiply-add of the mask by -16 adds the 16. */
static inline nv_w32 nv_q5_high(nv_w32 w, uint8x16_t v, int at) {
    const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t i0 = vaddq_u8(vcombine_u8(vdup_n_u8(0), vdup_n_u8(1)), vdupq_n_u8((uint8_t)at));
    const uint8x16_t m0 = vtstq_u8(vqtbl1q_u8(v, i0), bit), m1 = vtstq_u8(vqtbl1q_u8(v, vaddq_u8(i0, vdupq_n_u8(2))), bit);
    const uint8x16_t c = vdupq_n_u8(0xF0); /* -16: a mask of -1 times -16 adds 16 */
    w.lo = vreinterpretq_s8_u8(vmlaq_u8(vreinterpretq_u8_s8(w.lo), m0, c));
    w.hi = vreinterpretq_s8_u8(vmlaq_u8(vreinterpretq_u8_s8(w.hi), m1, c));
    return w;
}

static inline nv_w32 nv_dec_q4_0(const uint8_t *b, uint8x16_t v) { (void)v; return nv_nibbles(b + 2); }
static inline nv_w32 nv_dec_q4_1(const uint8_t *b, uint8x16_t v) { (void)v; return nv_nibbles(b + 4); }
static inline nv_w32 nv_dec_q5_0(const uint8_t *b, uint8x16_t v) { return nv_q5_high(nv_nibbles(b + 6), v, 2); }
static inline nv_w32 nv_dec_q5_1(const uint8_t *b, uint8x16_t v) { return nv_q5_high(nv_nibbles(b + 8), v, 4); }
static inline nv_w32 nv_dec_q8_0(const uint8_t *b, uint8x16_t v) {
    (void)v;
    const nv_w32 w = {vld1q_s8((const int8_t *)b + 2), vld1q_s8((const int8_t *)b + 18)};
    return w;
}
static inline nv_w32 nv_dec_iq4_nl(const uint8_t *b, uint8x16_t v) {
    (void)v;
    const int8x16_t kv = vld1q_s8(kvalues_iq4nl);
    nv_w32 w = nv_nibbles(b + 2);
    w.lo = vqtbl1q_s8(kv, vreinterpretq_u8_s8(w.lo));
    w.hi = vqtbl1q_s8(kv, vreinterpretq_u8_s8(w.hi));
    return w;
}

/* ---- prepared activations ------------------------------------------------------------- */

/* Per-32 types: the codes of nc columns contiguous, the block scales, the min factor (Q4_1/Q5_1:
 * llama.cpp's f16-rounded scaled block sum) and the offset term (-offset * block sum). */
typedef struct {
    int8_t qs[NV_COLS][NV_KC] __attribute__((aligned(16)));
    float da[NV_COLS][NV_KC / 32];
    float mx[NV_COLS][NV_KC / 32];
    int32_t off[NV_COLS][NV_KC / 32];
} nv_act32;

static void nv_prep32(const ts_block_q8a *a, size_t as, int nc, int64_t b0, int64_t nb, int off, int mins,
                      nv_act32 *p) {
    for (int c = 0; c < nc; c++) {
        const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)a + c * as) + b0;
        for (int64_t b = 0; b < nb; b++) {
            memcpy(p->qs[c] + 32 * b, col[b].qs, 32);
            p->da[c][b] = col[b].d;
            if (mins) p->mx[c][b] = col[b].sd;
            if (off) p->off[c][b] = -off * ((int32_t)col[b].s[0] + col[b].s[1]);
        }
    }
}

/* Writes the four rows' results of nc columns; nr rows are real. */
static inline void nv_store(const float32x4_t *acc, int nc, float *y, size_t ys, int nr) {
    for (int c = 0; c < nc; c++) {
        float *yc = y + c * ys;
        if (nr == NV_ROWS) {
            vst1q_f32(yc, acc[c]);
        } else {
            float t[NV_ROWS];
            vst1q_f32(t, acc[c]);
            for (int i = 0; i < nr; i++) yc[i] = t[i];
        }
    }
}

/* The chains of four rows and nc columns so far: y's values (a later pass), else zero. */
static inline void nv_load(float32x4_t *acc, int nc, const float *y, size_t ys, int nr, int from_y) {
    for (int c = 0; c < nc; c++) {
        float t[NV_ROWS] = {0};
        for (int i = 0; i < nr && from_y; i++) t[i] = y[c * ys + i];
        acc[c] = vld1q_f32(t);
    }
}

/* The row pointers of the group at r0 (rows past the end repeat the last row; their results are
 * not stored). */
static inline void nv_rows_at(const void *w, size_t ws, int64_t nrows, int64_t r0, size_t off, const uint8_t **rp) {
    for (int i = 0; i < NV_ROWS; i++)
        rp[i] = (const uint8_t *)w + (r0 + i < nrows ? r0 + i : nrows - 1) * ws + off;
}

/* ---- per-32 types ------------------------------------------------------------------------ */

/* Q4_0 in llama.cpp's x86 order (Q32_BLOCK: per block the integer total, offset included, then
 * acc = fma(float(total), dw*da, acc), one chain per output through the row): four rows of nb
 * blocks against nc prepared columns, continuing the chains in out[0..nc). nv_dec_T decodes a block;
 * OFF: the code offset; MINS: the block carries an f16 min after its f16 scale. For one column
 * (decode) the rows' partial sums run on through the row (no zeroing per block) and a block's
 * totals are the difference of consecutive four-row totals, exact modulo 2^32 as its true value
 * fits in int32. */
#define NV_DEFINE_Q32(T, BYTES, OFF, MINS)                                                            \
    static inline __attribute__((always_inline)) void nv_rows_##T(const uint8_t *const *rp, int64_t nb, \
                                                                    const nv_act32 *p, int nc,          \
                                                                    float32x4_t *out) {                 \
        const uint8_t *r0 = rp[0], *r1 = rp[1], *r2 = rp[2], *r3 = rp[3];                               \
        float32x4_t acc[NV_COLS];                                                                       \
        for (int c = 0; c < nc; c++) acc[c] = out[c]; /* the chains so far */                           \
        int32x4_t q0 = vdupq_n_s32(0), q1 = q0, q2 = q0, q3 = q0, prev = q0; /* running sums (nc 1) */ \
        for (int64_t b = 0; b < nb; b++) {                                                              \
            const uint8x16_t v0 = vld1q_u8(r0), v1 = vld1q_u8(r1), v2 = vld1q_u8(r2), v3 = vld1q_u8(r3); \
            const nv_w32 w0 = nv_dec_##T(r0, v0), w1 = nv_dec_##T(r1, v1), w2 = nv_dec_##T(r2, v2),     \
                         w3 = nv_dec_##T(r3, v3);                                                       \
            const float16x8_t h = nv_hdr4(v0, v1, v2, v3);                                              \
            const float32x4_t d4 = vcvt_f32_f16(vget_low_f16(h));                                       \
            for (int c = 0; c < nc; c++) {                                                              \
                const int8_t *ab = p->qs[c] + 32 * b;                                                   \
                const int8x16_t a0 = vld1q_s8(ab), a1 = vld1q_s8(ab + 16);                              \
                int32x4_t s;                                                                            \
                if (nc == 1) {                                                                          \
                    q0 = nv_sdot(nv_sdot(q0, w0.lo, a0), w0.hi, a1);                                    \
                    q1 = nv_sdot(nv_sdot(q1, w1.lo, a0), w1.hi, a1);                                    \
                    q2 = nv_sdot(nv_sdot(q2, w2.lo, a0), w2.hi, a1);                                    \
                    q3 = nv_sdot(nv_sdot(q3, w3.lo, a0), w3.hi, a1);                                    \
                    const int32x4_t t = nv_sum4(q0, q1, q2, q3);                                        \
                    s = vsubq_s32(t, prev);                                                             \
                    prev = t;                                                                           \
                } else {                                                                                \
                    s = nv_sum4(nv_dot32(w0, a0, a1), nv_dot32(w1, a0, a1), nv_dot32(w2, a0, a1),       \
                                nv_dot32(w3, a0, a1));                                                  \
                }                                                                                       \
                if (OFF) s = vaddq_s32(s, vdupq_n_s32(p->off[c][b]));                                   \
                acc[c] = vfmaq_f32(acc[c], vcvtq_f32_s32(s), vmulq_n_f32(d4, p->da[c][b]));             \
                if (MINS) acc[c] = vfmaq_n_f32(acc[c], vcvt_high_f32_f16(h), p->mx[c][b]);              \
            }                                                                                           \
            r0 += (BYTES);                                                                              \
            r1 += (BYTES);                                                                              \
            r2 += (BYTES);                                                                              \
            r3 += (BYTES);                                                                              \
        }                                                                                               \
        for (int c = 0; c < nc; c++) out[c] = acc[c];                                                   \
    }                                                                                                   \
    static int nv_mm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                         int64_t ncols, float *y, size_t ys, int64_t n) {                               \
        nv_act32 p;                                                                                     \
        const int64_t nb_all = n / 32;                                                                  \
        for (int64_t c0 = 0; c0 < ncols; c0 += NV_COLS) {                                               \
            const int nc = (int)(ncols - c0 < NV_COLS ? ncols - c0 : NV_COLS);                          \
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);              \
            for (int64_t b0 = 0; b0 < nb_all; b0 += NV_KC / 32) {                                       \
                const int64_t nb = nb_all - b0 < NV_KC / 32 ? nb_all - b0 : NV_KC / 32;                 \
                nv_prep32(ac, as, nc, b0, nb, (OFF), (MINS), &p);                                       \
                for (int64_t r0 = 0; r0 < nrows; r0 += NV_ROWS) {                                       \
                    const uint8_t *rp[NV_ROWS];                                                         \
                    nv_rows_at(w, ws, nrows, r0, (size_t)b0 * (BYTES), rp);                             \
                    const int nr = nrows - r0 < NV_ROWS ? (int)(nrows - r0) : NV_ROWS;                 \
                    float32x4_t acc[NV_COLS];                                                           \
                    nv_load(acc, nc, y + c0 * ys + r0, ys, nr, b0 > 0);                                 \
                    if (nc == 1)                                                                        \
                        nv_rows_##T(rp, nb, &p, 1, acc);                                                \
                    else if (nc == NV_COLS)                                                             \
                        nv_rows_##T(rp, nb, &p, NV_COLS, acc);                                          \
                    else                                                                                \
                        nv_rows_##T(rp, nb, &p, nc, acc);                                               \
                    nv_store(acc, nc, y + c0 * ys + r0, ys, nr);                                        \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        return 1;                                                                                       \
    }

NV_DEFINE_Q32(q4_0, 18, 8, 0)

/* The types llama.cpp's x86 build sums in int32 lanes (Q32_LANES: Q4_1, Q5_0, Q5_1, Q8_0,
 * IQ4_NL), in that order: per output eight float lanes (two quarters), fed block after block
 * with fma(float(lane), dw*da, acc), lane j the int32 sum of products 4j..4j+3 (SDOT's lanes
 * over the two 16-byte halves, on the neon tier too); at the end hsum_float_8's pairs; the min
 * terms (Q4_1/Q5_1) one chain per output in block order (mins += m*sd, the product rounded),
 * added after. Lanes of signed codes: Q5_0's lanes start at -16 times their four activations
 * (two SDOTs per column and block, shared by the four rows). Four rows and
 * up to NV_LCOLS columns per decoded block (the chains of 4 x NV_LCOLS outputs in registers). */
#define NV_LCOLS 2
#define NV_LRB 64 /* rows whose chains wait between passes (rows over NV_KC elements) */
typedef struct {
    float32x4_t lo[NV_ROWS], hi[NV_ROWS];
    float32x4_t mins; /* row r in lane r */
} nv_lchain;
static inline float nv_hsum8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t s = vaddq_f32(lo, hi);
    const float32x4_t t = vaddq_f32(s, vextq_f32(s, s, 2));
    return vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 1);
}
#define NV_DEFINE_LANES(T, BYTES, OFF, MINS)                                                          \
    static inline __attribute__((always_inline)) void nv_lrows_##T(const uint8_t *const *rp, int64_t nb, \
                                                                     const nv_act32 *p, int nc,         \
                                                                     nv_lchain *ch) {                   \
        const uint8_t *r0 = rp[0], *r1 = rp[1], *r2 = rp[2], *r3 = rp[3];                               \
        nv_lchain c_[NV_LCOLS];                                                                         \
        for (int c = 0; c < nc; c++) c_[c] = ch[c];                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                              \
            const uint8x16_t v0 = vld1q_u8(r0), v1 = vld1q_u8(r1), v2 = vld1q_u8(r2), v3 = vld1q_u8(r3); \
            const nv_w32 w[NV_ROWS] = {nv_dec_##T(r0, v0), nv_dec_##T(r1, v1), nv_dec_##T(r2, v2),      \
                                       nv_dec_##T(r3, v3)};                                             \
            const float16x8_t h = nv_hdr4(v0, v1, v2, v3);                                              \
            const float32x4_t d4 = vcvt_f32_f16(vget_low_f16(h));                                       \
            for (int c = 0; c < nc; c++) {                                                              \
                const int8_t *ab = p->qs[c] + 32 * b;                                                   \
                const int8x16_t a0 = vld1q_s8(ab), a1 = vld1q_s8(ab + 16);                              \
                const float32x4_t s4 = vmulq_n_f32(d4, p->da[c][b]); /* dw*da, row r in lane r */      \
                /* Lanes of signed codes: each starts at -OFF times its four activations. */           \
                const int32x4_t st0 = (OFF) ? nv_sdot_lanes(vdupq_n_s32(0), a0, vdupq_n_s8(-(OFF))) : vdupq_n_s32(0); \
                const int32x4_t st1 = (OFF) ? nv_sdot_lanes(vdupq_n_s32(0), a1, vdupq_n_s8(-(OFF))) : vdupq_n_s32(0); \
                for (int i = 0; i < NV_ROWS; i++) {                                                     \
                    const int32x4_t l0 = nv_sdot_lanes(st0, w[i].lo, a0);                               \
                    const int32x4_t l1 = nv_sdot_lanes(st1, w[i].hi, a1);                               \
                    if (i == 0) {                                                                       \
                        c_[c].lo[0] = vfmaq_laneq_f32(c_[c].lo[0], vcvtq_f32_s32(l0), s4, 0);           \
                        c_[c].hi[0] = vfmaq_laneq_f32(c_[c].hi[0], vcvtq_f32_s32(l1), s4, 0);           \
                    } else if (i == 1) {                                                                \
                        c_[c].lo[1] = vfmaq_laneq_f32(c_[c].lo[1], vcvtq_f32_s32(l0), s4, 1);           \
                        c_[c].hi[1] = vfmaq_laneq_f32(c_[c].hi[1], vcvtq_f32_s32(l1), s4, 1);           \
                    } else if (i == 2) {                                                                \
                        c_[c].lo[2] = vfmaq_laneq_f32(c_[c].lo[2], vcvtq_f32_s32(l0), s4, 2);           \
                        c_[c].hi[2] = vfmaq_laneq_f32(c_[c].hi[2], vcvtq_f32_s32(l1), s4, 2);           \
                    } else {                                                                            \
                        c_[c].lo[3] = vfmaq_laneq_f32(c_[c].lo[3], vcvtq_f32_s32(l0), s4, 3);           \
                        c_[c].hi[3] = vfmaq_laneq_f32(c_[c].hi[3], vcvtq_f32_s32(l1), s4, 3);           \
                    }                                                                                   \
                }                                                                                       \
                if (MINS)                                                                               \
                    c_[c].mins = vaddq_f32(c_[c].mins, vmulq_n_f32(vcvt_high_f32_f16(h), p->mx[c][b]));  \
            }                                                                                           \
            r0 += (BYTES);                                                                              \
            r1 += (BYTES);                                                                              \
            r2 += (BYTES);                                                                              \
            r3 += (BYTES);                                                                              \
        }                                                                                               \
        for (int c = 0; c < nc; c++) ch[c] = c_[c];                                                     \
    }                                                                                                   \
    static int nv_mm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                         int64_t ncols, float *y, size_t ys, int64_t n) {                               \
        nv_act32 p;                                                                                     \
        nv_lchain keep[NV_LRB / NV_ROWS][NV_LCOLS];                                                     \
        const int64_t nb_all = n / 32;                                                                  \
        const int64_t rb = nb_all <= NV_KC / 32 ? nrows : NV_LRB;                                       \
        for (int64_t c0 = 0; c0 < ncols; c0 += NV_LCOLS) {                                              \
            const int nc = (int)(ncols - c0 < NV_LCOLS ? ncols - c0 : NV_LCOLS);                        \
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);              \
            for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb) {                                             \
                const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;                                 \
                for (int64_t b0 = 0; b0 < nb_all; b0 += NV_KC / 32) {                                   \
                    const int64_t nb = nb_all - b0 < NV_KC / 32 ? nb_all - b0 : NV_KC / 32;             \
                    const int first = b0 == 0, last = b0 + nb == nb_all;                               \
                    nv_prep32(ac, as, nc, b0, nb, 0, (MINS), &p);                                       \
                    for (int64_t r0 = rb0; r0 < r1; r0 += NV_ROWS) {                                    \
                        const uint8_t *rp[NV_ROWS];                                                     \
                        nv_rows_at(w, ws, nrows, r0, (size_t)b0 * (BYTES), rp);                         \
                        nv_lchain *ch = keep[((r0 - rb0) / NV_ROWS) % (NV_LRB / NV_ROWS)];              \
                        if (first)                                                                      \
                            for (int c = 0; c < nc; c++) {                                              \
                                for (int i = 0; i < NV_ROWS; i++) ch[c].lo[i] = ch[c].hi[i] = vdupq_n_f32(0); \
                                ch[c].mins = vdupq_n_f32(0);                                            \
                            }                                                                           \
                        if (nc == NV_LCOLS)                                                             \
                            nv_lrows_##T(rp, nb, &p, NV_LCOLS, ch);                                     \
                        else                                                                            \
                            nv_lrows_##T(rp, nb, &p, 1, ch);                                            \
                        if (!last) continue;                                                            \
                        const int nr = nrows - r0 < NV_ROWS ? (int)(nrows - r0) : NV_ROWS;              \
                        for (int c = 0; c < nc; c++) {                                                  \
                            float m[NV_ROWS];                                                           \
                            vst1q_f32(m, ch[c].mins);                                                   \
                            for (int i = 0; i < nr; i++)                                                \
                                y[(c0 + c) * ys + r0 + i] = nv_hsum8(ch[c].lo[i], ch[c].hi[i]) + m[i];  \
                        }                                                                               \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        return 1;                                                                                       \
    }
NV_DEFINE_LANES(q4_1, 20, 0, 1)
NV_DEFINE_LANES(q5_0, 22, 16, 0)
NV_DEFINE_LANES(q5_1, 24, 0, 1)
NV_DEFINE_LANES(q8_0, 34, 0, 0)
NV_DEFINE_LANES(iq4_nl, 18, 0, 0)

/* The types without a kernel here take the generic templates. */
#define NV_NONE(T)                                                                                     \
    static int nv_mm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,     \
                         int64_t ncols, float *y, size_t ys, int64_t n) {                              \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;    \
        return 0;                                                                                      \
    }
NV_NONE(q2_0)
NV_NONE(q2_k)
NV_NONE(q3_k)
NV_NONE(q4_k)
NV_NONE(q5_k)
NV_NONE(q6_k)

#define TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n) nv_mm_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
