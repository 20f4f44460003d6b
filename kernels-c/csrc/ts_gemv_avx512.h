/* ts_gemv_avx512.h — the AVX-512 GEMV of Q5_0 and Q8_0 (decode), their several-column form (a
 * batched decode step, also for Q4_1 and Q5_1), and TS_Q32_FAST, its hook in the
 * per-32 entry points.
 * Part of ts_kernels.c (included once, after ts_simd.h and the tier's TS_FN / TS_COLS settings);
 * not a standalone header. */
#ifndef TS_GEMV_AVX512_H
#define TS_GEMV_AVX512_H

#if defined(TS_ISA_AVX512)
/* ---- AVX-512 GEMV of Q5_0 and Q8_0 ------------------------------------------------------ */
/* Decode (one activation column) reads every weight once, so the work per byte decides whether
 * the kernel keeps up with memory. Two Q5_0 blocks (44 bytes) are one masked 64-byte load
 * (Q8_0's codes two 32-byte loads); one word permute lays their codes out as [low nibbles |
 * high nibbles] per block, a per-word shift and a mask make the 64 unsigned codes, the Q5 high bits enter as a byte mask
 * (kmov from the two qh words, a masked add of 16), and a second permute spreads the two f16
 * scales over their eight int32 lanes. The activations are prepared once per call: codes
 * contiguous, the block scales and the offset start values (-OFF times the block sum) already
 * in lane order, so a pair costs one vpdpbusd, one conversion, one multiply and one fma. */
#define TS_GV 8192 /* activation elements prepared per pass */
typedef struct {
    int8_t qs[TS_GV] __attribute__((aligned(64)));
    float da[TS_GV / 64][16] __attribute__((aligned(64)));  /* lanes 0-7: block 2p, 8-15: 2p+1 */
    int32_t c0[TS_GV / 64][16] __attribute__((aligned(64))); /* lane start values, q32_lane_offsets */
} ts_gv_act;

/* The activations of nblk q8a blocks in the pair kernels' layout (an odd last block pairs with
 * zeros). */
static void gv_prepare(const ts_block_q8a *a, int64_t nblk, int off, ts_gv_act *p) {
    for (int64_t b = 0; b < ((nblk + 1) & ~(int64_t)1); b++) {
        const int in = b < nblk, l = (int)(b & 1) * 8;
        if (in)
            memcpy(p->qs + 32 * b, a[b].qs, 32);
        else
            memset(p->qs + 32 * b, 0, 32);
        for (int j = 0; j < 8; j++) p->da[b / 2][l + j] = in ? a[b].d : 0.0f;
        q32_lane_offsets(in ? a[b].qs : NULL, off, &p->c0[b / 2][l]);
    }
}

/* Word indices of a block pair: codes of block 0 at word q0 (8 words, taken twice: low then high
 * nibbles), of block 1 at word q1; the scales at words d0 and d1. */
#define GV_IDX_QS(q0, q1)                                                                      \
    _mm512_set_epi16(q1 + 7, q1 + 6, q1 + 5, q1 + 4, q1 + 3, q1 + 2, q1 + 1, q1, q1 + 7, q1 + 6, \
                     q1 + 5, q1 + 4, q1 + 3, q1 + 2, q1 + 1, q1, q0 + 7, q0 + 6, q0 + 5, q0 + 4,  \
                     q0 + 3, q0 + 2, q0 + 1, q0, q0 + 7, q0 + 6, q0 + 5, q0 + 4, q0 + 3, q0 + 2,  \
                     q0 + 1, q0)
#define GV_IDX_D(d0, d1) \
    _mm256_set_epi16(d1, d1, d1, d1, d1, d1, d1, d1, d0, d0, d0, d0, d0, d0, d0, d0)

/* One block pair of a weight row (TWO: whether the second block exists) against the prepared
 * activations of pair pi, added to acc. KIND: GV_Q5_0 (the high bits: 4 bytes at offset 2 of
 * each block) or GV_Q8_0 (34-byte blocks: the codes as two 32-byte loads, biased by
 * 128 to unsigned). */
