/* NEON and NEON+dotprod matrix kernels of the aarch64 tiers. Included by ts_kernels.c after the
 * block layouts; every quantized type of the test models has one here (per-32: Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, IQ4_NL; Q2_0; K-quants: Q4_K, Q5_K, Q6_K); the others take the generic templates.
 *
 * The x86 tiers sum in the orders of llama.cpp's x86 kernels; llama.cpp's ARM build sums in yet
 * other orders (its NEON vec_dot per type, its repacked 4x4 / 8x4 kernels for some), so on ARM the
 * order is ours: integer sums exact per block, float accumulation per block in a fixed order. What
 * these kernels minimise is the work per weight (instructions per token, measured by
 * bench/arm-insns against llama.cpp under qemu):
 *
 *   - Four weight rows at a time. A block of each row is decoded straight into registers (codes
 *     as int8 vectors: nibbles with AND / shift, Q5 high bits through one table lookup and a bit
 *     test per 16 codes), multiplied with the block's activations by SDOT (two per 32 codes), and
 *     the four rows' int32 partial sums are reduced together by three pairwise adds, so that the
 *     block scales of the four rows are applied with one conversion and one fused multiply-add
 *     (rows in the four float lanes) instead of a horizontal sum per row.
 *   - Code offsets (Q4_0's 8, Q5_0's 16, Q2_0's 1) leave through the activations: -offset times
 *     the activation block's integer sum, prepared once per call and added to the four rows' sums
 *     at once; Q4_1/Q5_1 mins are one fused multiply-add with llama.cpp's f16-rounded block sum.
 *   - Activations are prepared once per call and column (codes contiguous, scales and offset
 *     terms in arrays), NV_KC elements per pass; the same row loop serves decode (one column)
 *     and prefill (up to NV_COLS columns per decoded block).
 *   - The neon tier (no dotprod) replaces SDOT by SMULL/SMLAL2/SADALP on the same vectors: its
 *     lanes group the 16 products differently, which no kernel depends on (a block's or
 *     sub-block's products are always summed whole). */
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

/* Writes (or adds, for a later pass) the four rows' results of nc columns; nr rows are real. */
static inline void nv_store(const float32x4_t *acc, int nc, float *y, size_t ys, int nr, int accumulate) {
    for (int c = 0; c < nc; c++) {
        float *yc = y + c * ys;
        if (nr == NV_ROWS) {
            vst1q_f32(yc, accumulate ? vaddq_f32(vld1q_f32(yc), acc[c]) : acc[c]);
        } else {
            float t[NV_ROWS];
            vst1q_f32(t, acc[c]);
            for (int i = 0; i < nr; i++) yc[i] = accumulate ? yc[i] + t[i] : t[i];
        }
    }
}

/* The row pointers of the group at r0 (rows past the end repeat the last row; their results are
 * not stored). */
static inline void nv_rows_at(const void *w, size_t ws, int64_t nrows, int64_t r0, size_t off, const uint8_t **rp) {
    for (int i = 0; i < NV_ROWS; i++)
        rp[i] = (const uint8_t *)w + (r0 + i < nrows ? r0 + i : nrows - 1) * ws + off;
}

/* ---- per-32 types ------------------------------------------------------------------------ */

