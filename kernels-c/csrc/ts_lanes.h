/* AVX-512 GEMM of the per-32 types that llama.cpp sums in int32 lanes (Q32_LANES: Q4_1, Q5_0,
 * Q5_1, Q8_0, IQ4_NL), in exactly that order. Included by ts_kernels.c after the unpackers and
 * the Q32_* order names; used by the avx512 and amx tiers for two or more activation columns.
 *
 * The order: per output, eight float lanes, each fed chunk after chunk with
 * fma(float(lane), dw*da, acc), where a lane is the int32 sum of four consecutive products;
 * at the end the eight lanes are summed as hsum_float_8 does, then the min terms (Q4_1/Q5_1, one
 * scalar chain in chunk order) are added. AMX tiles cannot give those lanes (a tile sums whole
 * chunks), so on the amx tier these types come here too.
 *
 * Two weight rows share one zmm (row 2p in lanes 0-7, row 2p+1 in 8-15): a chunk of one column
 * is one broadcast load, one vpdpbusd, one conversion, one scale product and one fma for 64
 * products, twice the work per instruction of the eight-lane chains. A block of up to LG_ROWS
 * rows is unpacked once (unsigned codes: vpdpbusd takes unsigned times signed, so signed codes
 * are biased by 128) and then used for every column tile of LG_COLS columns. The code offset
 * (that bias, or Q5_0's 16) leaves each lane through its start value, -offset times the sum of
 * the lane's four activations, prepared per column tile for LG_KR chunks at a time (the chains
 * wait in registers saved per row pair between those ranges). Rows up to LG_WBYTES / 2
 * elements take this path (longer ones the generic kernels). */
#ifndef TS_LANES_H
#define TS_LANES_H

#if defined(TS_ISA_AVX512)

#define LG_COLS 16
#define LG_ROWS 16
#define LG_WBYTES 16384 /* unpacked codes of one row block */
#define LG_KR 16        /* chunks per range: the activations prepared per column tile */

/* The unpacked row block: pair p, chunk k at index p * nch + k; codes unsigned (signed ones
 * biased by 128), their offset taken off through the start values. */
typedef struct {
    uint8_t q[LG_WBYTES] __attribute__((aligned(64))); /* 64 codes: row 2p's chunk, then 2p+1's */
    float dw[LG_WBYTES / 32];                          /* the two rows' chunk scales */
    float mw[LG_WBYTES / 32];                          /* min kinds: row r, chunk k at r * nch + k */
} lg_block;

/* The activations of kn chunks from k0 of nc columns, laid out for the inner loop (index
 * c * LG_KR + kk): the codes 32-byte aligned (a q8a block's codes straddle cache lines), the
 * scales, and for a code offset the lane start values -off * (sum of the lane's four
 * activations). */
typedef struct {
    int8_t qs[LG_COLS * LG_KR][32] __attribute__((aligned(64)));
    int32_t st[LG_COLS * LG_KR][8] __attribute__((aligned(64)));
    float d[LG_COLS * LG_KR];
} lg_act;

static inline void lg_prep(const uint8_t *a, size_t as, int nc, int64_t k0, int64_t kn, int off, lg_act *p) {
    const __m256i ones = _mm256_set1_epi8(1);
    const __m128i sh = _mm_cvtsi32_si128(off ? __builtin_ctz((unsigned)off) : 0); /* off: 16 or 128 */
    for (int c = 0; c < nc; c++)
        for (int64_t kk = 0; kk < kn; kk++) {
            const ts_block_q8a *ab = (const ts_block_q8a *)(a + c * as) + k0 + kk;
            const __m256i q = _mm256_loadu_si256((const __m256i *)ab->qs);
            const int64_t i = c * LG_KR + kk;
            _mm256_store_si256((__m256i *)p->qs[i], q);
            p->d[i] = ab->d;
            if (off) {
                const __m256i s4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q);
                _mm256_store_si256((__m256i *)p->st[i], _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(s4, sh)));
            }
        }
}

/* The lane sums of sixteen outputs as hsum_float_8 takes them, eight accumulators at once: a[i]
 * holds rows 2p and 2p+1 of column c0+i. Result lane 4j+e is output (column c0 + 2e + j/2, row
 * 2p + j%2). Each step adds the same pairs as hsum_float_8 (high and low 128 bits, then
 * elements 0+2 and 1+3, then those two). */