#define GV_Q5_0 1
#define GV_Q8_0 2
#define GV_Q4_1 3 /* the several-column kernel only: codes as Q5_0's without the high bits, and a
                   * min per block (f16 at byte 2) */
#define GV_Q5_1 4 /* the several-column kernel only: Q5_0's codes (high bits at byte 4) and
                   * Q4_1's min (byte 2) */
#define GV_HAS_MIN(kind) ((kind) == GV_Q4_1 || (kind) == GV_Q5_1)
/* A block pair of a weight row, decoded: the 64 unsigned codes and the two f16 scales as floats
 * (block 0's in lanes 0-7, block 1's in 8-15). TWO: whether the second block exists. */
static inline __attribute__((always_inline)) void gv_decode(const uint8_t *pb, int two, int bytes, int kind, __m512i iqs,
                                                            __m256i id, __m512i *q_out, __m512 *dw_out) {
    const __m512i shift = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0,
                                           0x0004000400040004, 0x0004000400040004, 0, 0);
    /* A pair of Q8_0 blocks is 68 bytes, so a full 64-byte load stays inside it. */
    const __m512i raw = kind == GV_Q8_0 && two
                            ? _mm512_loadu_si512(pb)
                            : _mm512_maskz_loadu_epi8(two ? (1ull << (2 * bytes)) - 1 : (1ull << bytes) - 1, pb);
    __m512i q;
    if (kind == GV_Q8_0) {
        const __m256i q1 = two ? _mm256_loadu_si256((const __m256i *)(pb + bytes + 2)) : _mm256_setzero_si256();
        q = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(pb + 2))), q1, 1),
                             _mm512_set1_epi8((char)0x80));
    } else {
        q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi16(iqs, raw), shift), _mm512_set1_epi8(15));
    }
    if (kind == GV_Q5_0 || kind == GV_Q5_1) {
        const int at = kind == GV_Q5_1 ? 4 : 2; /* the high bits' offset in the block */
        uint32_t h0, h1 = 0;
        memcpy(&h0, pb + at, 4);
        if (two) memcpy(&h1, pb + bytes + at, 4);
        q = _mm512_mask_add_epi8(q, _cvtu64_mask64((uint64_t)h0 | (uint64_t)h1 << 32), q, _mm512_set1_epi8(16));
    }
    const __m256i dh = kind == GV_Q8_0 ? _mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_castsi256_si512(id), raw))
                                       : _mm256_permutexvar_epi16(id, _mm512_castsi512_si256(raw));
    *q_out = q;
    *dw_out = _mm512_cvtph_ps(dh);
}

/* A decoded block pair against one column's prepared pair (its 64 codes, 16 lane scales and 16
 * lane start values), added to that column's chain. */
static inline __attribute__((always_inline)) __m256 gv_col(__m256 acc, __m512i q, __m512 dw, int two, const int8_t *qs,
                                                           const float *da, const int32_t *c0) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(c0), q, _mm512_load_si512(qs));
    const __m512 prod = _mm512_cvtepi32_ps(dot);
    const __m512 scale = _mm512_mul_ps(dw, _mm512_load_ps(da));
    /* Block after block into one eight-lane chain, as llama.cpp's vec_dot sums. */
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(prod), _mm512_castps512_ps256(scale), acc);
    if (two)
        acc = _mm256_fmadd_ps(_mm512_extractf32x8_ps(prod, 1), _mm512_extractf32x8_ps(scale, 1), acc);
    return acc;
}

/* One block pair of a weight row against the prepared activations of pair pi, added to acc.
 * KIND: GV_Q5_0 (the high bits: 4 bytes at offset 2 of each block) or GV_Q8_0 (34-byte blocks:
 * the codes as two 32-byte loads, biased by 128 to unsigned). */
static inline __attribute__((always_inline)) __m256 gv_pair(__m256 acc, const uint8_t *pb, int two, const ts_gv_act *p,
                                                            int64_t pi, int bytes, int kind, __m512i iqs, __m256i id) {
    __m512i q;
    __m512 dw;
    gv_decode(pb, two, bytes, kind, iqs, id, &q, &dw);
    return gv_col(acc, q, dw, two, p->qs + 64 * pi, p->da[pi], p->c0[pi]);
}