/* Four rows of nb blocks against nc prepared columns, into out[0..nc). nv_dec_T decodes a block;
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
        for (int c = 0; c < nc; c++) acc[c] = vdupq_n_f32(0);                                           \
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
                    float32x4_t acc[NV_COLS];                                                           \
                    for (int c = 0; c < NV_COLS; c++) acc[c] = vdupq_n_f32(0);                          \
                    if (nc == 1)                                                                        \
                        nv_rows_##T(rp, nb, &p, 1, acc);                                                \
                    else if (nc == NV_COLS)                                                             \
                        nv_rows_##T(rp, nb, &p, NV_COLS, acc);                                          \
                    else                                                                                \
                        nv_rows_##T(rp, nb, &p, nc, acc);                                               \
                    nv_store(acc, nc, y + c0 * ys + r0, ys, nrows - r0 < NV_ROWS ? (int)(nrows - r0) : NV_ROWS, \
                             b0 > 0);                                                                   \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
        return 1;                                                                                       \
    }

NV_DEFINE_Q32(q4_0, 18, 8, 0)
NV_DEFINE_Q32(q4_1, 20, 0, 1)
NV_DEFINE_Q32(q5_0, 22, 16, 0)
NV_DEFINE_Q32(q5_1, 24, 0, 1)
NV_DEFINE_Q32(q8_0, 34, 0, 0)
NV_DEFINE_Q32(iq4_nl, 18, 0, 0)

/* ---- Q2_0: 64 codes per block, one scale ------------------------------------------------ */
/* Code j sits at bits 2*(j%4) of byte j/4, so the four bit-planes of the 16 code bytes hold the
 * codes 4i+p (plane p, byte i): four masks and shifts decode a block if the activations come in
 * the same order, which the preparation makes once per call (LD4 de-interleaves 64 bytes by
 * four). Plane bytes 0-7 are the first 32 elements and 8-15 the second, so SDOT lanes 0-1 and
 * 2-3 are the two activation blocks (each with its own scale): one pairwise add gives two rows'
 * [block 0, block 1] sums, which take the activation scales [da0, da1, da0, da1]. */
typedef struct {
    int8_t qs[NV_COLS][NV_KC] __attribute__((aligned(16))); /* plane order per 64 */
    float da[NV_COLS][NV_KC / 64][4];                       /* da0, da1, da0, da1 */
    int32_t off[NV_COLS][NV_KC / 64][4];                    /* -sum0, -sum1, -sum0, -sum1 */
} nv_act64;

static void nv_prep64(const ts_block_q8a *a, size_t as, int nc, int64_t b0, int64_t nb, nv_act64 *p) {
    for (int c = 0; c < nc; c++) {
        const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)a + c * as) + 2 * b0;
        for (int64_t b = 0; b < nb; b++) {
            int8_t t[64];
            memcpy(t, col[2 * b].qs, 32);
            memcpy(t + 32, col[2 * b + 1].qs, 32);
            const int8x16x4_t pl = vld4q_s8(t);
            for (int k = 0; k < 4; k++) vst1q_s8(p->qs[c] + 64 * b + 16 * k, pl.val[k]);
            for (int k = 0; k < 4; k++) {
                const ts_block_q8a *ab = &col[2 * b + (k & 1)];
                p->da[c][b][k] = ab->d;
                p->off[c][b][k] = -((int32_t)ab->s[0] + ab->s[1]);
            }
        }
    }
}

static inline int32x4_t nv_dot_q2_0(uint8x16_t x, const int8_t *a) {
    const uint8x16_t m = vdupq_n_u8(3);
    int32x4_t p = nv_sdot_lanes(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(x, m)), vld1q_s8(a));
    p = nv_sdot_lanes(p, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(x, 2), m)), vld1q_s8(a + 16));
    p = nv_sdot_lanes(p, vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(x, 4), m)), vld1q_s8(a + 32));
    return nv_sdot_lanes(p, vreinterpretq_s8_u8(vshrq_n_u8(x, 6)), vld1q_s8(a + 48));
}

