/* TensorSharp quantized row kernels, compiled once per ISA tier (see build.rs).
 *
 * Every quantized weight type is described by one `unpack` function that turns a block into
 * int8 codes w8[] plus, per 16 elements, a float scale sc[] and offset mn[]:
 *     value[i] = sc[i/16] * w8[i] + mn[i/16]
 * (this reproduces ggml's dequantization bit for bit: same products, same order). The kernels
 * are built from it:
 *   - dequant:  y = sc*w8 + mn
 *   - mm_q8a:   per 32-element activation block k (scale da, half sums s0, s1):
 *               da * (sc0*dot(w8[0:16], a[0:16]) + sc1*dot(w8[16:32], a[16:32]) + mn0*s0 + mn1*s1)
 *               with the int8 dot products in the tier's SIMD (maddubs / VNNI dpbusd / NEON
 *               smull / dotprod sdot)
 *   - mm_f32:   dequantize the block, then a SIMD float dot with each activation column.
 * Each weight block is unpacked once per row and reused for every activation column.
 *
 * Where things live (every file is part of this one translation unit, compiled once per tier):
 *   ts_blocks.h       block layouts, the activation block, the kernel table
 *   ts_simd.h         each tier's vector vocabulary (accumulators, dot products, conversions)
 *   ts_unpack.h       the unpackers: a block into codes, scales and offsets
 *   ts_quantize.h     activation quantization (per-32, per-256) and lane start values
 *   ts_gemv_avx512.h  AVX-512 GEMV of Q5_0 / Q8_0 (decode), 2-8 columns of Q5_0 / Q8_0 / Q4_1 / Q5_1
 *   ts_neon.h         NEON / dotprod kernels of the per-32 types
 *   ts_lanes.h        AVX-512 GEMM of the per-32 types summed in int32 lanes
 *   ts_kvec.h         AVX-512 GEMV of Q4_K / Q6_K
 *   ts_amx.h          AMX-INT8 tile state (amx tier)
 *   ts_kgemm.h        K-quant prefill GEMM tiles (AVX2, AVX-512, AMX)
 *   ts_qgemm.h        per-32 prefill GEMM tiles (AVX2, AVX-512, AMX)
 *   ts_bsum.h         Q4_0 / Q2_0 kernels that scale whole integer totals
 *   ts_q32.h          the generic per-32 matmul (every tier's fallback)
 *   ts_kquant.h       the generic K-quant matmul (every tier's fallback)
 *   ts_attn.h         attention over an f16 KV cache
 *   this file         tier naming, the type lists, the per-type entry points, the float
 *                     kernels, the table.
 * Symbols follow <op>_<weight type>_<activation type> (mm_q4_k_q8a, mm_f16_f32, dequant_q8_0),
 * prefixed with the tier (ts_avx512_...) where they leave the file. */
#include <math.h>

#include "ts_simd.h"

#if defined(TS_ISA_SCALAR)
#define TS_ISA_NAME "scalar"
#define TS_FN(x) ts_scalar_##x
#elif defined(TS_ISA_AVX2)
#define TS_ISA_NAME "avx2"
#define TS_FN(x) ts_avx2_##x
#elif defined(TS_ISA_AMX)
#define TS_ISA_NAME "amx"
#define TS_FN(x) ts_amx_##x
#elif defined(TS_ISA_AVX512)
#define TS_ISA_NAME "avx512"
#define TS_FN(x) ts_avx512_##x
#elif defined(TS_ISA_NEON)
#define TS_ISA_NAME "neon"
#define TS_FN(x) ts_neon_##x
#elif defined(TS_ISA_DOTPROD)
#define TS_ISA_NAME "dotprod"
#define TS_FN(x) ts_dotprod_##x
#else
#error "define one TS_ISA_* macro"
#endif

#define TS_COLS 8 /* activation columns handled together per weight block */
#define TS_PREFETCH 4096 /* bytes ahead of the weight block being read */

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

