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

/* ---- unpackers: block -> w8[QK], sc[QK/16], mn[QK/16] ------------------------------- */

/* GCC/Clang vector extensions: element-wise byte arithmetic that each tier's compiler flags
 * turn into its own SIMD (SSE2/AVX2/AVX-512/NEON); values wrap modulo 256 and are stored as
 * int8. */
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef uint8_t u8x32 __attribute__((vector_size(32)));
static inline u8x16 ld16(const uint8_t *p) { u8x16 v; memcpy(&v, p, 16); return v; }
static inline u8x32 ld32(const uint8_t *p) { u8x32 v; memcpy(&v, p, 32); return v; }
static inline void st32(int8_t *p, u8x32 v) { memcpy(p, &v, 32); }
/* One 32-byte store of two halves (two 16-byte stores followed by a 32-byte load would defeat
 * store-to-load forwarding). */
static inline void st16x2(int8_t *p, u8x16 lo, u8x16 hi) { st32(p, __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)); }
/* Takes off from n codes (a multiple of 32) the offset off, making them signed. */
static inline void w8_sub(int8_t *w8, int n, int off) {
    for (int i = 0; i < n; i += 32) st32(w8 + i, ld32((const uint8_t *)w8 + i) - (uint8_t)off);
}

/* Q5 high bits: bit j of the 32-bit little-endian qh, as 0x10 in byte j. */
static inline u8x32 q5_high(const uint8_t *qh) {
    u8x16 v = {0};
    memcpy(&v, qh, 4);
    const u8x32 bytes = __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const u8x32 bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
                       1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return (u8x32)((bytes & bit) != 0) & 0x10;
}