static inline __attribute__((always_inline)) void nv_rows_q2_0(const uint8_t *const *rp, int64_t nb,
                                                              const nv_act64 *p, int nc, float32x4_t *out) {
    const uint8_t *r0 = rp[0], *r1 = rp[1], *r2 = rp[2], *r3 = rp[3];
    float32x4_t acc01[NV_COLS], acc23[NV_COLS]; /* lanes: rows 0/1 (or 2/3) x the two halves */
    for (int c = 0; c < nc; c++) acc01[c] = acc23[c] = vdupq_n_f32(0);
    for (int64_t b = 0; b < nb; b++) {
        const uint8x16_t v0 = vld1q_u8(r0), v1 = vld1q_u8(r1), v2 = vld1q_u8(r2), v3 = vld1q_u8(r3);
        const uint8x16_t x0 = vld1q_u8(r0 + 2), x1 = vld1q_u8(r1 + 2), x2 = vld1q_u8(r2 + 2), x3 = vld1q_u8(r3 + 2);
        const float32x4_t d4 = vcvt_f32_f16(vget_low_f16(nv_hdr4(v0, v1, v2, v3)));
        const float32x4_t d01 = vzip1q_f32(d4, d4), d23 = vzip2q_f32(d4, d4);
        for (int c = 0; c < nc; c++) {
            const int8_t *ab = p->qs[c] + 64 * b;
            const int32x4_t off = vld1q_s32(p->off[c][b]);
            const float32x4_t da = vld1q_f32(p->da[c][b]);
            const int32x4_t s01 = vaddq_s32(vpaddq_s32(nv_dot_q2_0(x0, ab), nv_dot_q2_0(x1, ab)), off);
            const int32x4_t s23 = vaddq_s32(vpaddq_s32(nv_dot_q2_0(x2, ab), nv_dot_q2_0(x3, ab)), off);
            acc01[c] = vfmaq_f32(acc01[c], vcvtq_f32_s32(s01), vmulq_f32(d01, da));
            acc23[c] = vfmaq_f32(acc23[c], vcvtq_f32_s32(s23), vmulq_f32(d23, da));
        }
        r0 += 18;
        r1 += 18;
        r2 += 18;
        r3 += 18;
    }
    for (int c = 0; c < nc; c++) out[c] = vpaddq_f32(acc01[c], acc23[c]);
}

static int nv_mm_q2_0(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, int64_t ncols,
                      float *y, size_t ys, int64_t n) {
    nv_act64 p;
    const int64_t nb_all = n / 64;
    for (int64_t c0 = 0; c0 < ncols; c0 += NV_COLS) {
        const int nc = (int)(ncols - c0 < NV_COLS ? ncols - c0 : NV_COLS);
        const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);
        for (int64_t b0 = 0; b0 < nb_all; b0 += NV_KC / 64) {
            const int64_t nb = nb_all - b0 < NV_KC / 64 ? nb_all - b0 : NV_KC / 64;
            nv_prep64(ac, as, nc, b0, nb, &p);
            for (int64_t r0 = 0; r0 < nrows; r0 += NV_ROWS) {
                const uint8_t *rp[NV_ROWS];
                nv_rows_at(w, ws, nrows, r0, (size_t)b0 * 18, rp);
                float32x4_t acc[NV_COLS];
                if (nc == 1)
                    nv_rows_q2_0(rp, nb, &p, 1, acc);
                else
                    nv_rows_q2_0(rp, nb, &p, nc, acc);
                nv_store(acc, nc, y + c0 * ys + r0, ys, nrows - r0 < NV_ROWS ? (int)(nrows - r0) : NV_ROWS, b0 > 0);
            }
        }
    }
    return 1;
}

/* ---- K-quants: super-blocks of 256 with integer sub-block scales ---------------------------- */
/* A super-block's dot product with one column is, per row, sum_k sc_k * dot(chunk k) (integer,
 * sub-block scales sc_k per 32 or per 16 codes, one multiply-add by a vector lane each) and, for
 * the types with mins, sum_j m_j * (activation sum of sub-block j) (int16 multiply-adds), then
 * d * da * isum - dmin * da * msum in float. Each chunk of 32 codes is decoded into registers
 * (nv_kchunk_T, loads shared between the chunks of a super-block). Decode (one column): four
 * rows in the float lanes, as the per-32 kernels. Prefill: one row at a time with the columns in
 * the lanes, each chunk decoded once and multiplied with every column. */