#include "ts_unpack.h"

#include "ts_quantize.h"

#include "ts_gemv_avx512.h"
#include "ts_neon.h"

/* ---- kernel templates ---------------------------------------------------------------- */

/* How a type's codes, scales and offsets are laid out, so the inner loop does only what it needs.
 * Unsigned kinds store codes in 0..63 and have an integer offset OFF (value = sc*(code - OFF) + mn);
 * they multiply the codes with the signed activations directly (vpdpbusd / pmaddubsw take
 * unsigned x signed) and start the integer dot product at -OFF * (sum of the activations), so the
 * offset costs no float work.
 *   KIND_S32:       signed codes, one scale per 32 (Q8_0, IQ4_NL);
 *   KIND_U32:       unsigned, one scale per 32 (Q4_0, Q5_0, Q2_0);
 *   KIND_U32_MIN:   unsigned, one scale and one min per 32, the min term through the activation
 *                   block's f16-rounded sum `sd` as llama.cpp does (Q4_1, Q5_1);
 *   KIND_U32_MINK:  unsigned, one scale and one min per 32 through the integer sums (Q4_K, Q5_K);
 *   KIND_U16:       unsigned, one scale per 16 (Q3_K, Q6_K, TQ2_0);
 *   KIND_U16_MINK:  unsigned, one scale and one min per 16 (Q2_K). */
#define KIND_S32 0
#define KIND_U32 1
#define KIND_U32_MIN 2
#define KIND_U32_MINK 3
#define KIND_U16 4
#define KIND_U16_MINK 5
#define KIND_S16 6 /* signed codes, one scale per 16 (offset types in GEMM tiles, see mm_row) */

/* Adds one weight block's products with its activation blocks to the row accumulator `acc`
 * (integer dot products scaled in SIMD lanes) and returns the block's min terms, which are
 * summed separately as scalars. */
static inline float q8a_block_acc(ts_acc *acc, const int8_t *w8, const float *sc, const float *mn,
                                  const ts_block_q8a *ab, int nchunks, int kind, int off) {
    float mins = 0.0f;
    for (int k = 0; k < nchunks; k++) {
        const float da = ab[k].d;
        const int32_t c0 = -off * ab[k].s[0], c1 = -off * ab[k].s[1];
        if (kind == KIND_S32) {
            *acc = ts_acc_s8x32_1(*acc, w8 + 32 * k, ab[k].qs, da * sc[2 * k]);
        } else if (kind == KIND_S16) {
            *acc = ts_acc_s8x32(*acc, w8 + 32 * k, ab[k].qs, da * sc[2 * k], da * sc[2 * k + 1]);
        } else if (kind >= KIND_U16) {
            *acc = ts_acc_u8x32(*acc, w8 + 32 * k, ab[k].qs, da * sc[2 * k], da * sc[2 * k + 1], c0, c1);
        } else {
            *acc = ts_acc_u8x32_1(*acc, w8 + 32 * k, ab[k].qs, da * sc[2 * k], c0 + c1);
        }
        if (kind == KIND_U32_MIN) {
            mins += mn[2 * k] * ab[k].sd;
        } else if (kind == KIND_U32_MINK) {
            mins += da * (mn[2 * k] * (float)(ab[k].s[0] + ab[k].s[1]));
        } else if (kind == KIND_U16_MINK) {
            mins += da * (mn[2 * k] * (float)ab[k].s[0] + mn[2 * k + 1] * (float)ab[k].s[1]);
        }
    }
    return mins;
}

/* The orders in which the per-32 types' chunk products are summed (see DEFINE_Q32_KERNELS). */
#define Q32_LANES 0 /* vec_dot / tinyBLAS: eight int32 lanes per chunk, one 8-lane fma chain */
#define Q32_BLOCK 1 /* llama.cpp's repacked 8x8 kernels (Q4_0 on x86): per chunk the integer  \
                     * total, acc = fma(float(total), dw*da, acc), one scalar chain per column */