/* The 32 codes of a 16-byte nibble block: low nibbles first, then high nibbles. */
static inline u8x32 nibbles32(const uint8_t *qs) {
    const u8x16 x = ld16(qs);
    return __builtin_shufflevector(x & 15, x >> 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
}

static inline void set_sc(float *sc, float *mn, int n16, float d, float m) {
    for (int i = 0; i < n16; i++) { sc[i] = d; mn[i] = m; }
}

static inline void unpack_q4_0(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q4_0 *b = blk;
    st32(w8, nibbles32(b->qs));
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_q4_1(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q4_1 *b = blk;
    st32(w8, nibbles32(b->qs));
    set_sc(sc, mn, 2, ts_h2f(b->d), ts_h2f(b->m));
}

static inline void unpack_q5_0(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q5_0 *b = blk;
    st32(w8, nibbles32(b->qs) | q5_high(b->qh));
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_q5_1(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q5_1 *b = blk;
    st32(w8, nibbles32(b->qs) | q5_high(b->qh));
    set_sc(sc, mn, 2, ts_h2f(b->d), ts_h2f(b->m));
}

static inline void unpack_q8_0(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q8_0 *b = blk;
    memcpy(w8, b->qs, 32);
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

static inline void unpack_iq4_nl(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_iq4_nl *b = blk;
    for (int j = 0; j < 16; j++) {
        w8[j] = kvalues_iq4nl[b->qs[j] & 15];
        w8[j + 16] = kvalues_iq4nl[b->qs[j] >> 4];
    }
    set_sc(sc, mn, 2, ts_h2f(b->d), 0.0f);
}

/* Q2_0: 64 codes, code j at bits 2*(j%4) of byte j/4, value (q-1)*d. */
static inline void unpack_q2_0(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_q2_0 *b = blk;
    const u8x16 x = ld16(b->qs);
    const u8x16 v0 = x & 3, v1 = (x >> 2) & 3, v2 = (x >> 4) & 3, v3 = x >> 6;
    const u8x16 lo01 = __builtin_shufflevector(v0, v1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const u8x16 hi01 = __builtin_shufflevector(v0, v1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const u8x16 lo23 = __builtin_shufflevector(v2, v3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const u8x16 hi23 = __builtin_shufflevector(v2, v3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    st16x2(w8, __builtin_shufflevector(lo01, lo23, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
           __builtin_shufflevector(lo01, lo23, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
    st16x2(w8 + 32, __builtin_shufflevector(hi01, hi23, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
           __builtin_shufflevector(hi01, hi23, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
    set_sc(sc, mn, 4, ts_h2f(b->d), 0.0f);
}

static inline void unpack_tq2_0(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn) {
    const ts_block_tq2_0 *b = blk;
    int idx = 0;
    for (int j = 0; j < 64; j += 32)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) w8[idx++] = (int8_t)((b->qs[j + m] >> (2 * l)) & 3);
    set_sc(sc, mn, 16, ts_h2f(b->d), 0.0f);
}

/* K-quants are unpacked with integer sub-block scales (value = d*sc16[i/16]*w8[i] +
 * dmin*mn16[i/16]), which the integer K kernels use directly; the float form of the other
 * kernels follows from it (K_FLOAT_UNPACK), giving ggml's products d*sc and dmin*m exactly. */
static inline void kunpack_q2_k(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                                int16_t *restrict mn16, float *d, float *dmin) {
    const ts_block_q2_k *b = blk;
    for (int is = 0; is < 16; is++) {
        sc16[is] = (int16_t)(b->scales[is] & 0xF);
        mn16[is] = (int16_t)-(b->scales[is] >> 4);
    }
    for (int n = 0; n < 2; n++) {
        const u8x32 q = ld32(b->qs + 32 * n);
        st32(w8 + 128 * n, q & 3);
        st32(w8 + 128 * n + 32, (q >> 2) & 3);
        st32(w8 + 128 * n + 64, (q >> 4) & 3);
        st32(w8 + 128 * n + 96, q >> 6);
    }
    *d = ts_h2f(b->d);
    *dmin = ts_h2f(b->dmin);
}

/* Q3_K: codes 0..7 (value code - 4); the offset is carried as mn16 = -4*sc with dmin = d. */
static inline void kunpack_q3_k(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                                int16_t *restrict mn16, float *d, float *dmin) {
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
    for (int is = 0; is < 16; is++) {
        sc16[is] = (int16_t)(scales[is] - 32);
        mn16[is] = (int16_t)(-4 * sc16[is]);
    }
    const u8x32 hm = ld32(b->hmask);
    for (int n = 0; n < 2; n++) {
        const u8x32 q = ld32(b->qs + 32 * n);
        for (int j = 0; j < 4; j++) {
            const u8x32 low = (q >> (2 * j)) & 3;
            const u8x32 bit = (hm >> (4 * n + j)) & 1;
            st32(w8 + 128 * n + 32 * j, low | (bit << 2));
        }
    }
    *d = *dmin = ts_h2f(b->d);
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
static inline void k4_scales(const uint8_t *scales, int16_t *sc16, int16_t *mn16) {
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, scales, &s, &m);
        sc16[2 * j] = sc16[2 * j + 1] = (int16_t)s;
        mn16[2 * j] = mn16[2 * j + 1] = (int16_t)-m;
    }
}

static inline void kunpack_q4_k(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                                int16_t *restrict mn16, float *d, float *dmin) {
    const ts_block_q4_k *b = blk;
    for (int j = 0; j < 4; j++) {
        const u8x32 x = ld32(b->qs + 32 * j);
        st32(w8 + 64 * j, x & 15);
        st32(w8 + 64 * j + 32, x >> 4);
    }
    k4_scales(b->scales, sc16, mn16);
    *d = ts_h2f(b->d);
    *dmin = ts_h2f(b->dmin);
}

static inline void kunpack_q5_k(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                                int16_t *restrict mn16, float *d, float *dmin) {
    const ts_block_q5_k *b = blk;
    const u8x32 h = ld32(b->qh);
    for (int j = 0; j < 4; j++) {
        const u8x32 x = ld32(b->qs + 32 * j);
        st32(w8 + 64 * j, (x & 15) | (((h >> (2 * j)) & 1) << 4));
        st32(w8 + 64 * j + 32, (x >> 4) | (((h >> (2 * j + 1)) & 1) << 4));
    }
    k4_scales(b->scales, sc16, mn16);
    *d = ts_h2f(b->d);
    *dmin = ts_h2f(b->dmin);
}

/* Q6_K: codes 0..63 (value code - 32); the offset is carried as mn16 = -32*sc with dmin = d. */
static inline void kunpack_q6_k(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                                int16_t *restrict mn16, float *d, float *dmin) {
    const ts_block_q6_k *b = blk;
    for (int n = 0; n < 2; n++) {
        const u8x32 a = ld32(b->ql + 64 * n), c = ld32(b->ql + 64 * n + 32), h = ld32(b->qh + 32 * n);
        st32(w8 + 128 * n, (a & 15) | ((h & 3) << 4));
        st32(w8 + 128 * n + 32, (c & 15) | (((h >> 2) & 3) << 4));
        st32(w8 + 128 * n + 64, (a >> 4) | (((h >> 4) & 3) << 4));
        st32(w8 + 128 * n + 96, (c >> 4) | ((h >> 6) << 4));
    }
    for (int i = 0; i < 16; i++) {
        sc16[i] = b->scales[i];
        mn16[i] = (int16_t)(-32 * b->scales[i]);
    }
    *d = *dmin = ts_h2f(b->d);
}

/* The float unpacker of a K-quant from its integer one. Offset types (Q3_K, Q6_K) keep their
 * offset in the kernels' OFF instead of mn (HAS_MIN 0). */
#define K_FLOAT_UNPACK(T, HAS_MIN)                                                                     \
    static inline void unpack_##T(const void *restrict blk, int8_t *restrict w8, float *restrict sc,  \
                                  float *restrict mn) {                                                \
        int16_t sc16[16], mn16[16];                                                                    \
        float d, dmin;                                                                                 \
        kunpack_##T(blk, w8, sc16, mn16, &d, &dmin);                                                   \
        for (int i = 0; i < 16; i++) {                                                                 \
            sc[i] = d * (float)sc16[i];                                                                \
            mn[i] = (HAS_MIN) ? dmin * (float)mn16[i] : 0.0f;                                          \
        }                                                                                              \
    }
K_FLOAT_UNPACK(q2_k, 1)
K_FLOAT_UNPACK(q3_k, 0)
K_FLOAT_UNPACK(q4_k, 1)
K_FLOAT_UNPACK(q5_k, 1)
K_FLOAT_UNPACK(q6_k, 0)

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

/* The start values of the eight int32 lanes of a 32-chunk's integer dot product with codes that
 * carry an offset OFF: lane j sums products 4j..4j+3, so it starts at -OFF times the sum of
 * those four activations and ends as the lane of the signed codes, the lane llama.cpp converts
 * and scales (qs NULL: a chunk past the end, all zero). */
static inline void q32_lane_offsets(const int8_t *qs, int off, int32_t *c8) {
    for (int j = 0; j < 8; j++)
        c8[j] = qs && off ? -off * ((int32_t)qs[4 * j] + qs[4 * j + 1] + qs[4 * j + 2] + qs[4 * j + 3]) : 0;
}

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
static inline __attribute__((always_inline)) __m256 gv_pair(__m256 acc, const uint8_t *pb, int two, const ts_gv_act *p,
                                                            int64_t pi, int bytes, int kind, __m512i iqs, __m256i id) {
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
    if (kind == GV_Q5_0) {
        uint32_t h0, h1 = 0;
        memcpy(&h0, pb + 2, 4);
        if (two) memcpy(&h1, pb + bytes + 2, 4);
        q = _mm512_mask_add_epi8(q, _cvtu64_mask64((uint64_t)h0 | (uint64_t)h1 << 32), q, _mm512_set1_epi8(16));
    }
    const __m256i dh = kind == GV_Q8_0 ? _mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_castsi256_si512(id), raw))
                                       : _mm256_permutexvar_epi16(id, _mm512_castsi512_si256(raw));
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(p->c0[pi]), q, _mm512_load_si512(p->qs + 64 * pi));
    const __m512 prod = _mm512_cvtepi32_ps(dot);
    const __m512 scale = _mm512_mul_ps(_mm512_cvtph_ps(dh), _mm512_load_ps(p->da[pi]));
    /* Block after block into one eight-lane chain, as llama.cpp's vec_dot sums. */
    acc = _mm256_fmadd_ps(_mm512_castps512_ps256(prod), _mm512_castps512_ps256(scale), acc);
    if (two)
        acc = _mm256_fmadd_ps(_mm512_extractf32x8_ps(prod, 1), _mm512_extractf32x8_ps(scale, 1), acc);
    return acc;
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

/* Whether the product was done here: the GEMV of the types with a pair kernel. (A GEMM built
 * the same way, one decoded pair against eight columns, measured no faster than the generic
 * eight-chunk tiles, so several columns stay there.) */
#define GX_FN(T, BYTES, KIND, OFF, IQS, ID)                                                            \
    static int gx_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                      int64_t ncols, float *y, size_t ys, int64_t n) {                                 \
        (void)as; (void)ys;                                                                            \
        if (ncols != 1) return 0;                                                                      \
        gv_rows(w, ws, nrows, a, y, n, BYTES, KIND, OFF, IQS, ID);                                     \
        return 1;                                                                                      \
    }
GX_FN(q5_0, 22, GV_Q5_0, 16, GV_IDX_QS(3, 14), GV_IDX_D(0, 11))
GX_FN(q8_0, 34, GV_Q8_0, 128, _mm512_setzero_si512(), GV_IDX_D(0, 17))

#define GX_NONE(T)                                                                                   \
    static int gx_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,      \
                      int64_t ncols, float *y, size_t ys, int64_t n) {                                 \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;    \
        return 0;                                                                                      \
    }
GX_NONE(q4_0) /* llama.cpp's repacked order: ts_bsum.h */
GX_NONE(q4_1)
GX_NONE(q5_1)
GX_NONE(iq4_nl)
GX_NONE(q2_0)
#define TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n) gx_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

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
                     * fused: the reference's build does not contract this C loop; a build that \
                     * does, like llama-cpp-python 0.3.36's here, differs in the last bits) */

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

#define DEFINE_Q32_KERNELS(T, QK, BLOCK, KIND, OFF, ORDER)                                            \
    static inline __attribute__((always_inline)) void TS_FN(m32_row_##T)(                          \
        const BLOCK *wr, int64_t nch, const ts_block_q8a *a, size_t as, int nc, const float *da,    \
        const int32_t *off8, const float *sd, float *y, size_t ys, ts_acc *keep, float *keepm,     \
        int first, int last) {                                                                      \
        /* The lane chains and the min chain wait in keep / keepm between chunk ranges (a row     \
         * longer than TS_KB chunks); the one float chain of the other orders waits in y. */       \
        ts_acc acc[TS_COLS];                                                                        \
        float fa[TS_COLS];                                                                          \
        float mins[TS_COLS];                                                                        \
        for (int c = 0; c < TS_COLS; c++) {                                                         \
            fa[c] = !first && c < nc ? y[c * ys] : 0.0f;                                            \
            acc[c] = first || (ORDER) != Q32_LANES ? ts_acc_zero() : keep[c];                       \
            mins[c] = first || (ORDER) != Q32_LANES ? 0.0f : keepm[c];                              \
        }                                                                                           \
        for (int64_t g = 0; g < nch; g += 8) {                                                      \
            const int gn = nch - g < 8 ? (int)(nch - g) : 8;                                        \
            int8_t w8[256];                                                                         \
            float dw[8] = {0}, mw[8] = {0};                                                         \
            for (int k = 0; k < 8 && k < gn; k += (QK) / 32) {                                      \
                const BLOCK *blk = wr + (g + k) / ((QK) / 32);                                      \
                float sc[(QK) / 16], mn[(QK) / 16];                                                 \
                for (size_t pf = 0; pf < sizeof(BLOCK); pf += 64)                                   \
                    __builtin_prefetch((const uint8_t *)blk + TS_PREFETCH + pf);                    \
                unpack_##T(blk, w8 + 32 * k, sc, mn);                                              \
                for (int j = 0; j < (QK) / 32; j++) {                                               \
                    dw[k + j] = sc[2 * j];                                                          \
                    mw[k + j] = mn[2 * j];                                                          \
                }                                                                                   \
            }                                                                                       \
            if ((KIND) == KIND_S32 && TS_U8_FULL)                                                   \
                for (int i = 0; i < 256; i += 32) st32(w8 + i, ld32((const uint8_t *)w8 + i) ^ 0x80); \
            /* Scale products of every column, then chunk-outer, column-inner so that each chunk  \
             * of codes is loaded once and consecutive fmas go to different accumulators. */     \
            ts_sc8 pv[TS_COLS];                                                                     \
            const ts_sc8 dwv = ts_sc8_load(dw);                                                     \
            for (int c = 0; c < nc; c++) pv[c] = ts_sc8_mul(dwv, ts_sc8_load(da + c * TS_KB + g));  \
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {                                   \
                if (k >= gn) break;                                                                 \
                for (int c = 0; c < nc; c++) {                                                      \
                    const ts_block_q8a *ab = (const ts_block_q8a *)((const uint8_t *)a + c * as) + g + k; \
                    /* One accumulation chain per column, chunk after chunk, as llama.cpp's     \
                     * vec_dot and tinyBLAS sum. */                                             \
                    if ((ORDER) == Q32_PAIR) {                                                      \
                        if (k & 1) continue;                                                        \
                        const float t0 = (float)ts_dot32_total(w8 + 32 * k, ab->qs, 0, -(OFF) * (ab->s[0] + ab->s[1])); \
                        const float t1 = (float)ts_dot32_total(w8 + 32 * k + 32, ab[1].qs, 0, -(OFF) * (ab[1].s[0] + ab[1].s[1])); \
                        const float d1a = da[c * TS_KB + g + k], d1b = da[c * TS_KB + g + k + 1];   \
                        const float p0 = d1a * t0, p1 = d1b * t1;                                   \
                        const float si = p0 + p1;                                                   \
                        const float ps = dw[k] * si;                                                \
                        fa[c] += ps;                                                                \
                    } else if ((ORDER) == Q32_BLOCK)                                                \
                        fa[c] = __builtin_fmaf((float)ts_dot32_total(w8 + 32 * k, ab->qs, Q32_SIGNED(KIND), \
                                                                    -Q32_OFF(KIND, OFF) * (ab->s[0] + ab->s[1])), \
                                               dw[k] * da[c * TS_KB + g + k], fa[c]);               \
                    else if (Q32_SIGNED(KIND))                                                      \
                        acc[c] = ts_acc_s8x32_lane(acc[c], w8 + 32 * k, ab->qs, pv[c], k);          \
                    else                                                                            \
                        acc[c] = ts_acc_u8x32_lane(acc[c], w8 + 32 * k, ab->qs, pv[c], k,           \
                                                   off8 + 8 * (c * TS_KB + g + k));                 \
                }                                                                                   \
            }                                                                                       \
            for (int c = 0; c < nc; c++) {                                                          \
                /* Min terms summed in block order, as llama.cpp does. */                           \
                if ((KIND) == KIND_U32_MIN)                                                         \
                    for (int k = 0; k < 8 && k < gn; k++) mins[c] += mw[k] * sd[c * TS_KB + g + k]; \
            }                                                                                       \
        }                                                                                           \
        for (int c = 0; c < nc; c++) {                                                              \
            if ((ORDER) != Q32_LANES) {                                                             \
                y[c * ys] = fa[c] + mins[c];                                                        \
            } else if (last) {                                                                      \
                y[c * ys] = ts_acc_sum(acc[c]) + mins[c];                                           \
            } else {                                                                                \
                keep[c] = acc[c];                                                                   \
                keepm[c] = mins[c];                                                                 \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows,                       \
                                     const ts_block_q8a *a, size_t as, int64_t ncols, float *y,     \
                                     size_t ys, int64_t n) {                                        \
        if (TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* aarch64: ts_neon.h */        \
        if ((ORDER) == Q32_LANES && TS_Q32_LG(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 lanes */ \
        if (TS_Q32_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* tile GEMM (prefill) */ \
        if ((ORDER) != Q32_LANES && TS_Q32_BSUM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return;  \
        if ((ORDER) == Q32_LANES && TS_Q32_FAST(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 pair kernels */ \
        if ((ORDER) == Q32_LANES && ncols == 1) { /* GEMV: the block-at-a-time kernel streams best */ \
            TS_FN(blk_##T##_q8a)(w, ws, nrows, a, as, ncols, y, ys, n);                             \
            return;                                                                                 \
        }                                                                                           \
        const int64_t nch_all = n / 32;                                                             \
        float da[TS_COLS * TS_KB], sd[TS_COLS * TS_KB];                                             \
        int32_t off8[TS_COLS * TS_KB * 8];                                                          \
        ts_acc keep[TS_M32_RB][TS_COLS];                                                            \
        float keepm[TS_M32_RB][TS_COLS];                                                            \
        /* Rows in blocks whose chains wait in keep when a row spans several chunk ranges. */      \
        const int64_t rb = nch_all <= TS_KB ? nrows : TS_M32_RB;                                    \
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                           \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                      \
            for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb)                                           \
            for (int64_t k0 = 0; k0 < nch_all; k0 += TS_KB) {                                       \
                const int64_t nch = nch_all - k0 < TS_KB ? nch_all - k0 : TS_KB;                    \
                const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as) + k0; \
                for (int c = 0; c < nc; c++) {                                                      \
                    const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)ac + c * as); \
                    for (int64_t k = 0; k < ((nch + 7) & ~(int64_t)7); k++) {                       \
                        const int in = k < nch;                                                     \
                        da[c * TS_KB + k] = in ? col[k].d : 0.0f;                                   \
                        sd[c * TS_KB + k] = in ? col[k].sd : 0.0f;                                  \
                        q32_lane_offsets(in ? col[k].qs : NULL, Q32_OFF(KIND, OFF), off8 + 8 * (c * TS_KB + k)); \
                    }                                                                               \
                }                                                                                   \
                const int first = k0 == 0, last = k0 + nch == nch_all;                              \
                const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;                             \
                for (int64_t r = rb0; r < r1; r++) {                                                \
                    const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws) + k0 / ((QK) / 32); \
                    float *yr = y + c0 * ys + r;                                                    \
                    ts_acc *kr = keep[(r - rb0) % TS_M32_RB];                                       \
                    float *kmr = keepm[(r - rb0) % TS_M32_RB];                                      \
                    if (nc == TS_COLS)                                                              \
                        TS_FN(m32_row_##T)(wr, nch, ac, as, TS_COLS, da, off8, sd, yr, ys, kr, kmr, first, last); \
                    else if (nc == 1)                                                               \
                        TS_FN(m32_row_##T)(wr, nch, ac, as, 1, da, off8, sd, yr, ys, kr, kmr, first, last);       \
                    else                                                                            \
                        TS_FN(m32_row_##T)(wr, nch, ac, as, nc, da, off8, sd, yr, ys, kr, kmr, first, last);      \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
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
#define DEFINE_K_KERNELS(T, BLOCK, SAME, ORDER, LANE_OFF)                                                    \
    /* One super-block of a row in the K_REPACK order: per 64 elements one integer sum (the two   \
     * sub-blocks' scaled dot products) and one integer min term (their mins times activation    \
     * sums); columns in per64 take them into the float chains at once, the others add them up   \
     * over the super-block first. mn16 holds the negated mins, so macc is minus llama.cpp's     \
     * min chain and the row's result is sacc + macc. */                                          \
    static inline __attribute__((always_inline)) void TS_FN(mk_repack_##T)(                        \
        const int8_t *w8, const int16_t *sc16, const int16_t *mn16, float d, float dmin,           \
        const ts_block_q8a *a, size_t as, int nc, const int16_t *bs, const float *da, int64_t b,    \
        unsigned per64, float *sacc, float *macc) {                                                 \
        int32_t isb[TS_COLS] = {0}, imb[TS_COLS] = {0};                                             \
        for (int g = 0; g < 4; g++) {                                                               \
            ts_iacc ip[TS_COLS];                                                                    \
            for (int c = 0; c < nc; c++) ip[c] = ts_iacc_zero();                                    \
            for (int k = 2 * g; k < 2 * g + 2; k++) {                                               \
                const ts_ksc ks = ts_ksc_make(sc16[2 * k], sc16[2 * k + 1]);                        \
                for (int c = 0; c < nc; c++) {                                                      \
                    const ts_block_q8a *ab =                                                        \
                        (const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * b + k;            \
                    ip[c] = ts_iacc_u8x32(ip[c], w8 + 32 * k, ab->qs, ks);                          \
                }                                                                                   \
            }                                                                                       \
            for (int c = 0; c < nc; c++) {                                                          \
                const int16_t *s16 = bs + (c * TS_KSB + b) * 16 + 4 * g;                            \
                const int32_t is = ts_iacc_hsum(ip[c]);                                             \
                const int32_t im = mn16[4 * g] * s16[0] + mn16[4 * g + 1] * s16[1] +                \
                                   mn16[4 * g + 2] * s16[2] + mn16[4 * g + 3] * s16[3];             \
                if (per64 >> c & 1) {                                                               \
                    const float dc = da[c * TS_KSB + b];                                            \
                    sacc[c] = __builtin_fmaf((float)is, d * dc, sacc[c]);                           \
                    macc[c] = __builtin_fmaf((float)im, dmin * dc, macc[c]);                        \
                } else {                                                                            \
                    isb[c] += is;                                                                   \
                    imb[c] += im;                                                                   \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        for (int c = 0; c < nc; c++)                                                                \
            if (!(per64 >> c & 1)) {                                                                \
                const float dc = da[c * TS_KSB + b];                                                \
                sacc[c] = __builtin_fmaf((float)isb[c], d * dc, sacc[c]);                           \
                macc[c] = __builtin_fmaf((float)imb[c], dmin * dc, macc[c]);                        \
            }                                                                                       \
    }                                                                                               \
    static inline __attribute__((always_inline)) void TS_FN(mk_row_##T)(                           \
        const BLOCK *wr, int64_t nsb, const ts_block_q8a *a, size_t as, int nc, const int16_t *bs,  \
        const float *da, float *y, size_t ys, int accumulate, unsigned per64, int tiled,            \
        const int16_t *p4) {                                                                        \
        ts_acc acc[TS_COLS];                                                                        \
        float sacc[TS_COLS] = {0}, macc[TS_COLS] = {0};                                             \
        for (int c = 0; c < TS_COLS; c++) acc[c] = ts_acc_zero();                                   \
        for (int64_t b = 0; b < nsb; b++) {                                                         \
            int8_t w8[TS_QK_K];                                                                     \
            int16_t sc16[16], mn16[16];                                                             \
            float d, dmin;                                                                          \
            for (size_t pf = 0; pf < sizeof(BLOCK); pf += 64)                                       \
                __builtin_prefetch((const uint8_t *)(wr + b) + TS_PREFETCH + pf);                   \
            kunpack_##T(wr + b, w8, sc16, mn16, &d, &dmin);                                         \
            if ((ORDER) == K_REPACK) {                                                              \
                TS_FN(mk_repack_##T)(w8, sc16, mn16, d, dmin, a, as, nc, bs, da, b, per64, sacc, macc); \
                continue;                                                                           \
            }                                                                                       \
            /* Chunk-outer, column-inner: each chunk of codes is loaded once for all columns. */  \
            ts_iacc ia[TS_COLS];                                                                    \
            for (int c = 0; c < nc; c++) ia[c] = ts_iacc_zero();                                    \
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {                                   \
                const ts_ksc ks = ts_ksc_make(sc16[2 * k], sc16[2 * k + 1]);                        \
                for (int c = 0; c < nc; c++) {                                                      \
                    const ts_block_q8a *ab =                                                        \
                        (const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * b + k;            \
                    /* LANE_OFF: the offset leaves each lane with its own products (the lanes  \
                     * of the signed codes, as Q3_K's vec_dot subtracts it), from p4 prepared   \
                     * per call for one column. */                                              \
                    if ((LANE_OFF) && !tiled) {                                                     \
                        int16_t p4k[16];                                                            \
                        if (!p4) ts_p4(ab->qs, p4k);                                                \
                        ia[c] = ts_iacc_u8x32_off(ia[c], w8 + 32 * k, ab->qs, ks,                   \
                                                  p4 ? p4 + (b * 8 + k) * 16 : p4k);                \
                    } else {                                                                        \
                        ia[c] = ts_iacc_u8x32(ia[c], w8 + 32 * k, ab->qs, ks);                      \
                    }                                                                               \
                }                                                                                   \
            }                                                                                       \
            for (int c = 0; c < nc; c++) {                                                          \
                const int16_t *s16 = bs + (c * TS_KSB + b) * 16;                                    \
                const float dc = da[c * TS_KSB + b];                                                \
                const ts_iacc i = ia[c];                                                            \
                if (tiled) {                                                                        \
                    /* mn16 holds the offset terms (SAME) or the negated mins. */                  \
                    const int32_t im = ts_iacc_hsum(ts_iacc_dot16(ts_iacc_zero(), mn16, s16));      \
                    float r = (float)(ts_iacc_hsum(i) + (SAME ? im : 0)) * d;                       \
                    if (!(SAME)) r = __builtin_fmaf(dmin, (float)im, r);                            \
                    sacc[c] = __builtin_fmaf(r, dc, sacc[c]);                                       \
                } else if (SAME) {                                                                  \
                    acc[c] = ts_acc_fma_iacc(acc[c], (LANE_OFF) ? i : ts_iacc_dot16(i, mn16, s16), d * dc); \
                } else {                                                                            \
                    acc[c] = ts_acc_fma_iacc(acc[c], i, d * dc);                                    \
                    acc[c] = ts_acc_fma_iacc(acc[c], ts_iacc_dot16(ts_iacc_zero(), mn16, s16),      \
                                             dmin * dc);                                            \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        for (int c = 0; c < nc; c++)                                                                \
            y[c * ys] = (accumulate ? y[c * ys] : 0.0f) +                                           \
                        ((ORDER) == K_REPACK || tiled ? sacc[c] + macc[c] : ts_acc_sum(acc[c]));     \
    }                                                                                               \
    static void TS_FN(mm_##T##_q8a)(const void *w, size_t ws, int64_t nrows,                       \
                                     const ts_block_q8a *a, size_t as, int64_t ncols, float *y,     \
                                     size_t ys, int64_t n) {                                        \
        if (TS_NEON_MM(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* aarch64: ts_neon.h */  \
        if (TS_K_GEMV(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* AVX-512 vec_dot GEMV */ \
        if (TS_K_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n)) return; /* tile GEMM (prefill) */ \
        const int64_t nsb_all = n / TS_QK_K;                                                        \
        int16_t bs[TS_COLS * TS_KSB * 16];                                                          \
        float da[TS_COLS * TS_KSB];                                                                 \
        int16_t p4buf[(LANE_OFF) ? TS_KSB * 8 * 16 : 1]; /* LANE_OFF decode: ts_p4 per chunk */     \
        /* Columns of whole groups of four take the GEMM order (K_REPACK); eight or more columns   \
         * the tiled GEMM's (K_LANES). */                                                           \
        const int tiled = (ORDER) == K_LANES && ncols >= 8;                                         \
        const int64_t ngemm = (ORDER) == K_REPACK ? ncols - ncols % 4 : 0;                           \
        for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {                                           \
            const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);                      \
            const unsigned per64 = c0 >= ngemm ? 0u                                                 \
                                   : c0 + nc <= ngemm ? (1u << nc) - 1                              \
                                                      : (1u << (ngemm - c0)) - 1;                   \
            for (int64_t s0 = 0; s0 < nsb_all; s0 += TS_KSB) {                                      \
                const int64_t nsb = nsb_all - s0 < TS_KSB ? nsb_all - s0 : TS_KSB;                  \
                const ts_block_q8a *ac =                                                            \
                    (const ts_block_q8a *)((const uint8_t *)a + c0 * as) + 8 * s0;                  \
                for (int c = 0; c < nc; c++) {                                                      \
                    const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)ac + c * as); \
                    for (int64_t b = 0; b < nsb; b++) {                                             \
                        da[c * TS_KSB + b] = col[8 * b].d;                                          \
                        for (int k = 0; k < 8; k++) {                                               \
                            bs[(c * TS_KSB + b) * 16 + 2 * k] = col[8 * b + k].s[0];                \
                            bs[(c * TS_KSB + b) * 16 + 2 * k + 1] = col[8 * b + k].s[1];            \
                        }                                                                           \
                    }                                                                               \
                }                                                                                   \
                const int16_t *p4 = NULL;                                                           \
                if ((LANE_OFF) && ncols == 1) {                                                     \
                    for (int64_t k = 0; k < 8 * nsb; k++) ts_p4(ac[k].qs, p4buf + 16 * k);          \
                    p4 = p4buf;                                                                     \
                }                                                                                   \
                for (int64_t r = 0; r < nrows; r++) {                                               \
                    const BLOCK *wr = (const BLOCK *)((const uint8_t *)w + r * ws) + s0;            \
                    float *yr = y + c0 * ys + r;                                                    \
                    if (nc == TS_COLS)                                                              \
                        TS_FN(mk_row_##T)(wr, nsb, ac, as, TS_COLS, bs, da, yr, ys, s0 > 0, per64, tiled, p4); \
                    else if (nc == 1)                                                               \
                        TS_FN(mk_row_##T)(wr, nsb, ac, as, 1, bs, da, yr, ys, s0 > 0, per64, tiled, p4);       \
                    else                                                                            \
                        TS_FN(mk_row_##T)(wr, nsb, ac, as, nc, bs, da, yr, ys, s0 > 0, per64, tiled, p4);      \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
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
    .attn_f16 = TS_FN(attn_f16),
    .swiglu = TS_FN(swiglu),
};

const ts_kernel_table *TS_FN(kernel_table)(void) { return &TABLE; }