typedef struct {
    int8_t qs[NV_COLS][NV_KC] __attribute__((aligned(16)));
    float da[NV_KC / 256][NV_COLS]; /* the columns' super-block scales side by side */
    int16_t bs[NV_COLS][NV_KC / 32]; /* per-32 integer sums (the mins' activation side) */
} nv_actk;

static void nv_prepk(const ts_block_q8a *a, size_t as, int nc, int64_t s0, int64_t nsb, nv_actk *p) {
    for (int c = 0; c < NV_COLS; c++) {
        const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * s0;
        for (int64_t sb = 0; sb < nsb; sb++) {
            p->da[sb][c] = c < nc ? col[8 * sb].d : 0.0f;
            if (c >= nc) continue;
            for (int k = 0; k < 8; k++) {
                memcpy(p->qs[c] + 256 * sb + 32 * k, col[8 * sb + k].qs, 32);
                p->bs[c][8 * sb + k] = (int16_t)(col[8 * sb + k].s[0] + col[8 * sb + k].s[1]);
            }
        }
    }
}

/* acc + p * v[lane] (lane a constant after inlining). */
static inline int32x4_t nv_mla_lane(int32x4_t acc, int32x4_t p, int32x4_t v, int lane) {
    switch (lane & 3) {
    case 0: return vmlaq_laneq_s32(acc, p, v, 0);
    case 1: return vmlaq_laneq_s32(acc, p, v, 1);
    case 2: return vmlaq_laneq_s32(acc, p, v, 2);
    default: return vmlaq_laneq_s32(acc, p, v, 3);
    }
}

/* The decoded scales of one super-block: sc[SUB == 32 ? 2 : 4] (int32 lanes, sub-block order),
 * mn the mins (8 x int16, types with mins). */
typedef struct {
    int32x4_t sc[4];
    int16x8_t mn;
} nv_ksc;

/* Q4_K / Q5_K: 6-bit scales and mins of 8 sub-blocks packed in 12 bytes (ggml's get_scale_min_k4,
 * four at a time in 32-bit words). */
static inline nv_ksc nv_k4_scales(const uint8_t *q) {
    uint32_t A, B, C;
    memcpy(&A, q, 4);
    memcpy(&B, q + 4, 4);
    memcpy(&C, q + 8, 4);
    const uint32_t sl = A & 0x3f3f3f3fu, sh = (C & 0x0f0f0f0fu) | ((A >> 2) & 0x30303030u);
    const uint32_t ml = B & 0x3f3f3f3fu, mh = ((C >> 4) & 0x0f0f0f0fu) | ((B >> 2) & 0x30303030u);
    const uint16x8_t s16 = vmovl_u8(vcreate_u8((uint64_t)sl | (uint64_t)sh << 32));
    nv_ksc k;
    k.sc[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(s16)));
    k.sc[1] = vreinterpretq_s32_u32(vmovl_high_u16(s16));
    k.sc[2] = k.sc[3] = vdupq_n_s32(0);
    k.mn = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8((uint64_t)ml | (uint64_t)mh << 32)));
    return k;
}

static inline nv_ksc nv_kscales_q4_k(const uint8_t *b) { return nv_k4_scales(b + 4); }
static inline nv_ksc nv_kscales_q5_k(const uint8_t *b) { return nv_k4_scales(b + 4); }
static inline nv_ksc nv_kscales_q6_k(const uint8_t *b) {
    const int8x16_t s8 = vld1q_s8((const int8_t *)b + 192);
    const int16x8_t lo = vmovl_s8(vget_low_s8(s8)), hi = vmovl_high_s8(s8);
    nv_ksc k;
    k.sc[0] = vmovl_s16(vget_low_s16(lo));
    k.sc[1] = vmovl_high_s16(lo);
    k.sc[2] = vmovl_s16(vget_low_s16(hi));
    k.sc[3] = vmovl_high_s16(hi);
    k.mn = vdupq_n_s16(0);
    return k;
}

