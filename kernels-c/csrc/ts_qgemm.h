/* The prefill GEMM (8 or more columns) of the per-32 weight types on the x86 AVX-512 tiers, in
 * llama.cpp's x86 orders. Included by ts_kernels.c after ts_kgemm.h (whose tile-product engine it
 * shares) when TS_ISA_AVX512 is defined: the amx tier for every per-32 type, the avx512 tier for
 * the types whose order scales whole block totals (Q4_0: Q32_BLOCK, Q2_0: Q32_PAIR; the types
 * summed in int32 lanes have the lane GEMM of ts_lanes.h there).
 *
 * Per 32-element chunk one tile product gives the exact int32 dot products of 16 weight rows with
 * 16 activation columns (an AMX tile product on the amx tier, 8 vpdpbusd per column on the avx512
 * tier, see KG_PRODUCT). Each is then scaled as llama.cpp's repacked Q4_0 kernels do,
 * acc += float(dot) * (dw * da), one fma per chunk in chunk order through the whole row (Q2_0:
 * its generic loop's pair order), so a result does not depend on the tiling or the thread count
 * and Q4_0 and Q2_0 match llama.cpp's x86 results bit for bit. The lane types (Q4_1, Q5_0, Q5_1,
 * Q8_0, IQ4_NL) never come here: a block-order result differs from their int32-lane order in the
 * last bits, so rows too long for the lane GEMM take the generic kernel on every tier (the amx
 * tier once sent them here and broke bit-exactness for rows over 8192 elements). The AMX
 * engine takes the offset types as signed codes (code - OFF); vpdpbusd takes unsigned codes, so
 * the avx512 engine keeps them and takes OFF times the activation block's integer sum off each
 * dot (the same exact integer). Q4_1 / Q5_1 keep their unsigned codes and add their min terms
 * through the activation sums.
 *
 * Weights are unpacked into the tile order once per 16-row tile and chunk range (QG_KC chunks,
 * on the stack) and reused for every column tile. */
#ifndef TS_QGEMM_H
#define TS_QGEMM_H

#if defined(TS_ISA_AVX512)

#define QG_MIN_COLS 8 /* fewer columns take the GEMV / lane kernels */
#define QG_KC 64      /* 32-chunks of one row tile packed at a time (32 KiB) */

/* One chunk of the block order (Q32_BLOCK) on the vpdpbusd engine, nothing through memory:
 * per column the 16 rows' unsigned-code dot products start from -off * sum(a) (exact integers,
 * the same totals as the signed tile product), then acc[c] += float(dot) * (dw * da) as
 * qg_scale does. */
static inline __attribute__((always_inline)) void qg_vnni_block(__m512 *acc, const int8_t *wb, const uint8_t *ak,
                                                               size_t as, int nc, __m512 dw, int off) {
    __m512i wv[8];
    for (int kk = 0; kk < 8; kk++) wv[kk] = _mm512_load_si512(wb + 64 * kk);
    for (int c = 0; c < nc; c++) {
        const ts_block_q8a *ab = (const ts_block_q8a *)(ak + c * as);
        const __m512i d =
            kg_vnni_dot(wv, 8, (const uint8_t *)ab->qs, _mm512_set1_epi32(-off * (ab->s[0] + ab->s[1])));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(dw, _mm512_set1_ps(ab->d)), acc[c]);
    }
}

/* dot[c*16 + r] -= off * (integer sum of column c's activation block), for nc columns. */
static inline void qg_offset(int32_t *dot, const uint8_t *ak, size_t as, int nc, int off) {
    for (int c = 0; c < nc; c++) {
        const ts_block_q8a *ab = (const ts_block_q8a *)(ak + c * as);
        const __m512i o = _mm512_set1_epi32(-off * (ab->s[0] + ab->s[1]));
        _mm512_store_si512(dot + 16 * c, _mm512_add_epi32(_mm512_load_si512(dot + 16 * c), o));
    }
}

/* Q2_0's pair of chunks as ggml's generic loop sums them (Q32_PAIR): per column
 * acc += dw * (da0*float(dot0) + da1*float(dot1)), every product rounded. */
