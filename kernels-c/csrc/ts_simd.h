/* Per-ISA primitives. Exactly one TS_ISA_* macro is defined by build.rs for each tier object,
 * and the object is compiled with that tier's flags only, so a baseline build never executes
 * newer instructions. */
#ifndef TS_SIMD_H
#define TS_SIMD_H

#include <string.h>
#include "ts_blocks.h"

#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
#include <immintrin.h>
#endif

/* Whether the unsigned-by-signed byte dot product is exact for codes up to 255 (VNNI vpdpbusd);
 * maddubs saturates its pair sums, the NEON and scalar paths read codes as int8. */
#if defined(TS_ISA_AVX512)
#define TS_U8_FULL 1
#else
#define TS_U8_FULL 0
#endif
#if defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
#include <arm_neon.h>
#endif

/* ---- IEEE half / bfloat16 ------------------------------------------------------------ */

static inline float ts_h2f(ts_half h) {
#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
    return _cvtsh_ss(h); /* F16C: exact, like the bit manipulation below */
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD) /* FCVT from half: base ARMv8 */
    __fp16 v;
    memcpy(&v, &h, 2);
    return (float)v;
#else
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
#endif
}

/* f32 -> IEEE half bits, round to nearest even (overflow to infinity). */
static inline ts_half ts_f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u, man = x & 0x7fffffu;
    const int32_t exp = (int32_t)((x >> 23) & 0xffu);
    if (exp == 0xff) return (ts_half)(sign | 0x7c00u | (man ? 0x200u : 0u));
    const int32_t e = exp - 127 + 15;
    if (e >= 0x1f) return (ts_half)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (ts_half)sign;
        const uint32_t m = man | 0x800000u, shift = (uint32_t)(14 - e), half = 1u << (shift - 1);
        const uint32_t rem = m & ((1u << shift) - 1);
        uint32_t r = m >> shift;
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (ts_half)(sign | r);
    }
    uint32_t r = ((uint32_t)e << 10) | (man >> 13);
    const uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (ts_half)(sign | r);
}

