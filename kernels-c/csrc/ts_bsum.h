/* x86 kernels for the per-32 orders that scale whole integer totals (Q32_BLOCK: llama.cpp's
 * repacked Q4_0 8x8 kernels; Q32_PAIR: ggml's generic Q2_0 vec_dot). Included by ts_kernels.c
 * after the unpackers and the Q32_* order names.
 *
 * Those orders keep one float chain per output, fed once per 32 (or 64) elements, so a chain
 * per output would be bound by fma latency. Here eight outputs share one vector chain, one per
 * lane, as llama.cpp's repacked kernels do: eight weight rows in the lanes for decode (one
 * activation column), eight activation columns in the lanes for prefill. The eight integer dot
 * products of a chunk are reduced to their totals together (ts_tot8, exact), so a chunk costs
 * one conversion and one fma (or the Q2_0 order's multiplies and adds) per eight outputs. */
#ifndef TS_BSUM_H
#define TS_BSUM_H

#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)

/* Lane i: the sum of the eight int32 lanes of v[i]. */
static inline __m256i ts_tot8(const __m256i *v) {
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    /* a: [v0..v3 sums of lanes 0-3 | v0..v3 sums of lanes 4-7], b the same for v4..v7. */
    const __m256i a = _mm256_hadd_epi32(h01, h23), b = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The chain step of one weight block for eight outputs: t[k] the totals of chunk k (offsets
 * included) as floats, dw the weight scales, d1[k] the activation scales, per lane. */
static inline __m256 bs_step(__m256 acc, const __m256 *t, __m256 dw, const __m256 *d1, int order) {
    if (order == Q32_BLOCK) return _mm256_fmadd_ps(t[0], _mm256_mul_ps(dw, d1[0]), acc);
    /* Q32_PAIR: sumi = d1*t0 + d1'*t1, acc += d0*sumi, each product rounded. */
    const __m256 si = _mm256_add_ps(_mm256_mul_ps(d1[0], t[0]), _mm256_mul_ps(d1[1], t[1]));
    return _mm256_add_ps(acc, _mm256_mul_ps(dw, si));
}

#define BS_KB 128 /* activation chunks prepared per column tile (GEMM) */

#if defined(TS_ISA_AVX2)
/* The avx2 tier's prefill GEMM of the block order (Q32_BLOCK, 8 or more columns): eight weight
 * rows in the lanes, unpacked once per chunk range into the order of the K-quant tiles
 * (ts_kgemm.h: 32 bytes hold four consecutive codes of each row) and used for every column
 * tile; per column and chunk eight vpmaddubsw against the column's activations, broadcast four
 * at a time, give the rows' exact totals (int16 pair sums, then one vpmaddwd), the code offset
 * leaves through the column's block sum, and acc += float(total) * (dw * da) continues each
 * output's one chain in chunk order, as bs_step does. */
#define BS_TKC 64 /* chunks of one row tile unpacked at a time (16 KiB) */
#define BS_TC 8   /* columns per tile */
static inline __attribute__((always_inline)) void bs_tile(const int8_t *bp, const float *dwp, int nr, int64_t k0,
                                                          int nch, const uint8_t *a, size_t as, int nc, int off,
                                                          float *y, size_t ys, int first) {
    __m256 acc[BS_TC];
    for (int c = 0; c < BS_TC; c++) acc[c] = _mm256_setzero_ps();
    if (!first) kg2_load(y, ys, acc, nc, nr);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int k = 0; k < nch; k++) {
        __m256i wv[8];
        for (int kk = 0; kk < 8; kk++) wv[kk] = _mm256_load_si256((const __m256i *)(bp + k * 256 + 32 * kk));
        const __m256 dw = _mm256_load_ps(dwp + 8 * k);
        for (int c = 0; c < nc; c++) {
            const ts_block_q8a *ab = (const ts_block_q8a *)(a + c * as) + k0 + k;
            const __m256i tot = _mm256_add_epi32(kg2_dot(wv, 8, 8, (const uint8_t *)ab->qs, ones),
                                                 _mm256_set1_epi32(-off * (ab->s[0] + ab->s[1])));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(dw, _mm256_set1_ps(ab->d)), acc[c]);
        }
    }
    kg2_store(y, ys, acc, nc, nr);
}
#define DEFINE_BS_TILES(T, QK, BLOCK, OFF)                                                             \
    static __attribute__((unused)) int TS_FN(bs_tiles_##T)(const void *w, size_t ws, int64_t nrows,  \
                                   const ts_block_q8a *a, size_t as, int64_t ncols, float *y,       \
                                   size_t ys, int64_t n) {                                          \
        if ((QK) != 32) return 0; /* one chunk per weight block */                                  \
        int8_t bp[BS_TKC * 256] __attribute__((aligned(32)));                                       \
        float dwp[BS_TKC * 8] __attribute__((aligned(32)));                                         \
        const int64_t nch_all = n / 32;                                                             \
        for (int64_t r0 = 0; r0 < nrows; r0 += 8) {                                                 \
            const int nr = (int)(nrows - r0 < 8 ? nrows - r0 : 8);                                  \
            for (int64_t k0 = 0; k0 < nch_all; k0 += BS_TKC) {                                      \
                const int nch = (int)(nch_all - k0 < BS_TKC ? nch_all - k0 : BS_TKC);               \
                for (int r = 0; r < 8; r++) {                                                       \
                    const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + (r0 + (r < nr ? r : 0)) * ws) + k0; \
                    for (int k = 0; k < nch; k++) {                                                 \
                        int8_t w8[QK];                                                              \
                        float sc[(QK) / 16], mn[(QK) / 16];                                         \
                        unpack_##T(wr + k, w8, sc, mn);                                             \
                        if (r >= nr) memset(w8, 0, sizeof w8);                                      \
                        dwp[8 * k + r] = r < nr ? sc[0] : 0.0f;                                     \
                        for (int kk = 0; kk < 8; kk++) memcpy(bp + k * 256 + 32 * kk + 4 * r, w8 + 4 * kk, 4); \
                    }                                                                               \
                }                                                                                   \
                for (int64_t c0 = 0; c0 < ncols; c0 += BS_TC) {                                     \
                    const int nc = (int)(ncols - c0 < BS_TC ? ncols - c0 : BS_TC);                  \
                    const uint8_t *ac = (const uint8_t *)a + c0 * as;                               \
                    float *yt = y + c0 * ys + r0;                                                   \
                    if (nc == BS_TC)                                                                \
                        bs_tile(bp, dwp, nr, k0, nch, ac, as, BS_TC, (OFF), yt, ys, k0 == 0);       \
                    else                                                                            \
                        bs_tile(bp, dwp, nr, k0, nch, ac, as, nc, (OFF), yt, ys, k0 == 0);          \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        return 1;                                                                                   \
    }
#define TS_BS_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) TS_FN(bs_tiles_##T)(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define DEFINE_BS_TILES(T, QK, BLOCK, OFF)
#define TS_BS_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#define DEFINE_BSUM_KERNELS(T, QK, BLOCK, OFF, ORDER)                                                  \
    DEFINE_BS_TILES(T, QK, BLOCK, OFF)                                                                 \
    /* Decode: rows r0..r0+7 in the lanes (rows past nrows repeat the last one, not stored). */    \
    static inline void TS_FN(bs_rows8_##T)(const void *w, size_t ws, int64_t r0, int64_t nrows,      \
                                           const ts_block_q8a *a, float *y, int64_t n) {             \
        enum { CH = (QK) / 32 };                                                                     \
        const uint8_t *rows[8];                                                                      \
        for (int r = 0; r < 8; r++)                                                                  \
            rows[r] = (const uint8_t *)w + (r0 + r < nrows ? r0 + r : nrows - 1) * ws;               \
        __m256 acc = _mm256_setzero_ps();                                                            \
        for (int64_t b = 0; b < n / (QK); b++) {                                                     \
            int8_t w8[8][QK] __attribute__((aligned(32)));                                           \
            float dw[8];                                                                             \
            for (int r = 0; r < 8; r++) {                                                            \
                const BLOCK *blk = (const BLOCK *)rows[r] + b;                                       \
                float sc[(QK) / 16], mn[(QK) / 16];                                                  \
                __builtin_prefetch((const uint8_t *)blk + TS_PREFETCH);                              \
                unpack_##T(blk, w8[r], sc, mn);                                                      \
                dw[r] = sc[0];                                                                       \
            }                                                                                        \
            __m256 t[CH], d1[CH];                                                                    \
            for (int k = 0; k < CH; k++) {                                                           \
                const ts_block_q8a *ab = a + b * CH + k;                                             \
                __m256i v[8];                                                                        \
                for (int r = 0; r < 8; r++)                                                          \
                    v[r] = ts_dot_u8s8_from(w8[r] + 32 * k, ab->qs, _mm256_setzero_si256());         \
                t[k] = _mm256_cvtepi32_ps(                                                           \
                    _mm256_add_epi32(ts_tot8(v), _mm256_set1_epi32(-(OFF) * (ab->s[0] + ab->s[1])))); \
                d1[k] = _mm256_set1_ps(ab->d);                                                       \
            }                                                                                        \
            acc = bs_step(acc, t, _mm256_loadu_ps(dw), d1, ORDER);                                   \
        }                                                                                            \
        float out[8];                                                                                \
        _mm256_storeu_ps(out, acc);                                                                  \
        for (int r = 0; r < 8 && r0 + r < nrows; r++) y[r0 + r] = out[r];                            \
    }                                                                                                \
    /* Prefill: columns c0..c0+nc-1 in the lanes, one weight row at a time; the chunk scales and \
     * offsets of the column tile prepared lane-major, BS_KB chunks at a time (the chain goes on \
     * through y between those). */                                                                \
    static void TS_FN(bs_cols_##T)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a,   \
                                   size_t as, int64_t c0, int nc, float *y, size_t ys, int64_t n) {  \
        enum { CH = (QK) / 32 };                                                                     \
        float daT[BS_KB][8] __attribute__((aligned(32)));                                            \
        int32_t offT[BS_KB][8] __attribute__((aligned(32)));                                         \
        const int64_t nch_all = n / 32;                                                              \
        for (int64_t k0 = 0; k0 < nch_all; k0 += BS_KB) {                                            \
            const int64_t nch = nch_all - k0 < BS_KB ? nch_all - k0 : BS_KB;                         \
            for (int64_t k = 0; k < nch; k++)                                                        \
                for (int c = 0; c < 8; c++) {                                                        \
                    const ts_block_q8a *ab =                                                         \
                        (const ts_block_q8a *)((const uint8_t *)a + (c0 + c) * as) + k0 + k;         \
                    daT[k][c] = c < nc ? ab->d : 0.0f;                                               \
                    offT[k][c] = c < nc ? -(OFF) * (ab->s[0] + ab->s[1]) : 0;                        \
                }                                                                                    \
            for (int64_t r = 0; r < nrows; r++) {                                                    \
                const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws) + k0 / CH;            \
                float out[8] __attribute__((aligned(32)));                                           \
                for (int c = 0; c < 8; c++) out[c] = k0 && c < nc ? y[(c0 + c) * ys + r] : 0.0f;     \
                __m256 acc = _mm256_load_ps(out);                                                    \
                for (int64_t b = 0; b < nch / CH; b++) {                                             \
                    int8_t w8[QK] __attribute__((aligned(32)));                                      \
                    float sc[(QK) / 16], mn[(QK) / 16];                                              \
                    __builtin_prefetch((const uint8_t *)(wr + b) + TS_PREFETCH);                     \
                    unpack_##T(wr + b, w8, sc, mn);                                                  \
                    __m256 t[CH], d1[CH];                                                            \
                    for (int k = 0; k < CH; k++) {                                                   \
                        const int64_t kk = b * CH + k;                                               \
                        __m256i v[8];                                                                \
                        for (int c = 0; c < 8; c++)                                                  \
                            v[c] = c < nc ? ts_dot_u8s8_from(                                        \
                                                w8 + 32 * k,                                         \
                                                ((const ts_block_q8a *)((const uint8_t *)a + (c0 + c) * as) + k0 + kk)->qs, \
                                                _mm256_setzero_si256())                              \
                                          : _mm256_setzero_si256();                                  \
                        t[k] = _mm256_cvtepi32_ps(_mm256_add_epi32(ts_tot8(v), _mm256_load_si256((const __m256i *)offT[kk]))); \
                        d1[k] = _mm256_load_ps(daT[kk]);                                             \
                    }                                                                                \
                    acc = bs_step(acc, t, _mm256_set1_ps(sc[0]), d1, ORDER);                         \
                }                                                                                    \
                _mm256_store_ps(out, acc);                                                           \
                for (int c = 0; c < nc; c++) y[(c0 + c) * ys + r] = out[c];                          \
            }                                                                                        \
        }                                                                                            \
    }                                                                                                \
    static int TS_FN(bs_mm_##T)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a,      \
                                size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {          \
        if (ncols == 1) {                                                                            \
            for (int64_t r0 = 0; r0 < nrows; r0 += 8) TS_FN(bs_rows8_##T)(w, ws, r0, nrows, a, y, n); \
            return 1;                                                                                \
        }                                                                                            \
        if ((ORDER) == Q32_BLOCK && ncols >= 8 && TS_BS_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n)) \
            return 1;                                                                                \
        for (int64_t c0 = 0; c0 < ncols; c0 += 8) {                                                  \
            const int nc = (int)(ncols - c0 < 8 ? ncols - c0 : 8);                                   \
            if (nc == 8)                                                                             \
                TS_FN(bs_cols_##T)(w, ws, nrows, a, as, c0, 8, y, ys, n);                            \
            else                                                                                     \
                TS_FN(bs_cols_##T)(w, ws, nrows, a, as, c0, nc, y, ys, n);                           \
        }                                                                                            \
        return 1;                                                                                    \
    }
/* The types summed in lanes (Q32_LANES) have no kernel here. */
#define DEFINE_BSUM_NONE(T)                                                                          \
    static int TS_FN(bs_mm_##T)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a,      \
                                size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {          \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;   \
        return 0;                                                                                    \
    }
#define TS_Q32_BSUM(T, w, ws, nrows, a, as, ncols, y, ys, n) TS_FN(bs_mm_##T)(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define DEFINE_BSUM_NONE(T)
#define DEFINE_BSUM_KERNELS(T, QK, BLOCK, OFF, ORDER)
/* Other tiers sum these orders through the generic per-column chains of DEFINE_Q32_KERNELS. */
#define TS_Q32_BSUM(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