static inline __m512 lg_hsum8x2(const __m512 *a) {
    __m512 s1[4], s2[2];
    for (int i = 0; i < 4; i++)
        s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++)
        s2[i] = _mm512_add_ps(_mm512_shuffle_ps(s1[2 * i], s1[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(s1[2 * i], s1[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(s2[0], s2[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* One row pair against nc columns (a constant after inlining), chunks [k0, k0 + kn) prepared in
 * pa: the chains start at zero (first) or from keep, and go back to keep unless last; then y
 * gets the lane sums plus the min terms mins[r][c] (zero for the other kinds), rows past nr not
 * stored. off: whether the codes carry an offset (the lane start values). */
static inline __attribute__((always_inline)) void lg_pair(const lg_block *wb, int64_t p, int64_t nch, int64_t k0,
                                                          int64_t kn, int off, const lg_act *pa, int nc,
                                                          __m512 *keep, int first, int last,
                                                          const float *mins, int nr, float *y, size_t ys) {
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[LG_COLS];
    for (int c = 0; c < nc; c++) acc[c] = first ? _mm512_setzero_ps() : keep[c];
    for (int64_t kk = 0; kk < kn; kk++) {
        const int64_t i = p * nch + k0 + kk;
        const __m512i wv = _mm512_load_si512(wb->q + 64 * i);
        double dw2;
        memcpy(&dw2, wb->dw + 2 * i, 8);
        const __m512 dwv = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_set_sd(dw2))));
        for (int c = 0; c < nc; c++) {
            const int64_t j = c * LG_KR + kk;
            const __m512i av = _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)pa->qs[j]));
            const __m512i s0 = off ? _mm512_broadcast_i64x4(_mm256_load_si256((const __m256i *)pa->st[j]))
                                   : _mm512_setzero_si512();
            const __m512i dot = _mm512_dpbusd_epi32(s0, wv, av);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dwv, _mm512_set1_ps(pa->d[j])), acc[c]);
        }
    }
    if (!last) {
        for (int c = 0; c < nc; c++) keep[c] = acc[c];
        return;
    }
    if (nc == LG_COLS) {
        for (int c8 = 0; c8 < LG_COLS; c8 += 8) {
            float out[16] __attribute__((aligned(64)));
            _mm512_store_ps(out, lg_hsum8x2(acc + c8));
            for (int j = 0; j < 4; j++) {
                if (2 * p + j % 2 >= nr) continue;
                for (int e = 0; e < 4; e++) {
                    const int c = c8 + 2 * e + j / 2, r = 2 * (int)p + j % 2;
                    y[c * ys + r] = out[4 * j + e] + mins[r * LG_COLS + c];
                }
            }
        }
        return;
    }
    for (int c = 0; c < nc; c++) {
        y[c * ys + 2 * p] = ts_acc_sum(_mm512_castps512_ps256(acc[c])) + mins[(2 * p) * LG_COLS + c];
        if (2 * p + 1 < nr)
            y[c * ys + 2 * p + 1] = ts_acc_sum(_mm512_extractf32x8_ps(acc[c], 1)) + mins[(2 * p + 1) * LG_COLS + c];
    }
}

/* The min terms of nr rows and nc columns: per (row, column) one chain in chunk order,
 * mins += mw * sd, sixteen columns per vector (their sums gathered once per chunk). */
static inline __attribute__((always_inline)) void lg_mins(const lg_block *wb, int nr, int64_t nch, const uint8_t *a,
                                                          size_t as, int nc, float *mins) {
    __m512 m[LG_ROWS];
    for (int r = 0; r < nr; r++) m[r] = _mm512_setzero_ps();
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)as));
    const __mmask16 cm = (__mmask16)((1u << nc) - 1);
    for (int64_t k = 0; k < nch; k++) {
        const __m512 sd = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), cm, idx,
                                                   &((const ts_block_q8a *)a + k)->sd, 1);
        for (int r = 0; r < nr; r++) m[r] = _mm512_fmadd_ps(_mm512_set1_ps(wb->mw[r * nch + k]), sd, m[r]);
    }
    for (int r = 0; r < nr; r++) _mm512_storeu_ps(mins + r * LG_COLS, m[r]);
}

/* The code offset whose products the start values take off: Q8_0 / IQ4_NL codes biased to
 * unsigned by 128, Q5_0's 16; none for the min kinds. */
#define LG_OFF(KIND, OFF) ((KIND) == KIND_S32 ? 128 : (KIND) == KIND_U32_MIN ? 0 : (OFF))