static inline float ts_bf2f(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* y[0..n) = f16 x[0..n) */
static inline void ts_cvt_f16_row(const ts_half *x, float *y, int64_t n) {
    int64_t i = 0;
#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
    for (const int64_t n8 = n & ~(int64_t)7; i < n8; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    for (const int64_t n4 = n & ~(int64_t)3; i < n4; i += 4)
        vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
#endif
    for (; i < n; i++) y[i] = ts_h2f(x[i]);
}

/* ---- float dot product --------------------------------------------------------------- */

static inline float ts_dot_f32(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    float sum = 0.0f;
#if defined(TS_ISA_AVX512)
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (const int64_t n32 = n & ~(int64_t)31; i < n32; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#elif defined(TS_ISA_AVX2)
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (const int64_t n16 = n & ~(int64_t)15; i < n16; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    __m256 s8 = _mm256_add_ps(acc0, acc1);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    sum = _mm_cvtss_f32(s4);
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    for (const int64_t n8 = n & ~(int64_t)7; i < n8; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    sum = vaddvq_f32(vaddq_f32(acc0, acc1));
#else
    float acc[8] = {0};
    const int64_t n8 = n & ~(int64_t)7;
    for (; i < n8; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (int k = 0; k < 8; k++) sum += acc[k];
#endif
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* ---- 32-wide int8 dot product, split into two halves of 16 --------------------------- */
/* w: int8 weights in [-128, 127]; a: int8 activations in [-127, 127].
 * *lo = sum_{i<16} w[i]*a[i], *hi = sum_{16<=i<32} w[i]*a[i]. */

#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
static inline int32_t ts_hsum_i32x4(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

/* Signed weights times signed activations as eight int32 partial sums (lanes 0-3: the first 16
 * products, 4-7: the second 16): |w| as unsigned times a*sign(w), exact since |a| <= 127. */
static inline __m256i ts_dot_s8s8(const int8_t *w, const int8_t *a) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    const __m256i av = _mm256_loadu_si256((const __m256i *)a);
    const __m256i ax = _mm256_sign_epi8(wv, wv);
    const __m256i sy = _mm256_sign_epi8(av, wv);
#if defined(TS_ISA_AVX512)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
#endif
}
#endif

static inline void ts_dot_s8x32(const int8_t *w, const int8_t *a, int32_t *lo, int32_t *hi) {
#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
    const __m256i p32 = ts_dot_s8s8(w, a);
    *lo = ts_hsum_i32x4(_mm256_castsi256_si128(p32));
    *hi = ts_hsum_i32x4(_mm256_extracti128_si256(p32, 1));
#elif defined(TS_ISA_DOTPROD)
    const int32x4_t z = vdupq_n_s32(0);
    *lo = vaddvq_s32(vdotq_s32(z, vld1q_s8(w), vld1q_s8(a)));
    *hi = vaddvq_s32(vdotq_s32(z, vld1q_s8(w + 16), vld1q_s8(a + 16)));
#elif defined(TS_ISA_NEON)
    const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
    p0 = vmlal_s8(p0, vget_high_s8(w0), vget_high_s8(a0));
    int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(a1));
    p1 = vmlal_s8(p1, vget_high_s8(w1), vget_high_s8(a1));
    *lo = vaddlvq_s16(p0);
    *hi = vaddlvq_s16(p1);
#else
    int32_t l = 0, h = 0;
    for (int i = 0; i < 16; i++) l += (int32_t)w[i] * a[i];
    for (int i = 16; i < 32; i++) h += (int32_t)w[i] * a[i];
    *lo = l;
    *hi = h;
#endif
}

/* ---- a row accumulator for 8-bit dot products ----------------------------------------- */
/* ts_acc holds float partial sums; ts_acc_s8x32 adds s_lo*dot(w[0:16], a[0:16]) +
 * s_hi*dot(w[16:32], a[16:32]) without a horizontal reduction, which happens once per row in
 * ts_acc_sum. */
#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
typedef __m256 ts_acc;
static inline ts_acc ts_acc_zero(void) { return _mm256_setzero_ps(); }
static inline ts_acc ts_acc_add(ts_acc a, ts_acc b) { return _mm256_add_ps(a, b); }
static inline ts_acc ts_acc_s8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi) {
    const __m256 sv = _mm256_set_m128(_mm_set1_ps(s_hi), _mm_set1_ps(s_lo));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ts_dot_s8s8(w, a)), sv, acc);
}
/* Unsigned weight codes (0..63) times signed activations, no sign trick needed: eight int32
 * lanes of four consecutive products each, starting at init. */
static inline __m256i ts_dot_u8s8_from(const int8_t *w, const int8_t *a, __m256i init) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    const __m256i av = _mm256_loadu_si256((const __m256i *)a);
#if defined(TS_ISA_AVX512)
    return _mm256_dpbusd_epi32(init, wv, av);
#else
    return _mm256_add_epi32(init, _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), _mm256_set1_epi16(1)));
#endif
}
/* The same with the sums starting at c_lo (lanes of the first 16) and c_hi (the second 16). */
static inline __m256i ts_dot_u8s8(const int8_t *w, const int8_t *a, int32_t c_lo, int32_t c_hi) {
    return ts_dot_u8s8_from(w, a, _mm256_setr_epi32(c_lo, 0, 0, 0, c_hi, 0, 0, 0));
}
static inline ts_acc ts_acc_u8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi,
                                  int32_t c_lo, int32_t c_hi) {
    const __m256 sv = _mm256_set_m128(_mm_set1_ps(s_hi), _mm_set1_ps(s_lo));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ts_dot_u8s8(w, a, c_lo, c_hi)), sv, acc);
}
static inline ts_acc ts_acc_u8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s, int32_t c) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ts_dot_u8s8(w, a, c, 0)), _mm256_set1_ps(s), acc);
}
/* The same with one scale for all 32. */
static inline ts_acc ts_acc_s8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ts_dot_s8s8(w, a)), _mm256_set1_ps(s), acc);
}
/* Integer accumulation for K-quants (one activation scale per 256): eight int32 lanes. */
typedef __m256i ts_iacc;
/* The integer scales of one 32-element chunk: sixteen int16 lanes, lanes 0-7 the scale of the
 * first 16 elements, 8-15 of the second (matching _mm256_maddubs_epi16's pair sums). */
