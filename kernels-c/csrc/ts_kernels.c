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
 * Each weight block is unpacked once per row and reused for every activation column. */
#include "ts_simd.h"

#if defined(TS_ISA_SCALAR)
#define TS_ISA_NAME "scalar"
#define TS_FN(x) ts_scalar_##x
#elif defined(TS_ISA_AVX2)
#define TS_ISA_NAME "avx2"
#define TS_FN(x) ts_avx2_##x
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

#define TS_COLS 4 /* activation columns handled together per weight block */

static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

/* ---- unpackers: block -> w8[QK], sc[QK/16], mn[QK/16] ------------------------------- */

static inline void set_sc(float *sc, float *mn, int n16, float d, float m) {
    for (int i = 0; i < n16; i++) { sc[i] = d; mn[i] = m; }
}

static inline void unpack_q4_0(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q4_0 *b = blk;
    for (int j = 0; j < 16; j++) {
        w8[j] = (int8_t)((b->qs[j] & 15) - 8);
        w8[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_q4_1(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q4_1 *b = blk;
    for (int j = 0; j < 16; j++) {
        w8[j] = (int8_t)(b->qs[j] & 15);
        w8[j + 16] = (int8_t)(b->qs[j] >> 4);
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), ts_h2f(b->m));
}

static inline void unpack_q5_0(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q5_0 *b = blk;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)(((qh >> j) << 4) & 0x10);
        const int h1 = (int)((qh >> (j + 12)) & 0x10);
        w8[j] = (int8_t)(((b->qs[j] & 15) | h0) - 16);
        w8[j + 16] = (int8_t)(((b->qs[j] >> 4) | h1) - 16);
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_q5_1(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q5_1 *b = blk;
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    for (int j = 0; j < 16; j++) {
        const int h0 = (int)(((qh >> j) << 4) & 0x10);
        const int h1 = (int)((qh >> (j + 12)) & 0x10);
        w8[j] = (int8_t)((b->qs[j] & 15) | h0);
        w8[j + 16] = (int8_t)((b->qs[j] >> 4) | h1);
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), ts_h2f(b->m));
}

static inline void unpack_q8_0(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q8_0 *b = blk;
    memcpy(w8, b->qs, 32);
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_iq4_nl(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_iq4_nl *b = blk;
    for (int j = 0; j < 16; j++) {
        w8[j] = kvalues_iq4nl[b->qs[j] & 15];
        w8[j + 16] = kvalues_iq4nl[b->qs[j] >> 4];
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

/* Q2_0: 64 codes, code j at bits 2*(j%4) of byte j/4, value (q-1)*d. */
static inline void unpack_q2_0(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q2_0 *b = blk;
    for (int j = 0; j < 64; j++) w8[j] = (int8_t)(((b->qs[j >> 2] >> (2 * (j & 3))) & 3) - 1);
    set_sc(sc, mn, 4, ts_h2f(b->d), 0.0f);
}

static inline void unpack_tq2_0(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_tq2_0 *b = blk;
    int idx = 0;
    for (int j = 0; j < 64; j += 32)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) w8[idx++] = (int8_t)(((b->qs[j + m] >> (2 * l)) & 3) - 1);
    set_sc(sc, mn, 16, ts_h2f(b->d), 0.0f);
}

static inline void unpack_q2_k(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q2_k *b = blk;
    const float d = ts_h2f(b->d), dmin = ts_h2f(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0, idx = 0;
    for (int n = 0; n < TS_QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                const uint8_t s = b->scales[is];
                sc[is] = d * (float)(s & 0xF);
                mn[is] = -(dmin * (float)(s >> 4));
                is++;
                for (int l = 0; l < 16; l++) w8[idx++] = (int8_t)((q[l + 16 * half] >> shift) & 3);
            }
        }
        q += 32;
    }
}

static inline void unpack_q3_k(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q3_k *b = blk;
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    uint32_t aux[4];
    memcpy(aux, b->scales, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    memcpy(scales, aux, 16);
    const float d_all = ts_h2f(b->d);
    const uint8_t *q = b->qs;
    uint8_t m = 1;
    int is = 0, idx = 0;
    for (int n = 0; n < TS_QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                sc[is] = d_all * (float)(scales[is] - 32);
                mn[is] = 0.0f;
                is++;
                for (int l = 0; l < 16; l++) {
                    const int k = l + 16 * half;
                    w8[idx++] = (int8_t)(((q[k] >> shift) & 3) - ((b->hmask[k] & m) ? 0 : 4));
                }
            }
            m <<= 1;
        }
        q += 32;
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins. */
static inline void k4_scales(const uint8_t *scales, float d, float dmin, float *sc, float *mn) {
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, scales, &s, &m);
        sc[2 * j] = sc[2 * j + 1] = d * (float)s;
        mn[2 * j] = mn[2 * j + 1] = -(dmin * (float)m);
    }
}

static inline void unpack_q4_k(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q4_k *b = blk;
    const uint8_t *q = b->qs;
    for (int j = 0; j < 4; j++) {
        for (int l = 0; l < 32; l++) {
            w8[64 * j + l] = (int8_t)(q[l] & 0xF);
            w8[64 * j + 32 + l] = (int8_t)(q[l] >> 4);
        }
        q += 32;
    }
    k4_scales(b->scales, ts_h2f(b->d), ts_h2f(b->dmin), sc, mn);
}

static inline void unpack_q5_k(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q5_k *b = blk;
    const uint8_t *ql = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 4; j++) {
        for (int l = 0; l < 32; l++) {
            w8[64 * j + l] = (int8_t)((ql[l] & 0xF) + ((b->qh[l] & u1) ? 16 : 0));
            w8[64 * j + 32 + l] = (int8_t)((ql[l] >> 4) + ((b->qh[l] & u2) ? 16 : 0));
        }
        ql += 32;
        u1 <<= 2;
        u2 <<= 2;
    }
    k4_scales(b->scales, ts_h2f(b->d), ts_h2f(b->dmin), sc, mn);
}