static inline __attribute__((always_inline)) void qg_scale_pair(__m512 *acc, const int32_t *dot0, const int32_t *dot1,
                                                                __m512 dw, const uint8_t *da0, const uint8_t *da1,
                                                                size_t as, int nc) {
    for (int c = 0; c < nc; c++) {
        const __m512 p0 = _mm512_mul_ps(_mm512_set1_ps(*(const float *)(da0 + c * as)),
                                        _mm512_cvtepi32_ps(_mm512_load_si512(dot0 + 16 * c)));
        const __m512 p1 = _mm512_mul_ps(_mm512_set1_ps(*(const float *)(da1 + c * as)),
                                        _mm512_cvtepi32_ps(_mm512_load_si512(dot1 + 16 * c)));
        acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(dw, _mm512_add_ps(p0, p1)));
    }
}

/* acc[c] += float(dot[c]) * (dw * da[c]) for the columns of one chunk; dot holds the stored
 * product tile (row c = activation column c, lane r = weight row r). */
static inline __attribute__((always_inline)) void qg_scale(__m512 *acc, const int32_t *dot, __m512 dw,
                                                           const uint8_t *da, size_t as, int nc) {
    for (int c = 0; c < nc; c++) {
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(*(const float *)(da + c * as)));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(dot + 16 * c)), s, acc[c]);
    }
}