typedef __m256i ts_ksc;
static inline ts_iacc ts_iacc_zero(void) { return _mm256_setzero_si256(); }
static inline ts_ksc ts_ksc_make(int16_t lo, int16_t hi) {
    return _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo));
}
/* acc += the int16 lanes of p times those of s, summed in pairs into int32 lanes. */
static inline ts_iacc ts_iacc_madd16(ts_iacc acc, __m256i p, __m256i s) {
#if defined(TS_ISA_AVX512)
    return _mm256_dpwssd_epi32(acc, p, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
#endif
}
/* acc += lo*dot(w[0:16], a[0:16]) + hi*dot(w[16:32], a[16:32]) for unsigned codes w (0..63): the
 * pair sums of maddubs stay below 2*63*127 (no saturation), then one int16 multiply-add. */
static inline ts_iacc ts_iacc_u8x32(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s) {
    return ts_iacc_madd16(acc, _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)a)), s);
}
/* acc += sum of m[i]*s[i] over 16 int16 pairs. */
static inline ts_iacc ts_iacc_dot16(ts_iacc acc, const int16_t *m, const int16_t *s) {
    return ts_iacc_madd16(acc, _mm256_loadu_si256((const __m256i *)m), _mm256_loadu_si256((const __m256i *)s));
}
/* An offset of 4 per code as Q3_K's vec_dot takes it off, inside each pair of products:
 * p4[i] = 4*(a[2i] + a[2i+1]). */
static inline void ts_p4(const int8_t *a, int16_t *p4) {
    _mm256_storeu_si256((__m256i *)p4, _mm256_maddubs_epi16(_mm256_set1_epi8(4), _mm256_loadu_si256((const __m256i *)a)));
}
/* ts_iacc_u8x32 of the codes minus that offset (pair sums stay within int16). */
static inline ts_iacc ts_iacc_u8x32_off(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s, const int16_t *p4) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)a));
    return ts_iacc_madd16(acc, _mm256_sub_epi16(p, _mm256_loadu_si256((const __m256i *)p4)), s);
}
/* The integer total of an accumulator's lanes (exact). */
static inline int32_t ts_iacc_hsum(ts_iacc i) { return ts_hsum_i32x4(_mm_add_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1))); }
/* f + s * float(i), lane-wise. */
static inline ts_acc ts_acc_fma_iacc(ts_acc f, ts_iacc i, float s) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(s), f);
}
static inline float ts_acc_sum(ts_acc acc) {
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    return _mm_cvtss_f32(s4);
}
/* Eight scales in a register; the _lane variants take scale k of them (one permute). */
typedef __m256 ts_sc8;
static inline ts_sc8 ts_sc8_load(const float *p) { return _mm256_loadu_ps(p); }
static inline ts_sc8 ts_sc8_mul(ts_sc8 a, ts_sc8 b) { return _mm256_mul_ps(a, b); }
static inline __m256 ts_sc8_lane(ts_sc8 p, int k) { return _mm256_permutevar8x32_ps(p, _mm256_set1_epi32(k)); }
/* c8: the start values of the eight int32 lanes (each lane sums four consecutive products, so
 * -OFF times the sum of the lane's four activations makes it the lane of the signed codes). */
static inline ts_acc ts_acc_u8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k, const int32_t *c8) {
    const __m256i dot = ts_dot_u8s8_from(w, a, _mm256_loadu_si256((const __m256i *)c8));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), ts_sc8_lane(p, k), acc);
}
static inline ts_acc ts_acc_s8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(ts_dot_s8s8(w, a)), ts_sc8_lane(p, k), acc);
}
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
/* The ARM tiers keep the x86 tiers' eight lanes (two four-lane halves), so the generic kernels
 * sum in llama.cpp's x86 orders here too: lane j of a 32-chunk sums products 4j..4j+3 (SDOT's
 * lanes over the two 16-byte halves), converted and scaled lane by lane, and ts_acc_sum adds the
 * lanes as hsum_float_8 does. */
typedef struct {
    float32x4_t lo, hi;
} ts_acc;
typedef struct {
    int32x4_t lo, hi;
} ts_iacc;
/* The dot products of 16 signed bytes, four consecutive products per int32 lane, added to c. */
static inline int32x4_t ts_sdot16(int32x4_t c, int8x16_t w, int8x16_t a) {
#if defined(TS_ISA_DOTPROD)
    return vdotq_s32(c, w, a);
#else
    return vpadalq_s16(c, vpaddq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(a)), vmull_high_s8(w, a)));
#endif
}
/* The eight lanes of a 32-chunk, starting at start. Codes 0..63 read as int8 are the same
 * numbers, so unsigned codes share the signed products. */