#define Q32_PAIR 2  /* ggml's generic vec_dot of Q2_0 (x86 has no other): per 64-block          \
                     * sumi = d1*total0 + d1'*total1, acc += d0*sumi, every product rounded (not \
                     * fused: the reference's build does not contract this C loop; a build     \
                     * whose compiler contracts it into fma differs in the last bits) */

/* llama.cpp's x86 orders where they differ from the lanes; every tier follows them. */
#define Q4_0_ORDER Q32_BLOCK
#define Q2_0_ORDER Q32_PAIR
/* The per-32 types: name, elements per block, block, kind, code offset, summation order. */
#define Q32_TYPES(X)                                                                               \
    X(q4_0, 32, ts_block_q4_0, KIND_U32, 8, Q4_0_ORDER)                                            \
    X(q4_1, 32, ts_block_q4_1, KIND_U32_MIN, 0, Q32_LANES)                                         \
    X(q5_0, 32, ts_block_q5_0, KIND_U32, 16, Q32_LANES)                                            \
    X(q5_1, 32, ts_block_q5_1, KIND_U32_MIN, 0, Q32_LANES)                                         \
    X(q8_0, 32, ts_block_q8_0, KIND_S32, 0, Q32_LANES)                                             \
    X(iq4_nl, 32, ts_block_iq4_nl, KIND_S32, 0, Q32_LANES)                                         \
    X(q2_0, 64, ts_block_q2_0, KIND_U32, 1, Q2_0_ORDER)

#include "ts_lanes.h"
Q32_TYPES(DEFINE_LANES_GEMM)
#include "ts_kvec.h"

#if defined(TS_ISA_AMX)
#include "ts_amx.h"
#endif
#include "ts_kgemm.h"
#include "ts_qgemm.h"
Q32_TYPES(DEFINE_QGEMM)
#if defined(TS_ISA_AVX512) || defined(TS_ISA_AVX2)
DEFINE_KGEMM(q2_k, ts_block_q2_k, 0, 0, 16, 3, KG_TILED)
DEFINE_KGEMM(q3_k, ts_block_q3_k, 1, 4, 16, 7, KG_TILED)
DEFINE_KGEMM(q4_k, ts_block_q4_k, 0, 0, 32, 15, KG_REPACK)
DEFINE_KGEMM(q5_k, ts_block_q5_k, 0, 0, 32, 31, KG_TILED)
DEFINE_KGEMM(q6_k, ts_block_q6_k, 1, 32, 16, 63, KG_TILED)
#endif

#define DEFINE_DEQUANT_KERNELS(T, QK, BLOCK, OFF)                                                    \
    static void TS_FN(dequant_##T)(const void *w, float *y, int64_t n) {                       \
        for (int64_t b = 0; b < n / (QK); b++) {                                                \
            int8_t w8[QK];                                                                      \
            float sc[(QK) / 16], mn[(QK) / 16];                                                 \
            unpack_##T((const BLOCK *)w + b, w8, sc, mn);                                       \
            for (int i = 0; i < (QK); i++) y[b * (QK) + i] = sc[i / 16] * (float)(w8[i] - (OFF)) + mn[i / 16]; \
        }                                                                                       \
    }                                                                                           \
    static void TS_FN(mm_##T##_f32)(const void *w, size_t ws, int64_t nrows, const float *x,   \
                                     size_t xs, int64_t ncols, float *y, size_t ys, int64_t n) {\
        const int64_t nb = n / (QK);                                                            \
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                       \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                  \
            for (int64_t r = 0; r < nrows; r++) {                                               \
                const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws);                 \
                float acc[TS_COLS] = {0};                                                       \
                for (int64_t b = 0; b < nb; b++) {                                              \
                    float tmp[QK];                                                              \
                    TS_FN(dequant_##T)(wr + b, tmp, QK);                                        \
                    for (int c = 0; c < nc; c++)                                                \
                        acc[c] += ts_dot_f32(tmp, x + (c0 + c) * xs + b * (QK), QK);            \
                }                                                                               \
                for (int c = 0; c < nc; c++) y[(c0 + c) * ys + r] = acc[c];                     \
            }                                                                                   \
        }                                                                                       \
    }

