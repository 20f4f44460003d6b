/* TensorSharp kernels: ggml block layouts, our activation block, and the per-tier kernel table.
 *
 * Block layouts follow ggml's ggml-common.h exactly (they are read straight out of GGUF files);
 * Q2_0 (type 42) follows shared/MODELS.md. Every struct has a _Static_assert on its size, and the
 * Rust side (src/blocks.rs) asserts the same sizes at compile time. */
#ifndef TS_BLOCKS_H
#define TS_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define TS_QK_K 256
#define TS_NTYPES 43 /* ggml type ids 0..42 */

/* ggml type ids we have kernels for. */
enum {
    TS_T_F32 = 0, TS_T_F16 = 1, TS_T_Q4_0 = 2, TS_T_Q4_1 = 3, TS_T_Q5_0 = 6, TS_T_Q5_1 = 7,
    TS_T_Q8_0 = 8, TS_T_Q2_K = 10, TS_T_Q3_K = 11, TS_T_Q4_K = 12, TS_T_Q5_K = 13,
    TS_T_Q6_K = 14, TS_T_IQ4_NL = 20, TS_T_BF16 = 30, TS_T_TQ2_0 = 35, TS_T_Q2_0 = 42
};

typedef uint16_t ts_half; /* IEEE binary16 bits */

typedef struct { ts_half d; uint8_t qs[16]; } ts_block_q4_0;
typedef struct { ts_half d; ts_half m; uint8_t qs[16]; } ts_block_q4_1;
typedef struct { ts_half d; uint8_t qh[4]; uint8_t qs[16]; } ts_block_q5_0;
typedef struct { ts_half d; ts_half m; uint8_t qh[4]; uint8_t qs[16]; } ts_block_q5_1;
typedef struct { ts_half d; int8_t qs[32]; } ts_block_q8_0;
typedef struct { ts_half d; uint8_t qs[16]; } ts_block_iq4_nl;
typedef struct { ts_half d; uint8_t qs[16]; } ts_block_q2_0; /* 64 elements */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; ts_half d; ts_half dmin; } ts_block_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; ts_half d; } ts_block_q3_k;
typedef struct { ts_half d; ts_half dmin; uint8_t scales[12]; uint8_t qs[128]; } ts_block_q4_k;
typedef struct { ts_half d; ts_half dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } ts_block_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ts_half d; } ts_block_q6_k;
typedef struct { uint8_t qs[64]; ts_half d; } ts_block_tq2_0;

/* Activations quantized on the fly: blocks of 32, one f32 scale, and the integer sums of each
 * half (16 values). One block format serves every quantized weight type (two quantizers fill it:
 * per-32 scales, or one scale per 256 as llama.cpp's Q8_K for K-quants): the sums carry the
 * min/offset terms (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) and the 16-element sub-block scales
 * (Q2_K, Q3_K, Q6_K). `sd` is the block sum times the scale as llama.cpp's Q8_1 keeps it (rounded
 * to f16), used for the min term of Q4_1 and Q5_1. Values are in [-127, 127] (never -128), which
 * the x86 sign trick needs. */
typedef struct { float d; float sd; int16_t s[2]; int8_t qs[32]; } ts_block_q8a;

_Static_assert(sizeof(ts_block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(ts_block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(ts_block_q5_0) == 22, "q5_0 size");
_Static_assert(sizeof(ts_block_q5_1) == 24, "q5_1 size");
_Static_assert(sizeof(ts_block_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(ts_block_iq4_nl) == 18, "iq4_nl size");
_Static_assert(sizeof(ts_block_q2_0) == 18, "q2_0 size");
_Static_assert(sizeof(ts_block_q2_k) == 84, "q2_k size");
_Static_assert(sizeof(ts_block_q3_k) == 110, "q3_k size");
_Static_assert(sizeof(ts_block_q4_k) == 144, "q4_k size");
_Static_assert(sizeof(ts_block_q5_k) == 176, "q5_k size");
_Static_assert(sizeof(ts_block_q6_k) == 210, "q6_k size");
_Static_assert(sizeof(ts_block_tq2_0) == 66, "tq2_0 size");
_Static_assert(sizeof(ts_block_q8a) == 44, "q8a size");

/* Row kernels. `n` is the row length in elements (a multiple of the type's block size, and of 32
 * for the q8a path). Strides are in bytes for weights and q8a activations, in elements for f32
 * activations and outputs.
 *   dequant: y[0..n) = dequantize(w)
 *   mm:      for r < nrows, c < ncols: y[c*y_stride + r] = dot(w + r*w_stride, act_c)
 * mm with ncols == 1 is GEMV (decode); with nrows == 1, one weight row against several
 * activation vectors; in general a GEMM tile that unpacks each weight block once for all
 * columns. */
typedef void (*ts_dequant_fn)(const void *w, float *y, int64_t n);
typedef void (*ts_mm_q8a_fn)(const void *w, size_t w_stride, int64_t nrows,
                             const ts_block_q8a *a, size_t a_stride, int64_t ncols,
                             float *y, size_t y_stride, int64_t n);
typedef void (*ts_mm_f32_fn)(const void *w, size_t w_stride, int64_t nrows,
                             const float *x, size_t x_stride, int64_t ncols,
                             float *y, size_t y_stride, int64_t n);
typedef void (*ts_quantize_q8a_fn)(const float *x, ts_block_q8a *y, int64_t n);
/* One query against npos cached f16 rows: out[0..hdv) = softmax(scale * q.K) . V, computed as
 * llama.cpp's CPU backend does without flash attention (ts_attn.h): q and the probabilities
 * rounded to f16, its dot-product lane orders (batched: two or more tokens in the matmul, else
 * one), its vector expf. k/v point at row 0 (cache cell `first`); strides in elements; scores:
 * npos floats of scratch. hd <= 512. */
typedef void (*ts_attn_f16_fn)(const float *q, const ts_half *k, size_t k_stride, const ts_half *v,
                               size_t v_stride, int64_t first, int64_t npos, int64_t hd, int64_t hdv,
                               float scale, int batched, float *scores, float *out);

/* g[i] = silu(g[i]) * u[i] over n values, as llama.cpp's CPU backend computes it: its vector expf
 * for the first n_vec (whole chunks of 16 of a row), libm's expf past them. */
typedef void (*ts_swiglu_fn)(float *g, const float *u, int64_t n, int64_t n_vec);

typedef struct {
    const char *name;
    ts_dequant_fn dequant[TS_NTYPES];
    ts_mm_q8a_fn mm_q8a[TS_NTYPES]; /* NULL for float weight types (they use mm_f32) */
    ts_mm_q8a_fn mv_q8a[TS_NTYPES]; /* the GEMV form: each column as a one-column product */
    ts_mm_f32_fn mm_f32[TS_NTYPES];
    ts_quantize_q8a_fn quantize_q8a;   /* per-32 scales (Q8_0 / Q8_1 style) */
    ts_quantize_q8a_fn quantize_q8a_k; /* per-256 scales (Q8_K style; n % 256 == 0) */
    ts_attn_f16_fn attn_f16;
    ts_swiglu_fn swiglu;
} ts_kernel_table;

const ts_kernel_table *ts_scalar_kernel_table(void);
const ts_kernel_table *ts_avx2_kernel_table(void);
const ts_kernel_table *ts_avx512_kernel_table(void);
const ts_kernel_table *ts_neon_kernel_table(void);
const ts_kernel_table *ts_dotprod_kernel_table(void);

#endif