static inline ts_iacc ts_dot8(const int8_t *w, const int8_t *a, ts_iacc start) {
    const ts_iacc r = {ts_sdot16(start.lo, vld1q_s8(w), vld1q_s8(a)), ts_sdot16(start.hi, vld1q_s8(w + 16), vld1q_s8(a + 16))};
    return r;
}
static inline ts_iacc ts_iacc_zero(void) {
    const ts_iacc r = {vdupq_n_s32(0), vdupq_n_s32(0)};
    return r;
}
static inline ts_acc ts_acc_zero(void) {
    const ts_acc r = {vdupq_n_f32(0), vdupq_n_f32(0)};
    return r;
}
static inline ts_acc ts_acc_add(ts_acc a, ts_acc b) {
    const ts_acc r = {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)};
    return r;
}
/* acc + float(i) * (s_lo in lanes 0-3, s_hi in lanes 4-7), fused per lane. */
static inline ts_acc ts_acc_fma2(ts_acc acc, ts_iacc i, float s_lo, float s_hi) {
    const ts_acc r = {vfmaq_n_f32(acc.lo, vcvtq_f32_s32(i.lo), s_lo), vfmaq_n_f32(acc.hi, vcvtq_f32_s32(i.hi), s_hi)};
    return r;
}
static inline ts_acc ts_acc_u8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi,
                                  int32_t c_lo, int32_t c_hi) {
    const ts_iacc st = {vsetq_lane_s32(c_lo, vdupq_n_s32(0), 0), vsetq_lane_s32(c_hi, vdupq_n_s32(0), 0)};
    return ts_acc_fma2(acc, ts_dot8(w, a, st), s_lo, s_hi);
}
static inline ts_acc ts_acc_u8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s, int32_t c) {
    return ts_acc_u8x32(acc, w, a, s, s, c, 0);
}
static inline ts_acc ts_acc_s8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi) {
    return ts_acc_u8x32(acc, w, a, s_lo, s_hi, 0, 0);
}
static inline ts_acc ts_acc_s8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s) {
    return ts_acc_u8x32(acc, w, a, s, s, 0, 0);
}
/* hsum_float_8: halves added (lane i + lane i+4), then lanes 0+2 and 1+3, then those two. */
static inline float ts_acc_sum(ts_acc acc) {
    const float32x4_t s = vaddq_f32(acc.lo, acc.hi);
    const float32x4_t t = vaddq_f32(s, vextq_f32(s, s, 2));
    return vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 1);
}
typedef float32x4x2_t ts_sc8;
static inline ts_sc8 ts_sc8_load(const float *p) { const ts_sc8 v = {{vld1q_f32(p), vld1q_f32(p + 4)}}; return v; }
static inline ts_sc8 ts_sc8_mul(ts_sc8 a, ts_sc8 b) {
    const ts_sc8 v = {{vmulq_f32(a.val[0], b.val[0]), vmulq_f32(a.val[1], b.val[1])}};
    return v;
}
/* c8: the start values of the eight lanes (see the x86 form). */
static inline ts_acc ts_acc_u8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k, const int32_t *c8) {
    const ts_iacc st = {vld1q_s32(c8), vld1q_s32(c8 + 4)};
    const float s = p.val[k >> 2][k & 3];
    return ts_acc_fma2(acc, ts_dot8(w, a, st), s, s);
}
static inline ts_acc ts_acc_s8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k) {
    return ts_acc_s8x32_1(acc, w, a, p.val[k >> 2][k & 3]);
}
typedef struct { int16_t lo, hi; } ts_ksc;
static inline ts_ksc ts_ksc_make(int16_t lo, int16_t hi) { const ts_ksc s = {lo, hi}; return s; }
/* acc + lo * (lanes of the first 16 products) + hi * (lanes of the second 16). */
static inline ts_iacc ts_iacc_u8x32(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s) {
    const ts_iacc d = ts_dot8(w, a, ts_iacc_zero());
    const ts_iacc r = {vmlaq_n_s32(acc.lo, d.lo, s.lo), vmlaq_n_s32(acc.hi, d.hi, s.hi)};
    return r;
}
/* acc + the sums of m[2j]*s[2j] + m[2j+1]*s[2j+1] in lane j (vpmaddwd's lanes). */
static inline ts_iacc ts_iacc_dot16(ts_iacc acc, const int16_t *m, const int16_t *s) {
    const int16x8_t m0 = vld1q_s16(m), m1 = vld1q_s16(m + 8), s0 = vld1q_s16(s), s1 = vld1q_s16(s + 8);
    const int32x4_t lo = vpaddq_s32(vmull_s16(vget_low_s16(m0), vget_low_s16(s0)), vmull_high_s16(m0, s0));
    const int32x4_t hi = vpaddq_s32(vmull_s16(vget_low_s16(m1), vget_low_s16(s1)), vmull_high_s16(m1, s1));
    const ts_iacc r = {vaddq_s32(acc.lo, lo), vaddq_s32(acc.hi, hi)};
    return r;
}
/* The integer total of an accumulator's lanes (exact). */
static inline int32_t ts_iacc_hsum(ts_iacc i) { return vaddvq_s32(vaddq_s32(i.lo, i.hi)); }
static inline ts_acc ts_acc_fma_iacc(ts_acc f, ts_iacc i, float s) { return ts_acc_fma2(f, i, s, s); }
/* Q3_K's lane offset (see the x86 form): p4[i] = 4*(a[2i] + a[2i+1]), taken off each lane's
 * products (lane j: p4[2j] + p4[2j+1]) before the scale. */