/* NR (1 or 2, a constant after inlining) weight rows of nblk blocks of BYTES bytes, WS bytes
 * apart, against the prepared activations into v[0..NR): one accumulation chain per row, the
 * activation loads shared. */
static inline __attribute__((always_inline)) void gv_rows_nr(const uint8_t *wr, size_t ws, int nr, int64_t nblk,
                                                             const ts_gv_act *p, int bytes, int kind, __m512i iqs,
                                                             __m256i id, __m256 *keep, int first, int last,
                                                             float *v) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    if (!first)
        for (int k = 0; k < nr; k++) acc[k] = keep[k];
    const int64_t npairs = nblk / 2;
    for (int64_t pi = 0; pi < npairs; pi++)
        for (int k = 0; k < nr; k++) {
            __builtin_prefetch(wr + k * ws + 2 * pi * bytes + TS_PREFETCH);
            acc[k] = gv_pair(acc[k], wr + k * ws + 2 * pi * bytes, 1, p, pi, bytes, kind, iqs, id);
        }
    if (nblk & 1)
        for (int k = 0; k < nr; k++)
            acc[k] = gv_pair(acc[k], wr + k * ws + (nblk - 1) * bytes, 0, p, npairs, bytes, kind, iqs, id);
    for (int k = 0; k < nr; k++) {
        if (last)
            v[k] = ts_acc_sum(acc[k]);
        else
            keep[k] = acc[k];
    }
}

#define TS_GV_RB 64 /* rows whose chains wait in registers saved between passes (rows over TS_GV) */
static void gv_rows(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, float *y, int64_t n,
                    int bytes, int kind, int off, __m512i iqs, __m256i id) {
    ts_gv_act p;
    __m256 keep[TS_GV_RB];
    /* A row longer than one pass keeps one chain through every pass: rows in blocks of TS_GV_RB,
     * each block's chains saved between passes. */
    const int64_t rb = n <= TS_GV ? nrows : TS_GV_RB;
    for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb) {
        const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;
        for (int64_t e0 = 0; e0 < n; e0 += TS_GV) {
            const int64_t nblk = (n - e0 < TS_GV ? n - e0 : TS_GV) / 32;
            const int first = e0 == 0, last = e0 + TS_GV >= n;
            gv_prepare(a + e0 / 32, nblk, off, &p);
            const uint8_t *w0 = (const uint8_t *)w + (e0 / 32) * bytes;
            for (int64_t r = rb0; r < r1; r += 2) {
                float v[2];
                __m256 *kr = keep + (r - rb0) % TS_GV_RB;
                if (r + 1 < r1)
                    gv_rows_nr(w0 + r * ws, ws, 2, nblk, &p, bytes, kind, iqs, id, kr, first, last, v);
                else
                    gv_rows_nr(w0 + r * ws, ws, 1, nblk, &p, bytes, kind, iqs, id, kr, first, last, v);
                if (last)
                    for (int k = 0; k < 2 && r + k < r1; k++) y[r + k] = v[k];
            }
        }
    }
}

/* ---- Several columns: a batched decode step ----------------------------------------------
 * Up to GX_MAXC columns (one per sequence) share each decoded block pair, and two columns share
 * each vector: for block b of the pair, lanes 0-7 carry column 2j's eight-lane chain and lanes
 * 8-15 column 2j+1's, against the block's codes and scale taken into both halves. Each lane does
 * what the one-column GEMV's lane does (the same int32 sum, conversion, scale product and fma,
 * block after block), so every column gets the bits it would get alone, at one vpdpbusd,
 * conversion, multiply and fma per block and two columns. The activations are prepared per
 * column pair for TS_GVM elements at a time (24 KiB for eight columns; an odd last column pairs
 * with zeros); rows longer than that keep their chains between passes in blocks of TS_GVM_RB
 * rows. Q4_1 and Q5_1 (codes without offset, so the lane start values are zero) add their min
 * terms per row in one more chain whose lane c is column c (two multiplies and adds per block
 * pair for all columns), and each column's result is its lanes' sum plus its min lane, as the
 * one-column kernel (llama.cpp's vec_dot) adds them. */