/* Chunk k (codes 32k..32k+31) of a super-block. Q4_K: byte i of qs[32(k/2)..] holds code
 * 64(k/2)+i in its low nibble and 64(k/2)+32+i in its high one. */
static inline nv_w32 nv_kchunk_q4_k(const uint8_t *b, int k) {
    const uint8x16_t q0 = vld1q_u8(b + 16 + 32 * (k >> 1)), q1 = vld1q_u8(b + 32 + 32 * (k >> 1));
    nv_w32 w;
    if (k & 1) {
        w.lo = vreinterpretq_s8_u8(vshrq_n_u8(q0, 4));
        w.hi = vreinterpretq_s8_u8(vshrq_n_u8(q1, 4));
    } else {
        w.lo = vreinterpretq_s8_u8(vandq_u8(q0, vdupq_n_u8(15)));
        w.hi = vreinterpretq_s8_u8(vandq_u8(q1, vdupq_n_u8(15)));
    }
    return w;
}
/* Q5_K: as Q4_K (codes at byte 48) plus 16 where bit k of qh[i] is set, code 32k+i. */
static inline nv_w32 nv_kchunk_q5_k(const uint8_t *b, int k) {
    const uint8x16_t q0 = vld1q_u8(b + 48 + 32 * (k >> 1)), q1 = vld1q_u8(b + 64 + 32 * (k >> 1));
    const uint8x16_t h0 = vld1q_u8(b + 16), h1 = vld1q_u8(b + 32), bit = vdupq_n_u8((uint8_t)(1u << k));
    const uint8x16_t c = vdupq_n_u8(0xF0); /* -16 */
    const uint8x16_t n0 = k & 1 ? vshrq_n_u8(q0, 4) : vandq_u8(q0, vdupq_n_u8(15));
    const uint8x16_t n1 = k & 1 ? vshrq_n_u8(q1, 4) : vandq_u8(q1, vdupq_n_u8(15));
    const nv_w32 w = {vreinterpretq_s8_u8(vmlaq_u8(n0, vtstq_u8(h0, bit), c)),
                      vreinterpretq_s8_u8(vmlaq_u8(n1, vtstq_u8(h1, bit), c))};
    return w;
}
/* Q6_K: code = nibble | 2 high bits << 4, minus 32, made signed directly: with the high-bit
 * byte's pairs XORed with 0b10, the pair shifted to bits 6-7 and shifted back arithmetically by 2
 * fills the top nibble with (pair - 2) sign-extended, which is (code - 32) >> 4; the low nibble
 * then comes from the code byte (a bit select for low nibbles, a shift-right-insert for high
 * ones). Chunk k: half n = k/4 (ql + 64n, qh + 32n), j = k%4: ql[0..32] low (pair 0),
 * ql[32..64] low (pair 1), ql[0..32] high (pair 2), ql[32..64] high (pair 3). */
static inline int8x16_t nv_q6(uint8x16_t q, uint8x16_t hx, int j) {
    int8x16_t t = vreinterpretq_s8_u8(hx);
    switch (j) { /* pair j to bits 6-7 */
    case 0: t = vshlq_n_s8(t, 6); break;
    case 1: t = vshlq_n_s8(t, 4); break;
    case 2: t = vshlq_n_s8(t, 2); break;
    default: break;
    }
    t = vshrq_n_s8(t, 2);
    if (j < 2) return vbslq_s8(vdupq_n_u8(0xF0), t, vreinterpretq_s8_u8(q));
    return vreinterpretq_s8_u8(vsriq_n_u8(vreinterpretq_u8_s8(t), q, 4));
}
static inline nv_w32 nv_kchunk_q6_k(const uint8_t *b, int k) {
    const int n = k >> 2, j = k & 3;
    const uint8_t *ql = b + 64 * n + 32 * (j & 1), *qh = b + 128 + 32 * n;
    const uint8x16_t x = vdupq_n_u8(0xAA);
    const nv_w32 w = {nv_q6(vld1q_u8(ql), veorq_u8(vld1q_u8(qh), x), j),
                      nv_q6(vld1q_u8(ql + 16), veorq_u8(vld1q_u8(qh + 16), x), j)};
    return w;
}