static inline void ts_p4(const int8_t *a, int16_t *p4) {
    for (int i = 0; i < 16; i++) p4[i] = (int16_t)(4 * (a[2 * i] + a[2 * i + 1]));
}
static inline ts_iacc ts_iacc_u8x32_off(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s, const int16_t *p4) {
    const ts_iacc d = ts_dot8(w, a, ts_iacc_zero());
    const int32x4_t o0 = vpaddlq_s16(vld1q_s16(p4)), o1 = vpaddlq_s16(vld1q_s16(p4 + 8));
    const ts_iacc r = {vmlaq_n_s32(acc.lo, vsubq_s32(d.lo, o0), s.lo), vmlaq_n_s32(acc.hi, vsubq_s32(d.hi, o1), s.hi)};
    return r;
}
#else
/* The scalar tier: the x86 tiers' eight lanes in plain C (lane j of a 32-chunk sums products
 * 4j..4j+3), so it sums in llama.cpp's x86 orders as every other tier does. */
typedef struct {
    float v[8];
} ts_acc;
typedef struct {
    int32_t v[8];
} ts_iacc;
static inline ts_iacc ts_iacc_zero(void) {
    const ts_iacc r = {{0}};
    return r;
}
static inline ts_acc ts_acc_zero(void) {
    const ts_acc r = {{0}};
    return r;
}
static inline ts_acc ts_acc_add(ts_acc a, ts_acc b) {
    for (int j = 0; j < 8; j++) a.v[j] += b.v[j];
    return a;
}
/* The eight lanes of a 32-chunk, added to start. */
static inline ts_iacc ts_dot8(const int8_t *w, const int8_t *a, ts_iacc start) {
    for (int j = 0; j < 8; j++)
        start.v[j] += (int32_t)w[4 * j] * a[4 * j] + (int32_t)w[4 * j + 1] * a[4 * j + 1] +
                      (int32_t)w[4 * j + 2] * a[4 * j + 2] + (int32_t)w[4 * j + 3] * a[4 * j + 3];
    return start;
}
/* acc + float(i) * (s_lo in lanes 0-3, s_hi in lanes 4-7), fused per lane. */
static inline ts_acc ts_acc_fma2(ts_acc acc, ts_iacc i, float s_lo, float s_hi) {
    for (int j = 0; j < 8; j++) acc.v[j] = fmaf((float)i.v[j], j < 4 ? s_lo : s_hi, acc.v[j]);
    return acc;
}
static inline ts_acc ts_acc_u8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi,
                                  int32_t c_lo, int32_t c_hi) {
    ts_iacc st = ts_iacc_zero();
    st.v[0] = c_lo;
    st.v[4] = c_hi;
    return ts_acc_fma2(acc, ts_dot8(w, a, st), s_lo, s_hi);
}
static inline ts_acc ts_acc_u8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s, int32_t c) {
    return ts_acc_u8x32(acc, w, a, s, s, c, 0);
}
static inline ts_acc ts_acc_s8x32(ts_acc acc, const int8_t *w, const int8_t *a, float s_lo, float s_hi) {
    return ts_acc_u8x32(acc, w, a, s_lo, s_hi, 0, 0);
}
static inline ts_acc ts_acc_s8x32_1(ts_acc acc, const int8_t *w, const int8_t *a, float s) {
    return ts_acc_u8x32(acc, w, a, s, s, 0, 0);
}
/* hsum_float_8: ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)). */
static inline float ts_acc_sum(ts_acc acc) {
    const float s0 = acc.v[0] + acc.v[4], s1 = acc.v[1] + acc.v[5], s2 = acc.v[2] + acc.v[6], s3 = acc.v[3] + acc.v[7];
    return (s0 + s2) + (s1 + s3);
}
typedef struct { float v[8]; } ts_sc8;
static inline ts_sc8 ts_sc8_load(const float *p) { ts_sc8 s; memcpy(s.v, p, sizeof s.v); return s; }
static inline ts_sc8 ts_sc8_mul(ts_sc8 a, ts_sc8 b) {
    for (int i = 0; i < 8; i++) a.v[i] *= b.v[i];
    return a;
}
static inline ts_acc ts_acc_u8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k, const int32_t *c8) {
    ts_iacc st;
    memcpy(st.v, c8, sizeof st.v);
    return ts_acc_fma2(acc, ts_dot8(w, a, st), p.v[k], p.v[k]);
}
static inline ts_acc ts_acc_s8x32_lane(ts_acc acc, const int8_t *w, const int8_t *a, ts_sc8 p, int k) {
    return ts_acc_s8x32_1(acc, w, a, p.v[k]);
}
typedef struct { int16_t lo, hi; } ts_ksc;
static inline ts_ksc ts_ksc_make(int16_t lo, int16_t hi) { const ts_ksc s = {lo, hi}; return s; }
static inline ts_iacc ts_iacc_u8x32(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s) {
    const ts_iacc d = ts_dot8(w, a, ts_iacc_zero());
    for (int j = 0; j < 8; j++) acc.v[j] += (j < 4 ? s.lo : s.hi) * d.v[j];
    return acc;
}
/* acc + the sums of m[2j]*s[2j] + m[2j+1]*s[2j+1] in lane j (vpmaddwd's lanes). */
static inline ts_iacc ts_iacc_dot16(ts_iacc acc, const int16_t *m, const int16_t *s) {
    for (int j = 0; j < 8; j++) acc.v[j] += (int32_t)m[2 * j] * s[2 * j] + (int32_t)m[2 * j + 1] * s[2 * j + 1];
    return acc;
}
/* The integer total of an accumulator's lanes (exact). */
static inline int32_t ts_iacc_hsum(ts_iacc i) {
    int32_t t = 0;
    for (int j = 0; j < 8; j++) t += i.v[j];
    return t;
}
static inline ts_acc ts_acc_fma_iacc(ts_acc f, ts_iacc i, float s) { return ts_acc_fma2(f, i, s, s); }
static inline void ts_p4(const int8_t *a, int16_t *p4) {
    for (int i = 0; i < 16; i++) p4[i] = (int16_t)(4 * (a[2 * i] + a[2 * i + 1]));
}
static inline ts_iacc ts_iacc_u8x32_off(ts_iacc acc, const int8_t *w, const int8_t *a, ts_ksc s, const int16_t *p4) {
    const ts_iacc d = ts_dot8(w, a, ts_iacc_zero());
    for (int j = 0; j < 8; j++) acc.v[j] += (j < 4 ? s.lo : s.hi) * (d.v[j] - p4[2 * j] - p4[2 * j + 1]);
    return acc;
}
#endif


/* The whole integer dot product of 32 codes with 32 activations, plus c: signed codes (SIGNED)
 * or unsigned codes 0..255 (where the tier's unsigned dot takes full bytes; 0..63 elsewhere). */
static inline int32_t ts_dot32_total(const int8_t *w, const int8_t *a, int sgn, int32_t c) {
#if defined(TS_ISA_AVX2) || defined(TS_ISA_AVX512)
    return ts_iacc_hsum(sgn ? ts_dot_s8s8(w, a) : ts_dot_u8s8_from(w, a, _mm256_setzero_si256())) + c;
#else
    (void)sgn;
    int32_t lo, hi;
    ts_dot_s8x32(w, a, &lo, &hi);
    return lo + hi + c;
#endif
}

#endif