static inline void unpack_q6_k(const void *blk, int8_t *w8, float *sc, float *mn) {
    const ts_block_q6_k *b = blk;
    const float d = ts_h2f(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    for (int n = 0; n < TS_QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            w8[n + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            w8[n + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            w8[n + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            w8[n + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        ql += 64;
        qh += 32;
    }
    for (int i = 0; i < 16; i++) {
        sc[i] = d * (float)b->scales[i];
        mn[i] = 0.0f;
    }
}

/* ---- activation quantization -------------------------------------------------------- */

/* Round to nearest, ties to even, for |v| < 2^22, identically on every tier. */
static inline int32_t ts_round(float v) {
    float t = v + 12582912.0f; /* 1.5 * 2^23 */
    int32_t bits;
    memcpy(&bits, &t, 4);
    return bits - 0x4B400000;
}

/* Per-32 blocks, as llama.cpp's x86 Q8_0/Q8_1 quantizer: values RNE(x * 127/amax), scale
 * amax/127 rounded to f16 (stored here as the f32 value of that f16). */
void TS_FN(quantize_q8a)(const float *x, ts_block_q8a *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float v = xb[j] < 0 ? -xb[j] : xb[j];
            amax = v > amax ? v : amax;
        }
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int32_t s0 = 0, s1 = 0;
        for (int j = 0; j < 32; j++) {
            int32_t q = ts_round(xb[j] * id);
            q = q > 127 ? 127 : (q < -127 ? -127 : q);
            y[b].qs[j] = (int8_t)q;
            if (j < 16) s0 += q; else s1 += q;
        }
        y[b].d = ts_h2f(ts_f2h(amax / 127.0f));
        y[b].sd = ts_h2f(ts_f2h(amax / 127.0f * (float)(s0 + s1)));
        y[b].s[0] = (int16_t)s0;
        y[b].s[1] = (int16_t)s1;
    }
}

/* Per-256 super-blocks, as llama.cpp's Q8_K quantizer (used with K-quants): one f32 scale for
 * 256 values, iscale = -127/max where max is the value of largest magnitude; every one of the
 * 8 q8a blocks of a super-block carries the same scale. */
void TS_FN(quantize_q8a_k)(const float *x, ts_block_q8a *y, int64_t n) {
    for (int64_t sb = 0; sb < n / TS_QK_K; sb++) {
        const float *xs = x + TS_QK_K * sb;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < TS_QK_K; j++) {
            const float ax = xs[j] < 0 ? -xs[j] : xs[j];
            if (ax > amax) { amax = ax; max = xs[j]; }
        }
        const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
        const float d = amax != 0.0f ? 1.0f / iscale : 0.0f;
        for (int b = 0; b < TS_QK_K / 32; b++) {
            ts_block_q8a *yb = y + sb * (TS_QK_K / 32) + b;
            int32_t s0 = 0, s1 = 0;
            for (int j = 0; j < 32; j++) {
                int32_t q = ts_round(iscale * xs[32 * b + j]);
                q = q > 127 ? 127 : (q < -127 ? -127 : q);
                yb->qs[j] = (int8_t)q;
                if (j < 16) s0 += q; else s1 += q;
            }
            yb->d = d;
            yb->sd = d * (float)(s0 + s1);
            yb->s[0] = (int16_t)s0;
            yb->s[1] = (int16_t)s1;
        }
    }
}

/* ---- kernel templates ---------------------------------------------------------------- */

/* BLOCK_MIN: the type has one min per 32 (Q4_1, Q5_1), whose term uses the activation block's
 * f16-rounded sum `sd` as llama.cpp does; otherwise mins (K-quants) use the integer half sums. */
static inline float q8a_block_dot(const int8_t *w8, const float *sc, const float *mn,
                                  const ts_block_q8a *ab, int nchunks, int block_min) {
    float acc = 0.0f;
    for (int k = 0; k < nchunks; k++) {
        int32_t lo, hi;
        ts_dot_s8x32(w8 + 32 * k, ab[k].qs, &lo, &hi);
        if (block_min) {
            acc += ab[k].d * (sc[2 * k] * (float)(lo + hi)) + mn[2 * k] * ab[k].sd;
        } else {
            const float part = sc[2 * k] * (float)lo + sc[2 * k + 1] * (float)hi +
                               mn[2 * k] * (float)ab[k].s[0] + mn[2 * k + 1] * (float)ab[k].s[1];
            acc += ab[k].d * part;
        }
    }
    return acc;
}

#define DEFINE_QUANT_KERNELS(T, QK, BLOCK, BLOCK_MIN)                                                    \
    static void TS_FN(dequant_##T)(const void *w, float *y, int64_t n) {                       \
        for (int64_t b = 0; b < n / (QK); b++) {                                                \
            int8_t w8[QK];                                                                      \
            float sc[(QK) / 16], mn[(QK) / 16];                                                 \
            unpack_##T((const BLOCK *)w + b, w8, sc, mn);                                       \
            for (int i = 0; i < (QK); i++) y[b * (QK) + i] = sc[i / 16] * (float)w8[i] + mn[i / 16]; \
        }                                                                                       \
    }                                                                                           \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows,                   \
                                     const ts_block_q8a *a, size_t as, int64_t ncols, float *y, \
                                     size_t ys, int64_t n) {                                    \
        const int64_t nb = n / (QK);                                                            \
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                       \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                  \
            for (int64_t r = 0; r < nrows; r++) {                                               \
                const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws);                 \
                float acc[TS_COLS] = {0};                                                       \
                for (int64_t b = 0; b < nb; b++) {                                              \
                    int8_t w8[QK];                                                              \
                    float sc[(QK) / 16], mn[(QK) / 16];                                         \
                    unpack_##T(wr + b, w8, sc, mn);                                             \
                    for (int c = 0; c < nc; c++) {                                              \
                        const ts_block_q8a *ab =                                                \
                            (const ts_block_q8a *)((const uint8_t *)a + (c0 + c) * as) +        \
                            b * ((QK) / 32);                                                    \
                        acc[c] += q8a_block_dot(w8, sc, mn, ab, (QK) / 32, BLOCK_MIN);                     \
                    }                                                                           \
                }                                                                               \
                for (int c = 0; c < nc; c++) y[(c0 + c) * ys + r] = acc[c];                     \
            }                                                                                   \
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

DEFINE_QUANT_KERNELS(q4_0, 32, ts_block_q4_0, 0)
DEFINE_QUANT_KERNELS(q4_1, 32, ts_block_q4_1, 1)
DEFINE_QUANT_KERNELS(q5_0, 32, ts_block_q5_0, 0)
DEFINE_QUANT_KERNELS(q5_1, 32, ts_block_q5_1, 1)
DEFINE_QUANT_KERNELS(q8_0, 32, ts_block_q8_0, 0)
DEFINE_QUANT_KERNELS(iq4_nl, 32, ts_block_iq4_nl, 0)
DEFINE_QUANT_KERNELS(q2_0, 64, ts_block_q2_0, 0)
DEFINE_QUANT_KERNELS(tq2_0, 256, ts_block_tq2_0, 0)
DEFINE_QUANT_KERNELS(q2_k, 256, ts_block_q2_k, 0)
DEFINE_QUANT_KERNELS(q3_k, 256, ts_block_q3_k, 0)
DEFINE_QUANT_KERNELS(q4_k, 256, ts_block_q4_k, 0)
DEFINE_QUANT_KERNELS(q5_k, 256, ts_block_q5_k, 0)
DEFINE_QUANT_KERNELS(q6_k, 256, ts_block_q6_k, 0)

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

/* ---- the table ------------------------------------------------------------------------- */

#define Q(T, ID) [ID] = TS_FN(dequant_##T)
#define M(T, ID) [ID] = TS_FN(mm_##T##_q8a)
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
    .mm_f32 = {ALL_TYPES(F), F(f32, TS_T_F32), F(f16, TS_T_F16), F(bf16, TS_T_BF16)},
    .quantize_q8a = TS_FN(quantize_q8a),
    .quantize_q8a_k = TS_FN(quantize_q8a_k),
};

const ts_kernel_table *TS_FN(kernel_table)(void) { return &TABLE; }