#define GX_MAXC 8
#define TS_GVM 1024
#define TS_GVM_RB 32
typedef struct {
    int8_t qs[GX_MAXC / 2][TS_GVM / 32][64] __attribute__((aligned(64))); /* block b: column 2j | 2j+1 */
    float da[GX_MAXC / 2][TS_GVM / 32][16] __attribute__((aligned(64)));
    int32_t c0[GX_MAXC / 2][TS_GVM / 32][16] __attribute__((aligned(64)));
    float sd[TS_GVM / 32][GX_MAXC] __attribute__((aligned(32))); /* Q4_1, Q5_1: block b's sd, lane = column */
} ts_gvm_act;

/* Column c's nblk blocks into half h of column pair j = c / 2 (zeros for a column that does not
 * exist): codes, scales, the lane start values -off * (sum of the lane's four codes) from one
 * vpdpbusd with ones (off is 16 or 128; 0 for Q4_1 and Q5_1, whose codes have no offset), and
 * the blocks' f16-rounded sums for their min terms. */
static inline void gvm_prepare(const ts_block_q8a *a, int64_t nblk, int off, ts_gvm_act *p, int c) {
    const int j = c / 2, h = c & 1;
    const __m256i ones = _mm256_set1_epi8(1);
    const __m128i sh = _mm_cvtsi32_si128(off ? __builtin_ctz((unsigned)off) : 0);
    for (int64_t b = 0; b < nblk; b++) {
        const __m256i q = a ? _mm256_loadu_si256((const __m256i *)a[b].qs) : _mm256_setzero_si256();
        _mm256_store_si256((__m256i *)(p->qs[j][b] + 32 * h), q);
        _mm256_store_ps(&p->da[j][b][8 * h], _mm256_set1_ps(a ? a[b].d : 0.0f));
        const __m256i s4 = off ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q) : _mm256_setzero_si256();
        _mm256_store_si256((__m256i *)&p->c0[j][b][8 * h], _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(s4, sh)));
        p->sd[b][c] = a ? a[b].sd : 0.0f;
    }
}

/* Q4_1's (or Q5_1's) min terms of a block pair of one row, for every column at once (lane c: column c):
 * mins += m0 * sd(block 0), then mins += m1 * sd(block 1) — rounded product, rounded sum, block
 * after block, as the one-column kernel sums them (llama.cpp's summs). */
static inline __attribute__((always_inline)) __m256 gvm_mins(__m256 mins, const uint8_t *pb, int two, int bytes,
                                                            const ts_gvm_act *p, int64_t b) {
    /* The two f16 mins (words 1 and bytes / 2 + 1), each over eight lanes. A load of its own
     * (from L1): taking them from gv_decode's load of the pair measured 3-5 % slower for Q4_1
     * (criterion gemv4, 2026-12-07, EPYC VM), Q5_1 about 2 % faster. */
    const __m256i raw = _mm256_maskz_loadu_epi8(two ? 0xFFFFFFFFu : (1u << bytes) - 1, pb);
    const __m512 m = _mm512_cvtph_ps(_mm256_permutexvar_epi16(GV_IDX_D(1, bytes / 2 + 1), raw));
    mins = _mm256_add_ps(mins, _mm256_mul_ps(_mm512_castps512_ps256(m), _mm256_load_ps(p->sd[b])));
    if (two) mins = _mm256_add_ps(mins, _mm256_mul_ps(_mm512_extractf32x8_ps(m, 1), _mm256_load_ps(p->sd[b + 1])));
    return mins;
}

/* One block (codes qb and scales db in both halves) against column pair j's block b. */
static inline __attribute__((always_inline)) __m512 gvm_block(__m512 acc, __m512i qb, __m512 db, const ts_gvm_act *p, int j,
                                                             int64_t b) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(p->c0[j][b]), qb, _mm512_load_si512(p->qs[j][b]));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(db, _mm512_load_ps(p->da[j][b])), acc);
}

/* NR rows (1 or 2) of nblk blocks against NP prepared column pairs (both constants after
 * inlining): one chain per row and column pair. keep: these rows' chains between passes, row
 * k's at keep[k * GX_MAXC / 2 + j]; out gets them at the same places when last. keepm: the min
 * chains (Q4_1, Q5_1) of the rows (lane c: column c), kept the same way. */
