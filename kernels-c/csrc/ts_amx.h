/* AMX-INT8 tile GEMM against 8-bit activation blocks, the prefill matmul of the amx tier: the
 * weight types with one scale per 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_0) here, the
 * K-quants (DEFINE_AMX_K) below. Included by ts_kernels.c after the unpackers, only when
 * TS_ISA_AMX is defined. GEMV (decode) stays on the AVX-512 VNNI kernels of the same object.
 *
 * One tile product per 32-element chunk: the activations of 16 columns (tile A, 16 rows of 32
 * bytes, loaded straight from the q8a blocks with the column stride) times the codes of 16 weight
 * rows (tile B, 8 rows of 64 bytes in the VNNI order: row kk holds elements 4kk..4kk+3 of each
 * weight row) gives a 16 x 16 block of exact int32 chunk dot products. Each is then scaled as
 * llama.cpp's repacked Q4_0 kernels do, acc += float(dot) * (dw * da), one fma per chunk in chunk
 * order through the whole row (Q2_0: its generic loop's pair order, Q32_PAIR), so a result does
 * not depend on the tiling or the thread count, and Q4_0 and Q2_0 match llama.cpp's x86 results
 * bit for bit. The types it sums in int32 lanes (Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) come here only
 * for rows too long for the lane GEMM of ts_lanes.h, which keeps that order. The offset types are packed as signed
 * codes (code - OFF) for the signed-by-signed product; Q4_1 / Q5_1 keep their unsigned codes
 * (signed-by-unsigned product) and add their min terms through the activation sums like the
 * other tiers.
 *
 * Weights are unpacked into tile B order once per 16-row tile and chunk range (TS_AMX_KC chunks,
 * on the stack) and reused for every column tile. */

#define TS_AMX_MIN_COLS 8 /* fewer columns take the AVX-512 kernels */
#define TS_AMX_KC 64      /* 32-chunks of one row tile packed at a time (32 KiB) */
#define TS_AMX_A 0        /* tile registers: activations, weights, products */
#define TS_AMX_B 1
#define TS_AMX_C 2
#define TS_AMX_A16 3 /* the same for 16-element sub-blocks (K-quants with one scale per 16) */
#define TS_AMX_B16 4
#define TS_AMX_KSB 8 /* super-blocks of one row tile packed at a time (32 KiB) */

typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ts_amx_config;

/* This thread's tile shapes for the chunk products (16x32 bytes times 8x64 bytes, or 16x16 times
 * 4x64, into 16x16 int32). A constant in .rodata, not a stack object: the compiler sees only a
 * pointer-sized read in _tile_loadconfig's operand and may drop stores to a local config (the
 * llama.cpp AMX crash, ggml-org/llama.cpp#20824, is that). */
static const ts_amx_config ts_amx_cfg __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {[TS_AMX_A] = 32, [TS_AMX_B] = 64, [TS_AMX_C] = 64, [TS_AMX_A16] = 16, [TS_AMX_B16] = 64},
    .rows = {[TS_AMX_A] = 16, [TS_AMX_B] = 8, [TS_AMX_C] = 16, [TS_AMX_A16] = 16, [TS_AMX_B16] = 4},
};

/* Configures this thread's tiles; released by amx_done. */
static inline void amx_begin(void) { _tile_loadconfig(&ts_amx_cfg); }

/* Returns the tile state, so that a thread not in a matmul does not carry it. */
static inline void amx_done(void) { _tile_release(); }

/* Loads tile TILE with `bytes` bytes of each of nc activation columns, starting at `p` in the
 * first column (column stride `as`); fewer than 16 columns go through a zeroed staging copy so
 * that the tile never reads past the last column. */
#define AMX_LOAD_ACT(TILE, p, as, nc, bytes, stage)                                                 \
    do {                                                                                            \
        if ((nc) == 16) {                                                                           \
            _tile_loadd(TILE, (p), (long)(as));                                                     \
        } else {                                                                                    \
            for (int c_ = 0; c_ < (nc); c_++) memcpy((stage) + (bytes) * c_, (p) + c_ * (as), (bytes)); \
            _tile_loadd(TILE, (stage), (bytes));                                                    \
        }                                                                                           \
    } while (0)