/* The 8-bit activation matmul through the row accumulator of q8a_block_acc. */
#define DEFINE_Q8A_KERNELS(T, QK, BLOCK, KIND, OFF)                                             \
    /* One weight row against nc activation columns (nc a constant after inlining, so the     \
     * column loop unrolls). */                                                                 \
    static inline __attribute__((always_inline)) void TS_FN(mm_row_##T)(                      \
        const BLOCK *wr, int64_t nb, const ts_block_q8a *a, size_t as, int nc, float *y,       \
        size_t ys) {                                                                            \
        ts_acc acc[TS_COLS];                                                                    \
        float mins[TS_COLS] = {0};                                                              \
        for (int c = 0; c < TS_COLS; c++) acc[c] = ts_acc_zero();                               \
        for (int64_t b = 0; b < nb; b++) {                                                      \
            int8_t w8[QK];                                                                      \
            float sc[(QK) / 16], mn[(QK) / 16];                                                 \
            for (size_t pf = 0; pf < sizeof(BLOCK); pf += 64)                                   \
                __builtin_prefetch((const uint8_t *)(wr + b) + TS_PREFETCH + pf);               \
            unpack_##T(wr + b, w8, sc, mn);                                                     \
            /* Codes with an offset: subtract it once and take the signed path, whose int32     \
             * lanes (four products each) are the ones llama.cpp converts and scales. */         \
            const int to_signed = (OFF) != 0;                                                   \
            if (to_signed)                                                                      \
                w8_sub(w8, (QK), (OFF));                                                      \
            for (int c = 0; c < nc; c++) {                                                      \
                const ts_block_q8a *ab =                                                        \
                    (const ts_block_q8a *)((const uint8_t *)a + c * as) + b * ((QK) / 32);      \
                if (to_signed)                                                                  \
                    mins[c] += q8a_block_acc(&acc[c], w8, sc, mn, ab, (QK) / 32,                \
                                             (KIND) >= KIND_U16 ? KIND_S16 : KIND_S32, 0);      \
                else                                                                            \
                    mins[c] += q8a_block_acc(&acc[c], w8, sc, mn, ab, (QK) / 32, KIND, OFF);    \
            }                                                                                   \
        }                                                                                       \
        for (int c = 0; c < nc; c++) y[c * ys] = ts_acc_sum(acc[c]) + mins[c];                  \
    }                                                                                           \
    static void TS_FN(blk_##T##_q8a)(const void *w, size_t ws, int64_t nrows,                  \
                                      const ts_block_q8a *a, size_t as, int64_t ncols, float *y,\
                                      size_t ys, int64_t n) {                                   \
        const int64_t nb = n / (QK);                                                            \
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                       \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                  \
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);      \
            for (int64_t r = 0; r < nrows; r++) {                                               \
                const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws);                 \
                float *yr = y + c0 * ys + r;                                                    \
                if (nc == TS_COLS)                                                              \
                    TS_FN(mm_row_##T)(wr, nb, ac, as, TS_COLS, yr, ys);                         \
                else if (nc == 1)                                                               \
                    TS_FN(mm_row_##T)(wr, nb, ac, as, 1, yr, ys);                               \
                else                                                                            \
                    TS_FN(mm_row_##T)(wr, nb, ac, as, nc, yr, ys);                              \
            }                                                                                   \
        }                                                                                       \
    }