static inline __attribute__((always_inline)) void gvm_rows_nr(const uint8_t *wr, size_t ws, int nr, int np, int64_t nblk,
                                                              const ts_gvm_act *p, int bytes, int kind, __m512i iqs,
                                                              __m256i id, __m512 *keep, __m256 *keepm, int first,
                                                              __m512 *out) {
    __m512 acc[2][GX_MAXC / 2];
    __m256 mins[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int k = 0; k < nr; k++) {
        for (int j = 0; j < np; j++) acc[k][j] = first ? _mm512_setzero_ps() : keep[k * GX_MAXC / 2 + j];
        if (GV_HAS_MIN(kind) && !first) mins[k] = keepm[k];
    }
    const int64_t npairs = nblk / 2;
    for (int64_t pi = 0; pi < npairs; pi++)
        for (int k = 0; k < nr; k++) {
            const uint8_t *pb = wr + k * ws + 2 * pi * bytes;
            __builtin_prefetch(pb + TS_PREFETCH);
            __m512i q;
            __m512 dw;
            gv_decode(pb, 1, bytes, kind, iqs, id, &q, &dw);
            const __m512i q0 = _mm512_shuffle_i64x2(q, q, 0x44), q1 = _mm512_shuffle_i64x2(q, q, 0xEE);
            const __m512 d0 = _mm512_shuffle_f32x4(dw, dw, 0x44), d1 = _mm512_shuffle_f32x4(dw, dw, 0xEE);
            for (int j = 0; j < np; j++) {
                acc[k][j] = gvm_block(acc[k][j], q0, d0, p, j, 2 * pi);
                acc[k][j] = gvm_block(acc[k][j], q1, d1, p, j, 2 * pi + 1);
            }
            if (GV_HAS_MIN(kind)) mins[k] = gvm_mins(mins[k], pb, 1, bytes, p, 2 * pi);
        }
    if (nblk & 1)
        for (int k = 0; k < nr; k++) {
            __m512i q;
            __m512 dw;
            gv_decode(wr + k * ws + (nblk - 1) * bytes, 0, bytes, kind, iqs, id, &q, &dw);
            const __m512i q0 = _mm512_shuffle_i64x2(q, q, 0x44);
            const __m512 d0 = _mm512_shuffle_f32x4(dw, dw, 0x44);
            for (int j = 0; j < np; j++) acc[k][j] = gvm_block(acc[k][j], q0, d0, p, j, nblk - 1);
            if (GV_HAS_MIN(kind)) mins[k] = gvm_mins(mins[k], wr + k * ws + (nblk - 1) * bytes, 0, bytes, p, nblk - 1);
        }
    for (int k = 0; k < nr; k++) {
        for (int j = 0; j < np; j++) out[k * GX_MAXC / 2 + j] = acc[k][j];
        if (GV_HAS_MIN(kind)) keepm[k] = mins[k];
    }
}