#define DEFINE_QGEMM(T, QK, BLOCK, KIND, OFF, ORDER)                                                \
    /* Rows [0, nr) of a row tile, chunks [k0, k0 + nch), into tile-B order: bp[k*512 + kk*64 +  \
     * r*4 + j] = code 4kk+j of chunk k of row r (zero for rows past nr); dw, mw: the chunk      \
     * scales and mins, 16 per chunk. */                                                         \
    static void qg_pack_##T(const void *w, size_t ws, int nr, int64_t k0, int nch, int8_t *bp,    \
                             float *dw, float *mw) {                                               \
        for (int r = 0; r < 16; r++) {                                                             \
            const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + (r < nr ? r : 0) * ws);         \
            for (int k = 0; k < nch; k += (QK) / 32) {                                             \
                int8_t w8[QK];                                                                     \
                float sc[(QK) / 16], mn[(QK) / 16];                                                \
                if (r < nr) {                                                                      \
                    unpack_##T(wr + (k0 + k) / ((QK) / 32), w8, sc, mn);                           \
                    if (KG_SIGNED && (OFF) != 0 && (KIND) != KIND_U32_MIN) w8_sub(w8, (QK), (OFF));              \
                } else {                                                                           \
                    memset(w8, 0, sizeof w8);                                                      \
                    memset(sc, 0, sizeof sc);                                                      \
                    memset(mn, 0, sizeof mn);                                                      \
                }                                                                                  \
                for (int j = 0; j < (QK) / 32; j++) {                                              \
                    dw[(k + j) * 16 + r] = sc[2 * j];                                              \
                    mw[(k + j) * 16 + r] = mn[2 * j];                                              \
                    for (int kk = 0; kk < 8; kk++)                                                 \
                        memcpy(bp + (k + j) * 512 + kk * 64 + r * 4, w8 + 32 * j + 4 * kk, 4);      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* One row tile (packed) against columns [c0, c0 + nc) for its chunks; adds to y unless     \
     * first. */                                                                                 \
    static inline __attribute__((always_inline)) void qg_tile_##T(                                \
        const int8_t *bp, const float *dw, const float *mw, int nr, int64_t k0, int nch,           \
        const uint8_t *a, size_t as, int nc, float *y, size_t ys, int first) {                     \
        __m512 acc[16];                                                                            \
        float mins[16][16] __attribute__((aligned(64)));                                           \
        int32_t dots[2][256] __attribute__((aligned(64))); /* Q32_PAIR: both chunks of a block */ \
        int8_t stage[16 * 32] __attribute__((aligned(64)));                                        \
        for (int c = 0; c < 16; c++) acc[c] = _mm512_setzero_ps();                                 \
        if (!first) kg_load(y, ys, acc, nc, nr); /* one chain through every chunk range */       \
        if ((KIND) == KIND_U32_MIN) memset(mins, 0, sizeof mins);                                  \
        if (nc < 16) memset(stage, 0, sizeof stage);                                               \
        for (int k = 0; k < nch; k++) {                                                            \
            const uint8_t *ak = a + (k0 + k) * sizeof(ts_block_q8a);                               \
            const ts_block_q8a *a0 = (const ts_block_q8a *)ak;                                     \
            if (!KG_SIGNED && (ORDER) == Q32_BLOCK && (KIND) == KIND_U32) {                        \
                /* vpdpbusd engine, block order: the product and its scaling in registers. */      \
                const __m512 dwk = _mm512_loadu_ps(dw + 16 * k);                                   \
                if (nc == 16)                                                                      \
                    qg_vnni_block(acc, bp + k * 512, ak, as, 16, dwk, (OFF));                      \
                else                                                                               \
                    qg_vnni_block(acc, bp + k * 512, ak, as, nc, dwk, (OFF));                      \
                continue;                                                                          \
            }                                                                                      \
            int32_t *dot = dots[(ORDER) == Q32_PAIR ? k & 1 : 0];                                  \
            KG_PRODUCT(32, (KIND) != KIND_U32_MIN, (const uint8_t *)a0->qs, as, nc, bp + k * 512, stage, dot); \
            if (!KG_SIGNED && (OFF) != 0 && (KIND) != KIND_U32_MIN)                                \
                qg_offset(dot, ak, as, nc, (OFF)); /* unsigned codes: take OFF * sum(a) off */   \
            const __m512 dwv = _mm512_loadu_ps(dw + 16 * k);                                       \
            if ((ORDER) == Q32_PAIR) {                                                             \
                if (k & 1)                                                                         \
                    qg_scale_pair(acc, dots[0], dots[1], dwv, (const uint8_t *)&a0[-1].d,          \
                                   (const uint8_t *)&a0->d, as, nc);                               \
            } else if (nc == 16)                                                                   \
                qg_scale(acc, dot, dwv, (const uint8_t *)&a0->d, as, 16);                         \
            else                                                                                   \
                qg_scale(acc, dot, dwv, (const uint8_t *)&a0->d, as, nc);                         \
            if ((KIND) == KIND_U32_MIN) {                                                          \
                const __m512 mwv = _mm512_loadu_ps(mw + 16 * k);                                   \
                for (int c = 0; c < nc; c++)                                                       \
                    _mm512_store_ps(mins[c],                                                       \
                                    _mm512_fmadd_ps(mwv,                                           \
                                                    _mm512_set1_ps(((const ts_block_q8a *)(ak + c * as))->sd), \
                                                    _mm512_load_ps(mins[c])));                     \
            }                                                                                      \
        }                                                                                          \
        if ((KIND) == KIND_U32_MIN)                                                                \
            for (int c = 0; c < nc; c++) acc[c] = _mm512_add_ps(acc[c], _mm512_load_ps(mins[c]));  \
        kg_store(y, ys, acc, nc, nr);                                                             \
    }                                                                                              \
    /* Returns 0 (nothing done) for too few columns. */                                           \
    static int qg_gemm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, \
                            int64_t ncols, float *y, size_t ys, int64_t n) {                       \
        if (ncols < QG_MIN_COLS || (ORDER) == Q32_LANES) return 0; /* lane types: see above */  \
        int8_t bp[QG_KC * 512] __attribute__((aligned(64)));                                   \
        float dw[QG_KC * 16] __attribute__((aligned(64)));                                     \
        float mw[QG_KC * 16] __attribute__((aligned(64)));                                     \
        const int64_t nch_all = n / 32;                                                            \
        KG_BEGIN();                                                                               \
        for (int64_t r0 = 0; r0 < nrows; r0 += 16) {                                               \
            const int nr = (int)(nrows - r0 < 16 ? nrows - r0 : 16);                               \
            for (int64_t k0 = 0; k0 < nch_all; k0 += QG_KC) {                                  \
                const int nch = (int)(nch_all - k0 < QG_KC ? nch_all - k0 : QG_KC);        \
                qg_pack_##T((const uint8_t *)w + r0 * ws, ws, nr, k0, nch, bp, dw, mw);           \
                for (int64_t c0 = 0; c0 < ncols; c0 += 16) {                                       \
                    const int nc = (int)(ncols - c0 < 16 ? ncols - c0 : 16);                       \
                    qg_tile_##T(bp, dw, mw, nr, k0, nch, (const uint8_t *)a + c0 * as, as, nc,    \
                                 y + c0 * ys + r0, ys, k0 == 0);                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        KG_DONE();                                                                                \
        return 1;                                                                                  \
    }

#define TS_Q32_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) qg_gemm_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define DEFINE_QGEMM(T, QK, BLOCK, KIND, OFF, ORDER)
#define TS_Q32_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