/* Writes the 16-row output vectors of nc columns, rows past nr untouched. */
static inline void amx_store(float *y, size_t ys, const __m512 *v, int nc, int nr) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(y + c * ys, m, v[c]);
}

/* The output vectors of nc columns as a chain's start (rows past nr zero). */
static inline void amx_load(const float *y, size_t ys, __m512 *v, int nc, int nr) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++) v[c] = _mm512_maskz_loadu_ps(m, y + c * ys);
}

/* Q2_0's pair of chunks as ggml's generic loop sums them (Q32_PAIR): per column
 * acc += dw * (da0*float(dot0) + da1*float(dot1)), every product rounded. */
static inline __attribute__((always_inline)) void amx_scale_pair(__m512 *acc, const int32_t *dot0, const int32_t *dot1,
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
static inline __attribute__((always_inline)) void amx_scale(__m512 *acc, const int32_t *dot, __m512 dw,
                                                           const uint8_t *da, size_t as, int nc) {
    for (int c = 0; c < nc; c++) {
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(*(const float *)(da + c * as)));
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(dot + 16 * c)), s, acc[c]);
    }
}

#define DEFINE_AMX_Q32(T, QK, BLOCK, KIND, OFF, ORDER)                                                \
    /* Rows [0, nr) of a row tile, chunks [k0, k0 + nch), into tile-B order: bp[k*512 + kk*64 +  \
     * r*4 + j] = code 4kk+j of chunk k of row r (zero for rows past nr); dw, mw: the chunk      \
     * scales and mins, 16 per chunk. */                                                         \
    static void amx_pack_##T(const void *w, size_t ws, int nr, int64_t k0, int nch, int8_t *bp,    \
                             float *dw, float *mw) {                                               \
        for (int r = 0; r < 16; r++) {                                                             \
            const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + (r < nr ? r : 0) * ws);         \
            for (int k = 0; k < nch; k += (QK) / 32) {                                             \
                int8_t w8[QK];                                                                     \
                float sc[(QK) / 16], mn[(QK) / 16];                                                \
                if (r < nr) {                                                                      \
                    unpack_##T(wr + (k0 + k) / ((QK) / 32), w8, sc, mn);                           \
                    if ((OFF) != 0 && (KIND) != KIND_U32_MIN) w8_sub(w8, (QK), (OFF));              \
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
    static inline __attribute__((always_inline)) void amx_tile_##T(                                \
        const int8_t *bp, const float *dw, const float *mw, int nr, int64_t k0, int nch,           \
        const uint8_t *a, size_t as, int nc, float *y, size_t ys, int first) {                     \
        __m512 acc[16];                                                                            \
        float mins[16][16] __attribute__((aligned(64)));                                           \
        int32_t dots[2][256] __attribute__((aligned(64))); /* Q32_PAIR: both chunks of a block */ \
        int8_t stage[16 * 32] __attribute__((aligned(64)));                                        \
        for (int c = 0; c < 16; c++) acc[c] = _mm512_setzero_ps();                                 \
        if (!first) amx_load(y, ys, acc, nc, nr); /* one chain through every chunk range */       \
        if ((KIND) == KIND_U32_MIN) memset(mins, 0, sizeof mins);                                  \
        if (nc < 16) memset(stage, 0, sizeof stage);                                               \
        for (int k = 0; k < nch; k++) {                                                            \
            const uint8_t *ak = a + (k0 + k) * sizeof(ts_block_q8a);                               \
            const ts_block_q8a *a0 = (const ts_block_q8a *)ak;                                     \
            AMX_LOAD_ACT(TS_AMX_A, (const uint8_t *)a0->qs, as, nc, 32, stage);                   \
            _tile_loadd(TS_AMX_B, bp + k * 512, 64);                                               \
            _tile_zero(TS_AMX_C);                                                                  \
            if ((KIND) == KIND_U32_MIN)                                                            \
                _tile_dpbsud(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                        \
            else                                                                                   \
                _tile_dpbssd(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                        \
            int32_t *dot = dots[(ORDER) == Q32_PAIR ? k & 1 : 0];                                  \
            _tile_stored(TS_AMX_C, dot, 64);                                                       \
            const __m512 dwv = _mm512_loadu_ps(dw + 16 * k);                                       \
            if ((ORDER) == Q32_PAIR) {                                                             \
                if (k & 1)                                                                         \
                    amx_scale_pair(acc, dots[0], dots[1], dwv, (const uint8_t *)&a0[-1].d,          \
                                   (const uint8_t *)&a0->d, as, nc);                               \
            } else if (nc == 16)                                                                   \
                amx_scale(acc, dot, dwv, (const uint8_t *)&a0->d, as, 16);                         \
            else                                                                                   \
                amx_scale(acc, dot, dwv, (const uint8_t *)&a0->d, as, nc);                         \
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
        amx_store(y, ys, acc, nc, nr);                                                             \
    }                                                                                              \
    /* Returns 0 (nothing done) for too few columns. */                                           \
    static int amx_gemm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, \
                            int64_t ncols, float *y, size_t ys, int64_t n) {                       \
        if (ncols < TS_AMX_MIN_COLS) return 0;                                                     \
        int8_t bp[TS_AMX_KC * 512] __attribute__((aligned(64)));                                   \
        float dw[TS_AMX_KC * 16] __attribute__((aligned(64)));                                     \
        float mw[TS_AMX_KC * 16] __attribute__((aligned(64)));                                     \
        const int64_t nch_all = n / 32;                                                            \
        amx_begin();                                                                               \
        for (int64_t r0 = 0; r0 < nrows; r0 += 16) {                                               \
            const int nr = (int)(nrows - r0 < 16 ? nrows - r0 : 16);                               \
            for (int64_t k0 = 0; k0 < nch_all; k0 += TS_AMX_KC) {                                  \
                const int nch = (int)(nch_all - k0 < TS_AMX_KC ? nch_all - k0 : TS_AMX_KC);        \
                amx_pack_##T((const uint8_t *)w + r0 * ws, ws, nr, k0, nch, bp, dw, mw);           \
                for (int64_t c0 = 0; c0 < ncols; c0 += 16) {                                       \
                    const int nc = (int)(ncols - c0 < 16 ? ncols - c0 : 16);                       \
                    amx_tile_##T(bp, dw, mw, nr, k0, nch, (const uint8_t *)a + c0 * as, as, nc,    \
                                 y + c0 * ys + r0, ys, k0 == 0);                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        amx_done();                                                                                \
        return 1;                                                                                  \
    }

/* K-quants (Q2_K .. Q6_K) against per-256 activations, exact in integers up to the super-block
 * as the AVX-512 kernel is: per sub-block of SUB elements (16, or 32 where the scales are per 32)
 * one tile product, multiplied by the rows' integer sub-block scales and summed in int32; per
 * super-block one conversion and fma with d * da. The offset types (Q3_K, Q6_K: SAME) are packed
 * as signed codes (code - OFF); the others keep unsigned codes and add their min term
 * dmin * da * sum_j min_j * s_j, the sums of 16 activations s_j taken two at a time by an int16
 * pair product (the mins packed as pairs to match). */
/* The integer min term of super-block b for one column over the activation 16-sum pairs
 * [jp0, jp1) (0..8: the whole super-block; 2g..2g+2: sub-block pair g): the rows' negated mins
 * (mnp, int16 pairs) times the column's sums. */
static inline __m512i amx_kmins(const int32_t *mnp, const ts_block_q8a *col, int b, int jp0, int jp1) {
    __m512i m = _mm512_setzero_si512();
    for (int jp = jp0; jp < jp1; jp++) {
        int32_t sp;
        memcpy(&sp, col[jp].s, 4);
        m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(mnp + (b * 8 + jp) * 16), _mm512_set1_epi32(sp));
    }
    return m;
}

/* How a super-block's integer sums are scaled (ORDER):
 *   AMX_K_TILED:  llama.cpp's tiled K-quant GEMM (the K_LANES types): r = float(total)*d,
 *                 r = fma(dmin, mins, r), acc = fma(r, da, acc);
 *   AMX_K_REPACK: its repacked 8x8 kernels (Q4_K, K_REPACK): two chains, the scaled sums and the
 *                 min terms, fed per 64 elements for the columns of whole groups of four and per
 *                 super-block for the rest, added at the end. A row tile's min chains wait in
 *                 `ms` between super-block ranges, so the columns go in groups of AMX_CG. */
#define AMX_K_TILED 1
#define AMX_K_REPACK 2
#define AMX_CG 64 /* columns per group (AMX_K_REPACK) */
#define DEFINE_AMX_K(T, BLOCK, SAME, OFF, SUB, ORDER)                                                     \
    static void amx_kpack_##T(const void *w, size_t ws, int nr, int64_t s0, int nsb, int8_t *bp,   \
                              int32_t *scv, int32_t *mnp, float *dv, float *dmv) {                 \
        for (int r = 0; r < 16; r++) {                                                             \
            const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + (r < nr ? r : 0) * ws);         \
            for (int b = 0; b < nsb; b++) {                                                        \
                int8_t w8[TS_QK_K];                                                                \
                int16_t sc16[16], mn16[16];                                                        \
                float d = 0.0f, dmin = 0.0f;                                                       \
                if (r < nr) {                                                                      \
                    kunpack_##T(wr + s0 + b, w8, sc16, mn16, &d, &dmin);                           \
                    if (SAME) w8_sub(w8, TS_QK_K, (OFF));                                          \
                } else {                                                                           \
                    memset(w8, 0, sizeof w8);                                                      \
                    memset(sc16, 0, sizeof sc16);                                                  \
                    memset(mn16, 0, sizeof mn16);                                                  \
                }                                                                                  \
                dv[b * 16 + r] = d;                                                                \
                dmv[b * 16 + r] = dmin;                                                            \
                for (int j = 0; j < TS_QK_K / (SUB); j++) {                                        \
                    scv[(b * 16 + j) * 16 + r] = sc16[j * (SUB) / 16];                             \
                    for (int kk = 0; kk < (SUB) / 4; kk++)                                         \
                        memcpy(bp + (b * TS_QK_K + j * (SUB)) * 16 + kk * 64 + r * 4,              \
                               w8 + j * (SUB) + 4 * kk, 4);                                        \
                }                                                                                  \
                for (int jp = 0; jp < 8; jp++)                                                     \
                    mnp[(b * 8 + jp) * 16 + r] =                                                   \
                        (int32_t)((uint32_t)(uint16_t)mn16[2 * jp] | ((uint32_t)(uint16_t)mn16[2 * jp + 1] << 16)); \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static inline __attribute__((always_inline)) void amx_ktile_##T(                               \
        const int8_t *bp, const int32_t *scv, const int32_t *mnp, const float *dv, const float *dmv, \
        int nr, int64_t s0, int nsb, const uint8_t *a, size_t as, int nc, float *y, size_t ys,     \
        int first, int last, unsigned per64, float *ms) {                                          \
        __m512 acc[16] __attribute__((aligned(64)));                                               \
        __m512 macc[16] __attribute__((aligned(64))); /* AMX_K_REPACK: the min chains */          \
        int32_t dot[256] __attribute__((aligned(64)));                                             \
        int8_t stage[16 * 32] __attribute__((aligned(64)));                                        \
        for (int c = 0; c < 16; c++) acc[c] = macc[c] = _mm512_setzero_ps();                       \
        if (!first) amx_load(y, ys, acc, nc, nr); /* one chain through every super-block range */ \
        if ((ORDER) == AMX_K_REPACK && !first)                                                     \
            for (int c = 0; c < nc; c++) macc[c] = _mm512_load_ps(ms + 16 * c);                    \
        if (nc < 16) memset(stage, 0, sizeof stage);                                               \
        for (int b = 0; b < nsb; b++) {                                                            \
            const uint8_t *ab = a + (s0 + b) * 8 * sizeof(ts_block_q8a);                           \
            __m512i isum[16];                                                                      \
            for (int c = 0; c < 16; c++) isum[c] = _mm512_setzero_si512();                         \
            for (int j = 0; j < TS_QK_K / (SUB); j++) {                                            \
                const uint8_t *q = (const uint8_t *)((const ts_block_q8a *)ab + j * (SUB) / 32)->qs + \
                                   (j * (SUB)) % 32;                                               \
                const int8_t *wb = bp + (b * TS_QK_K + j * (SUB)) * 16;                            \
                _tile_zero(TS_AMX_C);                                                              \
                if ((SUB) == 16) {                                                                 \
                    AMX_LOAD_ACT(TS_AMX_A16, q, as, nc, 16, stage);                                \
                    _tile_loadd(TS_AMX_B16, wb, 64);                                               \
                    if (SAME)                                                                      \
                        _tile_dpbssd(TS_AMX_C, TS_AMX_A16, TS_AMX_B16);                            \
                    else                                                                           \
                        _tile_dpbsud(TS_AMX_C, TS_AMX_A16, TS_AMX_B16);                            \
                } else {                                                                           \
                    AMX_LOAD_ACT(TS_AMX_A, q, as, nc, 32, stage);                                  \
                    _tile_loadd(TS_AMX_B, wb, 64);                                                 \
                    if (SAME)                                                                      \
                        _tile_dpbssd(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                \
                    else                                                                           \
                        _tile_dpbsud(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                \
                }                                                                                  \
                _tile_stored(TS_AMX_C, dot, 64);                                                   \
                const __m512i sv = _mm512_loadu_si512(scv + (b * 16 + j) * 16);                   \
                for (int c = 0; c < nc; c++)                                                       \
                    isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(_mm512_load_si512(dot + 16 * c), sv)); \
                if ((ORDER) == AMX_K_REPACK && (j & 1) && per64) {                                 \
                    /* The columns in whole groups of four: one integer sum per 64 elements. */   \
                    const __m512 dvv = _mm512_loadu_ps(dv + 16 * b), dmv_ = _mm512_loadu_ps(dmv + 16 * b); \
                    for (int c = 0; c < nc; c++) {                                                 \
                        if (!(per64 >> c & 1)) continue;                                           \
                        const ts_block_q8a *col = (const ts_block_q8a *)(ab + c * as);             \
                        const __m512 dc = _mm512_set1_ps(col->d);                                  \
                        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dvv, dc), acc[c]); \
                        macc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(amx_kmins(mnp, col, b, j - 1, j + 1)), \
                                                  _mm512_mul_ps(dmv_, dc), macc[c]);               \
                        isum[c] = _mm512_setzero_si512();                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            const __m512 dvv = _mm512_loadu_ps(dv + 16 * b);                                       \
            for (int c = 0; c < nc; c++) {                                                         \
                const ts_block_q8a *col = (const ts_block_q8a *)(ab + c * as);                     \
                const __m512 dc = _mm512_set1_ps(col->d);                                          \
                if ((ORDER) == AMX_K_REPACK) {                                                     \
                    /* The other columns: one integer sum per super-block. */                     \
                    if (per64 >> c & 1) continue;                                                  \
                    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dvv, dc), acc[c]); \
                    macc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(amx_kmins(mnp, col, b, 0, 8)),          \
                                              _mm512_mul_ps(_mm512_loadu_ps(dmv + 16 * b), dc), macc[c]); \
                    continue;                                                                      \
                }                                                                                  \
                if ((ORDER) == AMX_K_TILED) {                                                      \
                    /* llama.cpp's tiled K-quant GEMM (8+ columns, as here): r = float(total)*d,    \
                     * r = fma(dmin, mins, r), acc = fma(r, da, acc). */                           \
                    __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[c]), dvv);                    \
                    if (!(SAME)) r = _mm512_fmadd_ps(_mm512_loadu_ps(dmv + 16 * b),                \
                                                     _mm512_cvtepi32_ps(amx_kmins(mnp, col, b, 0, 8)), r); \
                    acc[c] = _mm512_fmadd_ps(r, dc, acc[c]);                                       \
                    continue;                                                                      \
                }                                                                                  \
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dvv, dc), acc[c]); \
                if (!(SAME)) {                                                                     \
                    const __m512i m = amx_kmins(mnp, col, b, 0, 8);                                      \
                    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m),                                \
                                             _mm512_mul_ps(_mm512_loadu_ps(dmv + 16 * b), dc), acc[c]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        if ((ORDER) == AMX_K_REPACK) {                                                             \
            for (int c = 0; c < nc; c++) {                                                         \
                if (last)                                                                          \
                    acc[c] = _mm512_add_ps(acc[c], macc[c]);                                       \
                else                                                                               \
                    _mm512_store_ps(ms + 16 * c, macc[c]);                                         \
            }                                                                                      \
        }                                                                                          \
        amx_store(y, ys, acc, nc, nr);                                                             \
    }                                                                                              \
    static int amx_kgemm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a,        \
                             size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {           \
        if (ncols < TS_AMX_MIN_COLS) return 0;                                                     \
        int8_t bp[TS_AMX_KSB * TS_QK_K * 16] __attribute__((aligned(64)));                         \
        int32_t scv[TS_AMX_KSB * 16 * 16] __attribute__((aligned(64)));                            \
        int32_t mnp[TS_AMX_KSB * 8 * 16] __attribute__((aligned(64)));                             \
        float dv[TS_AMX_KSB * 16] __attribute__((aligned(64)));                                    \
        float dmv[TS_AMX_KSB * 16] __attribute__((aligned(64)));                                   \
        float ms[AMX_CG * 16] __attribute__((aligned(64)));                                        \
        const int64_t nsb_all = n / TS_QK_K;                                                       \
        /* AMX_K_REPACK: llama.cpp's GEMM takes the columns of whole groups of four. */            \
        const int64_t ngemm = ncols - ncols % 4;                                                   \
        const int64_t cg = (ORDER) == AMX_K_REPACK && nsb_all > TS_AMX_KSB ? AMX_CG : ncols;       \
        amx_begin();                                                                               \
        for (int64_t g0 = 0; g0 < ncols; g0 += cg) {                                               \
            const int64_t g1 = ncols - g0 < cg ? ncols : g0 + cg;                                  \
            for (int64_t r0 = 0; r0 < nrows; r0 += 16) {                                           \
                const int nr = (int)(nrows - r0 < 16 ? nrows - r0 : 16);                           \
                for (int64_t s0 = 0; s0 < nsb_all; s0 += TS_AMX_KSB) {                             \
                    const int nsb = (int)(nsb_all - s0 < TS_AMX_KSB ? nsb_all - s0 : TS_AMX_KSB);  \
                    amx_kpack_##T((const uint8_t *)w + r0 * ws, ws, nr, s0, nsb, bp, scv, mnp, dv, dmv); \
                    for (int64_t c0 = g0; c0 < g1; c0 += 16) {                                     \
                        const int nc = (int)(g1 - c0 < 16 ? g1 - c0 : 16);                         \
                        const unsigned per64 = c0 >= ngemm ? 0u                                    \
                                               : c0 + nc <= ngemm ? (1u << nc) - 1                 \
                                                                  : (1u << (ngemm - c0)) - 1;      \
                        amx_ktile_##T(bp, scv, mnp, dv, dmv, nr, s0, nsb, (const uint8_t *)a + c0 * as, \
                                      as, nc, y + c0 * ys + r0, ys, s0 == 0, s0 + nsb == nsb_all,  \
                                      per64, ms + (c0 - g0) * 16);                                 \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        amx_done();                                                                                \
        return 1;                                                                                  \
    }