static inline __attribute__((always_inline)) void gvm_rows(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a,
                                                           size_t as, int nc, float *y, size_t ys, int64_t n, int bytes,
                                                           int kind, int off, __m512i iqs, __m256i id) {
    ts_gvm_act p;
    __m512 keep[TS_GVM_RB][GX_MAXC / 2];
    __m256 keepm[TS_GVM_RB]; /* Q4_1, Q5_1: each row's min chains, lane c: column c */
    const int np = (nc + 1) / 2;
    const int64_t rb = n <= TS_GVM ? nrows : TS_GVM_RB;
    for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb) {
        const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;
        for (int64_t e0 = 0; e0 < n; e0 += TS_GVM) {
            const int64_t nblk = (n - e0 < TS_GVM ? n - e0 : TS_GVM) / 32;
            const int first = e0 == 0, last = e0 + TS_GVM >= n;
            for (int c = 0; c < 2 * np; c++)
                gvm_prepare(c < nc ? (const ts_block_q8a *)((const uint8_t *)a + c * as) + e0 / 32 : NULL, nblk, off, &p, c);
            /* The min lanes of the missing columns: zeros, not whatever the stack held. */
            if (GV_HAS_MIN(kind))
                for (int64_t b = 0; b < nblk; b++)
                    for (int c = 2 * np; c < GX_MAXC; c++) p.sd[b][c] = 0.0f;
            const uint8_t *w0 = (const uint8_t *)w + (e0 / 32) * bytes;
            for (int64_t r = rb0; r < r1; r += 2) {
                __m512 *kr = keep[(r - rb0) % TS_GVM_RB];
                /* Rows r and r + 1 are at the same place in the row block (r - rb0 is even). */
                __m256 *kmr = keepm + (r - rb0) % TS_GVM_RB;
                const int nr = r + 1 < r1 ? 2 : 1;
                if (nr == 2)
                    gvm_rows_nr(w0 + r * ws, ws, 2, np, nblk, &p, bytes, kind, iqs, id, kr, kmr, first, kr);
                else
                    gvm_rows_nr(w0 + r * ws, ws, 1, np, nblk, &p, bytes, kind, iqs, id, kr, kmr, first, kr);
                if (last)
                    for (int k = 0; k < nr; k++) {
                        float mins[8] = {0};
                        if (GV_HAS_MIN(kind)) _mm256_storeu_ps(mins, kmr[k]);
                        for (int c = 0; c < nc; c++) {
                            const __m512 v = kr[k * GX_MAXC / 2 + c / 2];
                            const float lanes = ts_acc_sum(c & 1 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v));
                            /* llama.cpp's vec_dot: the lanes' sum, then the min terms added. */
                            y[c * ys + r + k] = GV_HAS_MIN(kind) ? lanes + mins[c] : lanes;
                        }
                    }
            }
        }
    }
}

/* Whether the product was done here: one column (decode), or two to GX_MAXC columns (a batched
 * decode step, or the last few tokens of a prompt) through the shared decode. More columns go
 * to the lane GEMM (ts_lanes.h), whose unpacked row blocks pay off from there on. */
#define GX_FN(T, BYTES, KIND, OFF, IQS, ID)                                                            \
    static int gx_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                      int64_t ncols, float *y, size_t ys, int64_t n) {                                 \
        switch (ncols) {                                                                               \
        case 1: /* Q4_1, Q5_1: the generic block kernel (no min chain in gv_rows) */                    \
            if (GV_HAS_MIN(KIND)) return 0;                                                            \
            gv_rows(w, ws, nrows, a, y, n, BYTES, KIND, OFF, IQS, ID);                                 \
            return 1;                                                                                  \
        case 2: gvm_rows(w, ws, nrows, a, as, 2, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 3: gvm_rows(w, ws, nrows, a, as, 3, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 4: gvm_rows(w, ws, nrows, a, as, 4, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 5: gvm_rows(w, ws, nrows, a, as, 5, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 6: gvm_rows(w, ws, nrows, a, as, 6, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 7: gvm_rows(w, ws, nrows, a, as, 7, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        case 8: gvm_rows(w, ws, nrows, a, as, 8, y, ys, n, BYTES, KIND, OFF, IQS, ID); return 1;       \
        default: return 0;                                                                             \
        }                                                                                              \
    }
GX_FN(q5_0, 22, GV_Q5_0, 16, GV_IDX_QS(3, 14), GV_IDX_D(0, 11))
GX_FN(q8_0, 34, GV_Q8_0, 128, _mm512_setzero_si512(), GV_IDX_D(0, 17))
GX_FN(q4_1, 20, GV_Q4_1, 0, GV_IDX_QS(2, 12), GV_IDX_D(0, 10))
GX_FN(q5_1, 24, GV_Q5_1, 0, GV_IDX_QS(4, 16), GV_IDX_D(0, 12))

#define GX_NONE(T)                                                                                   \
    static int gx_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                      int64_t ncols, float *y, size_t ys, int64_t n) {                                 \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;    \
        return 0;                                                                                      \
    }
GX_NONE(q4_0) /* llama.cpp's repacked order: ts_bsum.h */
GX_NONE(iq4_nl)
GX_NONE(q2_0)
#define TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n) gx_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif /* TS_GEMV_AVX512_H */
