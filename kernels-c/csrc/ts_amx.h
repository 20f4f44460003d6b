/* AMX-INT8 tile GEMM against 8-bit activation blocks, the prefill matmul of the amx tier: the
 * weight types with one scale per 32 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_0) here; the
 * K-quants take the tile products of ts_kgemm.h. Included by ts_kernels.c after the unpackers
 * and ts_kgemm.h, only when TS_ISA_AMX is defined. GEMV (decode) stays on the AVX-512 VNNI
 * kernels of the same object.
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
        if (!first) kg_load(y, ys, acc, nc, nr); /* one chain through every chunk range */       \
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
        kg_store(y, ys, acc, nc, nr);                                                             \
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
