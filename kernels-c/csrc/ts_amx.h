/* The AMX-INT8 tile state of the amx tier: the tile configuration, its loading and release, and
 * the activation tile loads. The prefill GEMMs built on it are ts_qgemm.h (the per-32 types) and
 * ts_kgemm.h (the K-quants), whose tile products come from here on the amx tier and from
 * vpdpbusd on the avx512 tier. Included by ts_kernels.c only when TS_ISA_AMX is defined. GEMV
 * (decode) stays on the AVX-512 VNNI kernels of the same object.
 *
 * One tile product per 32-element chunk: the activations of 16 columns (tile A, 16 rows of 32
 * bytes, loaded straight from the q8a blocks with the column stride) times the codes of 16 weight
 * rows (tile B, 8 rows of 64 bytes in the VNNI order: row kk holds elements 4kk..4kk+3 of each
 * weight row) gives a 16 x 16 block of exact int32 chunk dot products; 16-element sub-blocks
 * (K-quants with one scale per 16) use the A16 / B16 shapes. */

#define TS_AMX_A 0 /* tile registers: activations, weights, products */
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