/* One row's super-block against one column's activations a (256 codes) and per-32 sums bs:
 * the scaled integer sum (four lanes) and, MINS, the min sum (four lanes). SUB: codes per scale. */
#define NV_KDOT(T, SUB, MINS)                                                                         \
    static inline __attribute__((always_inline)) int32x4_t nv_kdot_##T(const uint8_t *blk, nv_ksc ks,  \
                                                                      const int8_t *a, const int16_t *bs, \
                                                                      int32x4_t *ms) {                 \
        int32x4_t is = vdupq_n_s32(0);                                                                  \
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {                                           \
            const nv_w32 w = nv_kchunk_##T(blk, k);                                                     \
            const int8x16_t a0 = vld1q_s8(a + 32 * k), a1 = vld1q_s8(a + 32 * k + 16);                  \
            if ((SUB) == 32) {                                                                          \
                is = nv_mla_lane(is, nv_dot32(w, a0, a1), ks.sc[k >> 2], k);                            \
            } else {                                                                                    \
                const int32x4_t z = vdupq_n_s32(0);                                                     \
                is = nv_mla_lane(is, nv_sdot(z, w.lo, a0), ks.sc[k >> 1], 2 * k);                       \
                is = nv_mla_lane(is, nv_sdot(z, w.hi, a1), ks.sc[k >> 1], 2 * k + 1);                   \
            }                                                                                           \
        }                                                                                               \
        if (MINS) {                                                                                     \
            const int16x8_t b8 = vld1q_s16(bs);                                                         \
            *ms = vmlal_high_s16(vmull_s16(vget_low_s16(ks.mn), vget_low_s16(b8)), ks.mn, b8);          \
        }                                                                                               \
        return is;                                                                                      \
    }

/* The f16 d of four rows' super-blocks (at byte doff) as floats, and dmin after it where doff is
 * 0 (the types with mins): from their first 16 bytes, or lane by lane at the end of a block. */
static inline void nv_kd4(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3, int doff,
                          float32x4_t *d4, float32x4_t *dm4) {
    if (doff == 0) {
        const float16x8_t h = nv_hdr4(vld1q_u8(b0), vld1q_u8(b1), vld1q_u8(b2), vld1q_u8(b3));
        *d4 = vcvt_f32_f16(vget_low_f16(h));
        *dm4 = vcvt_high_f32_f16(h);
        return;
    }
    uint16x4_t h = vld1_dup_u16((const uint16_t *)(b0 + doff));
    h = vld1_lane_u16((const uint16_t *)(b1 + doff), h, 1);
    h = vld1_lane_u16((const uint16_t *)(b2 + doff), h, 2);
    h = vld1_lane_u16((const uint16_t *)(b3 + doff), h, 3);
    *d4 = vcvt_f32_f16(vreinterpret_f16_u16(h));
    *dm4 = vdupq_n_f32(0);
}