#define DEFINE_LANES_GEMM(T, QK, BLOCK, KIND, OFF, ORDER)                                               \
    /* Rows [0, nr) of a row block into wb (a missing second row of the last pair repeats the    \
     * first). */                                                                                   \
    static void lg_unpack_##T(const void *w, size_t ws, int nr, int64_t nch, lg_block *wb) {         \
        for (int r = 0; r < ((nr + 1) & ~1); r++) {                                                  \
            const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + (r < nr ? r : nr - 1) * ws);      \
            const int64_t p = r / 2, h = r & 1;                                                      \
            for (int64_t k = 0; k < nch; k += (QK) / 32) {                                           \
                int8_t w8[QK];                                                                       \
                float sc[(QK) / 16], mn[(QK) / 16];                                                  \
                __builtin_prefetch((const uint8_t *)(wr + k / ((QK) / 32)) + TS_PREFETCH);           \
                unpack_##T(wr + k / ((QK) / 32), w8, sc, mn);                                        \
                if ((KIND) == KIND_S32) w8_sub(w8, (QK), -128); /* two's complement: +128 */         \
                for (int j = 0; j < (QK) / 32; j++) {                                                \
                    const int64_t i = p * nch + k + j;                                               \
                    memcpy(wb->q + 64 * i + 32 * h, w8 + 32 * j, 32);                                \
                    wb->dw[2 * i + h] = sc[2 * j];                                                   \
                    if ((KIND) == KIND_U32_MIN) wb->mw[r * nch + k + j] = mn[2 * j];                 \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
    /* Returns 0 (nothing done) for one column or rows too long; called for Q32_LANES only. */      \
    static __attribute__((unused)) int TS_FN(lg_##T)(const void *w, size_t ws, int64_t nrows,        \
                                                      const ts_block_q8a *a, size_t as, int64_t ncols, \
                                                      float *y, size_t ys, int64_t n) {              \
        if (ncols < 2 || 2 * n > LG_WBYTES) return 0;                                                \
        const int off = LG_OFF(KIND, OFF);                                                           \
        const int64_t nch = n / 32;                                                                  \
        const int rb = (int)(LG_WBYTES / n < LG_ROWS ? (LG_WBYTES / n) & ~(int64_t)1 : LG_ROWS);     \
        lg_block wb;                                                                                 \
        float mins[LG_ROWS * LG_COLS] __attribute__((aligned(64)));                                  \
        lg_act pa;                                                                                   \
        __m512 keep[LG_ROWS / 2][LG_COLS];                                                           \
        if ((KIND) != KIND_U32_MIN) memset(mins, 0, sizeof mins);                                    \
        for (int64_t r0 = 0; r0 < nrows; r0 += rb) {                                                 \
            const int nr = (int)(nrows - r0 < rb ? nrows - r0 : rb);                                 \
            lg_unpack_##T((const uint8_t *)w + r0 * ws, ws, nr, nch, &wb);                           \
            for (int64_t c0 = 0; c0 < ncols; c0 += LG_COLS) {                                        \
                const int nc = (int)(ncols - c0 < LG_COLS ? ncols - c0 : LG_COLS);                   \
                const uint8_t *ac = (const uint8_t *)a + c0 * as;                                    \
                if ((KIND) == KIND_U32_MIN && nr == LG_ROWS)                                         \
                    lg_mins(&wb, LG_ROWS, nch, ac, as, nc, mins); /* unrolled: chains in registers */ \
                else if ((KIND) == KIND_U32_MIN)                                                     \
                    lg_mins(&wb, nr, nch, ac, as, nc, mins);                                         \
                for (int64_t k0 = 0; k0 < nch; k0 += LG_KR) {                                        \
                    const int64_t kn = nch - k0 < LG_KR ? nch - k0 : LG_KR;                          \
                    const int first = k0 == 0, last = k0 + kn == nch;                                \
                    lg_prep(ac, as, nc, k0, kn, off, &pa);                                           \
                    for (int64_t p = 0; p < (nr + 1) / 2; p++) {                                     \
                        float *yp = y + c0 * ys + r0;                                                \
                        if (nc == LG_COLS)                                                           \
                            lg_pair(&wb, p, nch, k0, kn, off, &pa, LG_COLS, keep[p], first, last,    \
                                    mins, nr, yp, ys);                                               \
                        else                                                                         \
                            lg_pair(&wb, p, nch, k0, kn, off, &pa, nc, keep[p], first, last, mins,   \
                                    nr, yp, ys);                                                     \
                    }                                                                                \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
        return 1;                                                                                    \
    }
#define TS_Q32_LG(T, w, ws, nrows, a, as, ncols, y, ys, n) TS_FN(lg_##T)(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define DEFINE_LANES_GEMM(T, QK, BLOCK, KIND, OFF, ORDER)
#define TS_Q32_LG(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