#define DEFINE_QUANT_KERNELS(T, QK, BLOCK, KIND, OFF)                                              \
    DEFINE_DEQUANT_KERNELS(T, QK, BLOCK, OFF)                                                      \
    DEFINE_Q8A_KERNELS(T, QK, BLOCK, KIND, OFF)                                                    \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, \
                                     size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {   \
        TS_FN(blk_##T##_q8a)(w, ws, nrows, a, as, ncols, y, ys, n);                                \
    }

/* Types with one scale per 32 (and Q2_0, one per 64) against per-32 (Q8_0 style) activations.
 * Weights are taken 256 elements (eight 32-chunks) at a time: the eight weight-scale times
 * activation-scale products of a column are one vector multiply, from which each chunk's scale
 * is one lane permute; the code offset enters the integer dot product as its start value (-OFF
 * times the chunk's activation sum, prepared per column tile), and the min terms of Q4_1/Q5_1
 * are summed in block order with the activations' f16-rounded sums, as llama.cpp does. Per
 * chunk and column that leaves one integer dot, one conversion, one permute and one fma. Where the unsigned dot takes
 * full bytes (VNNI, TS_U8_FULL), signed codes (Q8_0, IQ4_NL) are biased by 128 once per row
 * group and take the same path with OFF 128 instead of the per-column sign trick. */
#define TS_KB 128 /* 32-chunks of activation data prepared per column tile */
#define TS_M32_RB 32 /* rows whose lane chains wait between chunk ranges (rows over TS_KB chunks) */
#define Q32_SIGNED(KIND) ((KIND) == KIND_S32 && !TS_U8_FULL)
#define Q32_OFF(KIND, OFF) ((KIND) == KIND_S32 ? (TS_U8_FULL ? 128 : 0) : (OFF))
#include "ts_bsum.h"
DEFINE_BSUM_KERNELS(q4_0, 32, ts_block_q4_0, 8, Q4_0_ORDER)
DEFINE_BSUM_KERNELS(q2_0, 64, ts_block_q2_0, 1, Q2_0_ORDER)
DEFINE_BSUM_NONE(q4_1)
DEFINE_BSUM_NONE(q5_0)
DEFINE_BSUM_NONE(q5_1)
DEFINE_BSUM_NONE(q8_0)
DEFINE_BSUM_NONE(iq4_nl)

#include "ts_q32.h"

/* The per-type entry point: the tier's own kernels where it has one for this type and shape
 * (ts_neon.h, ts_lanes.h, ts_qgemm.h, ts_bsum.h, the AVX-512 GEMV), else mm_q32. */
#define DEFINE_Q32_KERNELS(T, QK, BLOCK, KIND, OFF, ORDER)                                          \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, \
                                     size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {   \
        if (TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* aarch64: ts_neon.h */   \
        if ((ORDER) == Q32_LANES && TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 pair kernels */\
        if ((ORDER) == Q32_LANES && TS_Q32_LG(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 lanes */\
        if (TS_Q32_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* tile GEMM (prefill) */\
        if ((ORDER) != Q32_LANES && TS_Q32_BSUM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return;   \
        if ((ORDER) == Q32_LANES && ncols == 1) { /* GEMV: the block-at-a-time kernel streams best */\
            TS_FN(blk_##T##_q8a)(w, ws, nrows, a, as, ncols, y, ys, n);                             \
            return;                                                                                 \
        }                                                                                           \
        mm_q32(w, ws, nrows, a, as, ncols, y, ys, n, QK, sizeof(BLOCK), KIND, OFF, ORDER, unpack_##T);\
    }

/* K-quants against per-256 (Q8_K style) activations, in integer arithmetic as far as it goes:
 * per 32-element chunk one unsigned-by-signed byte multiply-add and one int16 multiply-add with
 * the sub-block scales, the mins (or the code offset) through the activations' per-16 sums, and
 * per super-block and column one conversion and fma with d*da (and dmin*da): a few vector
 * operations per chunk and column instead of a float scale product each. SAME: dmin == d (the
 * offset types), so the two integer sums share one conversion. The per-16 sums and scales of a
 * column tile are gathered once (TS_KSB super-blocks at a time, on the stack). */
#define TS_KSB 64
/* Q3_K's vec_dot subtracts its offset inside each int32 lane (x86), on every tier. */
#define Q3_K_LANE_OFF 1
#define K_LANES 0  /* llama.cpp's vec_dot on x86: eight float lanes per column; from 8 columns on \
                    * its tiled K-quant GEMM: per super-block r = float(total)*d (- dmin*mins),   \
                    * then fma(r, da, acc) (its separate multiply and add, contracted by GCC) */
#define K_REPACK 1 /* llama.cpp's repacked 8x8 kernels: two float chains (scaled sums, mins),   \
                    * subtracted at the end, fed one integer sum per super-block (GEMV) or per 64  \
                    * elements (GEMM, used for the columns of whole groups of four) */
#include "ts_kquant.h"

/* The per-type entry point: the tier's own kernels where it has one for this type and shape
 * (ts_neon.h, the AVX-512 GEMV of ts_kvec.h, the tiles of ts_kgemm.h), else mm_kquant. */
#define DEFINE_K_KERNELS(T, BLOCK, SAME, ORDER, LANE_OFF)                                          \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, \
                                     size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {   \
        if (TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* aarch64: ts_neon.h */   \
        if (TS_K_GEMV(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 vec_dot GEMV */  \
        if (TS_K_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* tile GEMM (prefill) */  \
        int16_t p4buf[(LANE_OFF) ? TS_KSB * 8 * 16 : 1]; /* LANE_OFF decode: ts_p4 per chunk */     \
        mm_kquant(w, ws, nrows, a, as, ncols, y, ys, n, sizeof(BLOCK), SAME, ORDER, LANE_OFF, kunpack_##T, p4buf);\
    }

DEFINE_DEQUANT_KERNELS(q4_0, 32, ts_block_q4_0, 8)
DEFINE_DEQUANT_KERNELS(q4_1, 32, ts_block_q4_1, 0)
DEFINE_DEQUANT_KERNELS(q5_0, 32, ts_block_q5_0, 16)
DEFINE_DEQUANT_KERNELS(q5_1, 32, ts_block_q5_1, 0)
DEFINE_DEQUANT_KERNELS(q8_0, 32, ts_block_q8_0, 0)
DEFINE_DEQUANT_KERNELS(iq4_nl, 32, ts_block_iq4_nl, 0)
DEFINE_DEQUANT_KERNELS(q2_0, 64, ts_block_q2_0, 1)
DEFINE_Q8A_KERNELS(q4_0, 32, ts_block_q4_0, KIND_U32, 8)
DEFINE_Q8A_KERNELS(q4_1, 32, ts_block_q4_1, KIND_U32_MIN, 0)
DEFINE_Q8A_KERNELS(q5_0, 32, ts_block_q5_0, KIND_U32, 16)
DEFINE_Q8A_KERNELS(q5_1, 32, ts_block_q5_1, KIND_U32_MIN, 0)
DEFINE_Q8A_KERNELS(q8_0, 32, ts_block_q8_0, KIND_S32, 0)
DEFINE_Q8A_KERNELS(iq4_nl, 32, ts_block_iq4_nl, KIND_S32, 0)
DEFINE_Q8A_KERNELS(q2_0, 64, ts_block_q2_0, KIND_U32, 1)
Q32_TYPES(DEFINE_Q32_KERNELS)
DEFINE_QUANT_KERNELS(tq2_0, 256, ts_block_tq2_0, KIND_U16, 1)
DEFINE_DEQUANT_KERNELS(q2_k, 256, ts_block_q2_k, 0)
DEFINE_DEQUANT_KERNELS(q3_k, 256, ts_block_q3_k, 4)
DEFINE_DEQUANT_KERNELS(q4_k, 256, ts_block_q4_k, 0)
DEFINE_DEQUANT_KERNELS(q5_k, 256, ts_block_q5_k, 0)
DEFINE_DEQUANT_KERNELS(q6_k, 256, ts_block_q6_k, 32)
/* Each type sums in the order of the kernel llama.cpp's x86 CPU backend runs for it (Q4_K is
 * repacked into 8x8 interleaved blocks at load; Q2_K is too where AVX-512 is present, an order
 * not reproduced here: none of the reference models has Q2_K tensors to check it against). */
DEFINE_K_KERNELS(q2_k, ts_block_q2_k, 0, K_LANES, 0)
DEFINE_K_KERNELS(q3_k, ts_block_q3_k, 1, K_LANES, Q3_K_LANE_OFF)
DEFINE_K_KERNELS(q4_k, ts_block_q4_k, 0, K_REPACK, 0)
DEFINE_K_KERNELS(q5_k, ts_block_q5_k, 0, K_LANES, 0)
DEFINE_K_KERNELS(q6_k, ts_block_q6_k, 1, K_LANES, 0)

/* ---- float weight types (f32 activations only) --------------------------------------- */

#define TS_FCHUNK 64

static inline void cvt_row_f32(const void *w, int64_t off, float *y, int64_t n) {
    memcpy(y, (const float *)w + off, (size_t)n * sizeof(float));
}
static inline void cvt_row_f16(const void *w, int64_t off, float *y, int64_t n) {
    ts_cvt_f16_row((const ts_half *)w + off, y, n);
}
static inline void cvt_row_bf16(const void *w, int64_t off, float *y, int64_t n) {
    const uint16_t *h = (const uint16_t *)w + off;
    for (int64_t i = 0; i < n; i++) y[i] = ts_bf2f(h[i]);
}

#define DEFINE_FLOAT_KERNELS(T)                                                                 \
    static void TS_FN(dequant_##T)(const void *w, float *y, int64_t n) { cvt_row_##T(w, 0, y, n); } \
    static void TS_FN(mm_##T##_f32)(const void *w, size_t ws, int64_t nrows, const float *x,   \
                                     size_t xs, int64_t ncols, float *y, size_t ys, int64_t n) {\
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                       \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                  \
            for (int64_t r = 0; r < nrows; r++) {                                               \
                const void *wr = (const uint8_t *)w + r * ws;                                   \
                float acc[TS_COLS] = {0};                                                       \
                for (int64_t i = 0; i < n; i += TS_FCHUNK) {                                    \
                    const int64_t len = n - i < TS_FCHUNK ? n - i : TS_FCHUNK;                  \
                    float tmp[TS_FCHUNK];                                                       \
                    cvt_row_##T(wr, i, tmp, len);                                               \
                    for (int c = 0; c < nc; c++)                                                \
                        acc[c] += ts_dot_f32(tmp, x + (c0 + c) * xs + i, len);                  \
                }                                                                               \
                for (int c = 0; c < nc; c++) y[(c0 + c) * ys + r] = acc[c];                     \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_FLOAT_KERNELS(f32)
DEFINE_FLOAT_KERNELS(f16)
DEFINE_FLOAT_KERNELS(bf16)

/* ---- attention over an f16 KV cache ----------------------------------------------------- */

#include "ts_attn.h"

/* ---- the GEMV form: a batched decode step -------------------------------------------------
 * Every column gets the bits of a one-column product (decode), at any number of columns. The
 * plain entries keep that up to the type's exact width (WType::gemv_exact_cols: 3 for Q4_K, 7
 * for the other K-quants and Q4_0, any for the rest; from there on they sum as llama.cpp's
 * batched GEMMs do), so the columns go to them in groups of that width, or of the tier's
 * several-column GEMV where it has a wider one (AVX-512 Q4_K and Q6_K: seven). */
#define EXACT_COLS_DEFAULT INT64_MAX
#define DEFINE_GEMV_FORM(T, EXACT, K_COLS_MAX, K_COLS)                                             \
    static void TS_FN(mv_##T##_q8a)(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, \
                                     size_t as, int64_t ncols, float *y, size_t ys, int64_t n) {   \
        const int64_t g = (K_COLS_MAX) > (EXACT) ? (K_COLS_MAX) : (EXACT);                          \
        for (int64_t c0 = 0; c0 < ncols; c0 += g) {                                                 \
            const int64_t nc = ncols - c0 < g ? ncols - c0 : g;                                     \
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as);          \
            float *yc = y + c0 * ys;                                                                \
            if (nc >= 2 && (K_COLS_MAX) >= nc && K_COLS(w, ws, nrows, ac, as, nc, yc, ys, n))       \
                continue;                                                                           \
            TS_FN(mm_##T##_q8a)(w, ws, nrows, ac, as, nc, yc, ys, n);                               \
        }                                                                                           \
    }
DEFINE_GEMV_FORM(q4_0, 7, 0, ts_cols_none)
DEFINE_GEMV_FORM(q4_1, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(q5_0, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(q5_1, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(q8_0, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(iq4_nl, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(q2_0, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(tq2_0, EXACT_COLS_DEFAULT, 0, ts_cols_none)
DEFINE_GEMV_FORM(q2_k, 7, TS_K_COLS_MAX(q2_k), TS_K_COLS_FN(q2_k))
DEFINE_GEMV_FORM(q3_k, 7, TS_K_COLS_MAX(q3_k), TS_K_COLS_FN(q3_k))
DEFINE_GEMV_FORM(q4_k, 3, TS_K_COLS_MAX(q4_k), TS_K_COLS_FN(q4_k))
DEFINE_GEMV_FORM(q5_k, 7, TS_K_COLS_MAX(q5_k), TS_K_COLS_FN(q5_k))
DEFINE_GEMV_FORM(q6_k, 7, TS_K_COLS_MAX(q6_k), TS_K_COLS_FN(q6_k))

/* ---- the table ------------------------------------------------------------------------- */

#define Q(T, ID) [ID] = TS_FN(dequant_##T)
#define M(T, ID) [ID] = TS_FN(mm_##T##_q8a)
#define V(T, ID) [ID] = TS_FN(mv_##T##_q8a)
#define F(T, ID) [ID] = TS_FN(mm_##T##_f32)
#define ALL_TYPES(X)                                                                            \
    X(q4_0, TS_T_Q4_0), X(q4_1, TS_T_Q4_1), X(q5_0, TS_T_Q5_0), X(q5_1, TS_T_Q5_1),             \
    X(q8_0, TS_T_Q8_0), X(iq4_nl, TS_T_IQ4_NL), X(q2_0, TS_T_Q2_0), X(tq2_0, TS_T_TQ2_0),       \
    X(q2_k, TS_T_Q2_K), X(q3_k, TS_T_Q3_K), X(q4_k, TS_T_Q4_K), X(q5_k, TS_T_Q5_K),             \
    X(q6_k, TS_T_Q6_K)

static const ts_kernel_table TABLE = {
    .name = TS_ISA_NAME,
    .dequant = {ALL_TYPES(Q), Q(f32, TS_T_F32), Q(f16, TS_T_F16), Q(bf16, TS_T_BF16)},
    .mm_q8a = {ALL_TYPES(M)},
    .mv_q8a = {ALL_TYPES(V)},
    .mm_f32 = {ALL_TYPES(F), F(f32, TS_T_F32), F(f16, TS_T_F16), F(bf16, TS_T_BF16)},
    .quantize_q8a = TS_FN(quantize_q8a),
    .quantize_q8a_k = TS_FN(quantize_q8a_k),
    .attn_f16 = TS_FN(attn_f16),
    .swiglu = TS_FN(swiglu),
};

const ts_kernel_table *TS_FN(kernel_table)(void) { return &TABLE; }