/* d (and dmin) of a K block: Q4_K/Q5_K at offset 0 (d, dmin), Q6_K at 208 (d). */
#define NV_DEFINE_K(T, BYTES, SUB, MINS, DOFF)                                                        \
    NV_KDOT(T, SUB, MINS)                                                                              \
    static void nv_kgemv_##T(const uint8_t *w, size_t ws, int64_t nrows, const nv_actk *p, int64_t nsb, \
                             float *y, int accumulate) {                                               \
        for (int64_t r0 = 0; r0 < nrows; r0 += NV_ROWS) {                                              \
            const uint8_t *rp[NV_ROWS];                                                                \
            nv_rows_at(w, ws, nrows, r0, 0, rp);                                                       \
            float32x4_t acc = vdupq_n_f32(0);                                                          \
            for (int64_t sb = 0; sb < nsb; sb++) {                                                     \
                int32x4_t is[NV_ROWS], ms[NV_ROWS];                                                    \
                for (int r = 0; r < NV_ROWS; r++) {                                                    \
                    const uint8_t *blk = rp[r] + sb * (BYTES);                                         \
                    ms[r] = vdupq_n_s32(0);                                                            \
                    is[r] = nv_kdot_##T(blk, nv_kscales_##T(blk), p->qs[0] + 256 * sb, p->bs[0] + 8 * sb, &ms[r]); \
                }                                                                                      \
                float32x4_t d4, dm4;                                                                   \
                nv_kd4(rp[0] + sb * (BYTES), rp[1] + sb * (BYTES), rp[2] + sb * (BYTES),               \
                       rp[3] + sb * (BYTES), (DOFF), &d4, &dm4);                                       \
                const float da = p->da[sb][0];                                                         \
                acc = vfmaq_f32(acc, vcvtq_f32_s32(nv_sum4(is[0], is[1], is[2], is[3])),               \
                                vmulq_n_f32(d4, da));                                                  \
                if (MINS)                                                                              \
                    acc = vfmsq_f32(acc, vcvtq_f32_s32(nv_sum4(ms[0], ms[1], ms[2], ms[3])),           \
                                    vmulq_n_f32(dm4, da));                                             \
            }                                                                                          \
            nv_store(&acc, 1, y + r0, 1, nrows - r0 < NV_ROWS ? (int)(nrows - r0) : NV_ROWS, accumulate); \
        }                                                                                              \
    }                                                                                                  \
    static inline __attribute__((always_inline)) void nv_kgemm_row_##T(const uint8_t *wr, const nv_actk *p, \
                                                                         int64_t nsb, int nc, float *y,   \
                                                                         size_t ys, int accumulate) {     \
        float32x4_t acc[NV_COLS / 4];                                                                  \
        for (int g = 0; g < NV_COLS / 4; g++) acc[g] = vdupq_n_f32(0);                                 \
        for (int64_t sb = 0; sb < nsb; sb++) {                                                         \
            const uint8_t *blk = wr + sb * (BYTES);                                                    \
            const nv_ksc ks = nv_kscales_##T(blk);                                                     \
            int32x4_t is[NV_COLS], ms[NV_COLS];                                                        \
            for (int c = 0; c < NV_COLS; c++) is[c] = ms[c] = vdupq_n_s32(0);                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {                                      \
                const nv_w32 w = nv_kchunk_##T(blk, k);                                                \
                for (int c = 0; c < nc; c++) {                                                         \
                    const int8_t *a = p->qs[c] + 256 * sb + 32 * k;                                    \
                    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);                           \
                    if ((SUB) == 32) {                                                                 \
                        is[c] = nv_mla_lane(is[c], nv_dot32(w, a0, a1), ks.sc[k >> 2], k);             \
                    } else {                                                                           \
                        const int32x4_t z = vdupq_n_s32(0);                                            \
                        is[c] = nv_mla_lane(is[c], nv_sdot(z, w.lo, a0), ks.sc[k >> 1], 2 * k);        \
                        is[c] = nv_mla_lane(is[c], nv_sdot(z, w.hi, a1), ks.sc[k >> 1], 2 * k + 1);    \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
            if (MINS)                                                                                  \
                for (int c = 0; c < nc; c++) {                                                         \
                    const int16x8_t b8 = vld1q_s16(p->bs[c] + 8 * sb);                                 \
                    ms[c] = vmlal_high_s16(vmull_s16(vget_low_s16(ks.mn), vget_low_s16(b8)), ks.mn, b8); \
                }                                                                                      \
            uint16x4_t hd = vld1_dup_u16((const uint16_t *)(blk + (DOFF)));                            \
            if (MINS) hd = vld1_lane_u16((const uint16_t *)(blk + (DOFF) + 2), hd, 1);                 \
            const float32x4_t dd = vcvt_f32_f16(vreinterpret_f16_u16(hd)); /* d, dmin (MINS) */       \
            for (int g = 0; g < NV_COLS / 4; g++) {                                                    \
                if (4 * g >= nc) break;                                                                \
                const float32x4_t da = vld1q_f32(p->da[sb] + 4 * g);                                   \
                acc[g] = vfmaq_f32(acc[g], vcvtq_f32_s32(nv_sum4(is[4 * g], is[4 * g + 1], is[4 * g + 2], is[4 * g + 3])), \
                                   vmulq_laneq_f32(da, dd, 0));                                        \
                if (MINS)                                                                              \
                    acc[g] = vfmsq_f32(acc[g], vcvtq_f32_s32(nv_sum4(ms[4 * g], ms[4 * g + 1], ms[4 * g + 2], ms[4 * g + 3])), \
                                       vmulq_laneq_f32(da, dd, 1));                                    \
            }                                                                                          \
        }                                                                                              \
        for (int g = 0; g < NV_COLS / 4 && 4 * g < nc; g++) {                                          \
            float t[4];                                                                                \
            vst1q_f32(t, acc[g]);                                                                      \
            for (int i = 0; i < 4 && 4 * g + i < nc; i++) {                                            \
                float *yc = y + (4 * g + i) * ys;                                                      \
                *yc = accumulate ? *yc + t[i] : t[i];                                                  \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    static int nv_mm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,     \
                         int64_t ncols, float *y, size_t ys, int64_t n) {                              \
        nv_actk p;                                                                                     \
        const int64_t nsb_all = n / TS_QK_K;                                                           \
        for (int64_t c0 = 0; c0 < ncols; c0 += NV_COLS) {                                              \
            const int nc = (int)(ncols - c0 < NV_COLS ? ncols - c0 : NV_COLS);                         \
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);             \
            for (int64_t s0 = 0; s0 < nsb_all; s0 += NV_KC / TS_QK_K) {                                \
                const int64_t nsb = nsb_all - s0 < NV_KC / TS_QK_K ? nsb_all - s0 : NV_KC / TS_QK_K;   \
                nv_prepk(ac, as, nc, s0, nsb, &p);                                                     \
                const uint8_t *w0 = (const uint8_t *)w + s0 * (BYTES);                                 \
                if (nc == 1) {                                                                         \
                    nv_kgemv_##T(w0, ws, nrows, &p, nsb, y + c0 * ys, s0 > 0);                         \
                    continue;                                                                          \
                }                                                                                      \
                for (int64_t r = 0; r < nrows; r++) {                                                  \
                    if (nc == NV_COLS)                                                                 \
                        nv_kgemm_row_##T(w0 + r * ws, &p, nsb, NV_COLS, y + c0 * ys + r, ys, s0 > 0);  \
                    else                                                                               \
                        nv_kgemm_row_##T(w0 + r * ws, &p, nsb, nc, y + c0 * ys + r, ys, s0 > 0);       \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        return 1;                                                                                      \
    }

NV_DEFINE_K(q4_k, 144, 32, 1, 0)
NV_DEFINE_K(q5_k, 176, 32, 1, 0)
NV_DEFINE_K(q6_k, 210, 16, 0, 208)

/* The types without a kernel here take the generic templates. */
#define NV_NONE(T)                                                                                     \
    static int nv_mm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,     \
                         int64_t ncols, float *y, size_t ys, int64_t n) {                              \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;    \
        return 0;                                                                                      \
    }
NV_NONE(q2_k)
NV_NONE(q3_k)

#define TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n) nv_mm_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
