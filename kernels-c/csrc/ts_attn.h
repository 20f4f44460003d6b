/* Attention of one query over an f16 KV cache, computed as llama.cpp's CPU backend computes it
 * without flash attention (the reference outputs were made that way; llama-cpp-python's default),
 * operation for operation, so that the rounding matches too. Included by ts_kernels.c.
 *
 * ggml's graph is KQ = mul_mat(K, q), softmax, KQV = mul_mat(V^T, softmax):
 *   - q and the probabilities are rounded to f16 (the f16 matmul's activation type);
 *   - a matmul of two or more tokens runs llamafile's tinyBLAS (16 fp32 lanes, lane t summing the
 *     elements i = t mod 16 in order with fma, then _mm512_reduce_add_ps); one token runs
 *     ggml_vec_dot_f16 (4 x 16 lanes over blocks of 64, lanes combined 0+2, 1+3, 0+1, then the same
 *     reduction; a tail past the last block of 64 added in double);
 *   - softmax: scores times the scale, max, ggml's vector expf in chunks of 16 cache cells, each
 *     chunk reduced as above and summed in double; probabilities times (float)(1 / sum).
 * The lanes are those of the AVX-512 build (the reference's). Cell index = position: `first` is
 * the cell of key 0 (masked cells before it and after the last key contribute exact zeros). Every
 * tier computes the same bits: the AVX-512 tier with the vector instructions ggml uses, the AVX2
 * tier with two 8-lane halves of each 16-lane vector, the ARM tiers with four 4-lane quarters,
 * the scalar tier lane by lane with fmaf. */

#define TS_ATTN_MAX_HEAD 512 /* longest query head (the q16 copy is on the stack) */

/* _mm512_reduce_add_ps as GCC defines it: halves, quarters, then (0+2) + (1+3). */
static inline float ts_tree16(const float *a) {
    float t3[8], t6[4];
    for (int i = 0; i < 8; i++) t3[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) t6[i] = t3[i + 4] + t3[i];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

/* 2^n as a double, |n| <= 1022. */
static inline double ts_pow2d(int n) {
    const uint64_t bits = (uint64_t)(n + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* ggml_v_expf (AVX-512 form) for one lane. _mm512_scalef_ps(j, n) = j * 2^n rounded once: the
 * product in double is exact, so one conversion to float rounds it as scalef does. */
static inline float ts_ggml_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (n != n) return j; /* NaN input: NaN */
    return (float)((double)j * ts_pow2d((int)n));
}

#if defined(TS_ISA_AVX512)
/* ggml_v_expf, AVX-512 form, as ggml writes it. */
static inline __m512 ts_v_expf(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d)) return res;
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(d, res, alt);
}
#endif

#if defined(TS_ISA_AVX2)
/* The AVX2 tier computes the AVX-512 build's 16-lane orders with two 8-lane halves (lanes 0-7
 * and 8-15 of the AVX-512 vector). */

/* _mm512_reduce_add_ps's pairs (ts_tree16) on the two halves of a 16-lane vector. */
static inline float ts_tree16_v(__m256 lo, __m256 hi) {
    const __m256 t3 = _mm256_add_ps(hi, lo);
    const __m128 t6 = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    const __m128 s = _mm_add_ps(t6, _mm_movehl_ps(t6, t6)); /* t6[0] + t6[2], t6[1] + t6[3] */
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* ggml_v_expf's AVX-512 form on eight lanes: the same fma sequence; _mm512_scalef_ps(j, n) is
 * j * 2^n rounded once, which one multiply by 2^n gives wherever 2^n is a normal float. Lanes
 * outside that range (masked cells, NaN, |x| > ~87) take the scalar form (ts_ggml_expf). */
static inline __m256 ts_v_expf8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0F)));
    const __m256 in = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                    _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 res = _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    const int ok = _mm256_movemask_ps(in);
    if (ok == 0xff) return res;
    float xs[8], rs[8];
    _mm256_storeu_ps(xs, x);
    _mm256_storeu_ps(rs, res);
    for (int t = 0; t < 8; t++)
        if (!(ok >> t & 1)) rs[t] = ts_ggml_expf(xs[t]);
    return _mm256_loadu_ps(rs);
}

/* Rounds eight floats to f16 and back (F16C: nearest even, as ts_f2h). */
static inline __m256 ts_round_f16x8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline __m256 ts_load_h8(const ts_half *x) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)); }
#endif

#if defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
/* The ARM tiers compute the same 16-lane orders with four 4-lane quarters (lanes 0-3, 4-7, 8-11,
 * 12-15 of the AVX-512 vector), so they give the x86 tiers' bits. */

/* ts_tree16 on the quarters of a 16-lane vector. */
static inline float ts_tree16_n(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    const float32x4_t t6 = vaddq_f32(vaddq_f32(a3, a1), vaddq_f32(a2, a0)); /* t3[i+4] + t3[i] */
    const float32x4_t u = vaddq_f32(t6, vextq_f32(t6, t6, 2));             /* t6[0]+t6[2], t6[1]+t6[3] */
    return vgetq_lane_f32(u, 0) + vgetq_lane_f32(u, 1);
}

/* ggml_v_expf's AVX-512 form on four lanes (see ts_v_expf8): fused steps as ggml writes them,
 * 2^n by one multiply where it is a normal float, other lanes through ts_ggml_expf. */
static inline float32x4_t ts_v_expf4(float32x4_t x) {
    const float32x4_t r = vdupq_n_f32(0x1.8p23f);
    const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
    const float32x4_t n = vsubq_f32(z, r);
    const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t j =
        vfmaq_f32(vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0x1.ffffecp-1f), b),
                  vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                            vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
                  u);
    const uint32x4_t in = vandq_u32(vcgeq_f32(n, vdupq_n_f32(-126.0f)), vcleq_f32(n, vdupq_n_f32(127.0f)));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    const float32x4_t res = vmulq_f32(j, vreinterpretq_f32_s32(e));
    if (vminvq_u32(in) == 0xffffffffu) return res;
    float xs[4], rs[4];
    vst1q_f32(xs, x);
    vst1q_f32(rs, res);
    uint32_t ok[4];
    vst1q_u32(ok, in);
    for (int t = 0; t < 4; t++)
        if (!ok[t]) rs[t] = ts_ggml_expf(xs[t]);
    return vld1q_f32(rs);
}

static inline float32x4_t ts_round_f16x4(float32x4_t x) { return vcvt_f32_f16(vcvt_f16_f32(x)); }
static inline float32x4_t ts_load_h4(const ts_half *x) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x))); }
#endif

/* g[i] = silu(g[i]) * u[i] as ggml_vec_swiglu_f32 computes it: x / (1 + e^-x) with the vector
 * expf for the first n_vec elements (the row's whole chunks of 16), libm's expf past them. */
static void TS_FN(swiglu)(float *g, const float *u, int64_t n, int64_t n_vec) {
    int64_t i = 0;
#if defined(TS_ISA_AVX512)
    for (; i + 16 <= n_vec; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = ts_v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x));
        const __m512 s = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
    }
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    for (; i + 4 <= n_vec; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t e = ts_v_expf4(vsubq_f32(vdupq_n_f32(0.0f), x));
        vst1q_f32(g + i, vmulq_f32(vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
    }
#elif defined(TS_ISA_AVX2)
    for (; i + 8 <= n_vec; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = ts_v_expf8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < n_vec; i++) g[i] = (g[i] / (1.0f + ts_ggml_expf(0.0f - g[i]))) * u[i];
    for (; i < n; i++) g[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

/* dot(x[0..n), y[0..n)) of f16 x and f32 y (f16 values), in tinyBLAS order (n % 16 == 0). */
static inline float ts_dot_tiny(const ts_half *x, const float *y, int64_t n) {
#if defined(TS_ISA_AVX512)
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))), _mm512_loadu_ps(y + i),
                              acc);
    return _mm512_reduce_add_ps(acc);
#elif defined(TS_ISA_AVX2)
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        lo = _mm256_fmadd_ps(ts_load_h8(x + i), _mm256_loadu_ps(y + i), lo);
        hi = _mm256_fmadd_ps(ts_load_h8(x + i + 8), _mm256_loadu_ps(y + i + 8), hi);
    }
    return ts_tree16_v(lo, hi);
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < n; i += 16) {
        a0 = vfmaq_f32(a0, ts_load_h4(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, ts_load_h4(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, ts_load_h4(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, ts_load_h4(x + i + 12), vld1q_f32(y + i + 12));
    }
    return ts_tree16_n(a0, a1, a2, a3);
#else
    float acc[16] = {0};
    for (int64_t i = 0; i < n; i += 16)
        for (int t = 0; t < 16; t++) acc[t] = fmaf(ts_h2f(x[i + t]), y[i + t], acc[t]);
    return ts_tree16(acc);
#endif
}

#if defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
/* s[j] = ts_dot_tiny(k_j, q, hd) * scale for 4 consecutive keys j (hd % 16 == 0): q's quarters
 * loaded once for the four keys. */
static inline void ts_dot_tiny4(const ts_half *k, size_t k_stride, const float *q, int64_t hd, float scale,
                                float *s) {
    float32x4_t a[4][4];
    for (int j = 0; j < 4; j++)
        for (int e = 0; e < 4; e++) a[j][e] = vdupq_n_f32(0);
    for (int64_t i = 0; i < hd; i += 16) {
        float32x4_t qv[4];
        for (int e = 0; e < 4; e++) qv[e] = vld1q_f32(q + i + 4 * e);
        for (int j = 0; j < 4; j++)
            for (int e = 0; e < 4; e++) a[j][e] = vfmaq_f32(a[j][e], ts_load_h4(k + j * k_stride + i + 4 * e), qv[e]);
    }
    for (int j = 0; j < 4; j++) s[j] = ts_tree16_n(a[j][0], a[j][1], a[j][2], a[j][3]) * scale;
}
#endif

#if defined(TS_ISA_AVX2)
/* s[j] = ts_dot_tiny(k_j, q, hd) * scale for 4 consecutive keys j (hd % 16 == 0): q's halves
 * loaded once for the four keys. */
static inline void ts_dot_tiny4(const ts_half *k, size_t k_stride, const float *q, int64_t hd, float scale,
                                float *s) {
    __m256 lo[4], hi[4];
    for (int j = 0; j < 4; j++) lo[j] = hi[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < hd; i += 16) {
        const __m256 ql = _mm256_loadu_ps(q + i), qh = _mm256_loadu_ps(q + i + 8);
        for (int j = 0; j < 4; j++) {
            lo[j] = _mm256_fmadd_ps(ts_load_h8(k + j * k_stride + i), ql, lo[j]);
            hi[j] = _mm256_fmadd_ps(ts_load_h8(k + j * k_stride + i + 8), qh, hi[j]);
        }
    }
    for (int j = 0; j < 4; j++) s[j] = ts_tree16_v(lo[j], hi[j]) * scale;
}
#endif

#if defined(TS_ISA_AVX512)
/* r[j] = _mm512_reduce_add_ps(v[j]) for 16 vectors at once, by the same pairs of additions
 * (halves, quarters, then (0+2) + (1+3)): two vectors share each add, so the 16 sums cost 15
 * adds and 30 shuffles instead of 16 full reductions. Lane 4q+m ends with vector 4m+q and the
 * last permute puts it back. Additions are commutative, so the bits equal the reduction's. */
static inline __m512 ts_reduce16x16(const __m512 *v) {
    __m512 c[8], e[4], f[2];
    for (int p = 0; p < 8; p++) /* t3: chunk pairs (0,2), (1,3) of each vector */
        c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int p = 0; p < 4; p++) /* t6: the two chunks of each vector's t3 */
        e[p] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int p = 0; p < 2; p++) /* t6[0] + t6[2], t6[1] + t6[3] */
        f[p] = _mm512_add_ps(_mm512_shuffle_ps(e[2 * p], e[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(e[2 * p], e[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(f[0], f[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i back = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(back, r);
}

/* s[j] = ts_dot_tiny(k_j, q, hd) * scale for 16 consecutive keys j (hd % 16 == 0). */
static inline void ts_dot_tiny16(const ts_half *k, size_t k_stride, const float *q, int64_t hd, float scale,
                                 float *s) {
    __m512 acc[16];
    for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < hd; i += 16) {
        const __m512 qv = _mm512_loadu_ps(q + i);
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + j * k_stride + i))),
                                     qv, acc[j]);
    }
    _mm512_storeu_ps(s, _mm512_mul_ps(ts_reduce16x16(acc), _mm512_set1_ps(scale)));
}
#endif

/* The same in ggml_vec_dot_f16 order. */
static inline float ts_dot_vec(const ts_half *x, const float *y, int64_t n) {
    const int64_t np = n & ~(int64_t)63;
    float r;
#if defined(TS_ISA_AVX512)
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < np; i += 64)
        for (int a = 0; a < 4; a++)
            s[a] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * a))),
                                   _mm512_loadu_ps(y + i + 16 * a), s[a]);
    s[0] = _mm512_add_ps(s[0], s[2]);
    s[1] = _mm512_add_ps(s[1], s[3]);
    r = _mm512_reduce_add_ps(_mm512_add_ps(s[0], s[1]));
#elif defined(TS_ISA_AVX2)
    __m256 s[8];
    for (int a = 0; a < 8; a++) s[a] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += 64)
        for (int a = 0; a < 8; a++) s[a] = _mm256_fmadd_ps(ts_load_h8(x + i + 8 * a), _mm256_loadu_ps(y + i + 8 * a), s[a]);
    /* 16-lane accumulators a = (s[2a], s[2a+1]): (s0 + s2) + (s1 + s3) */
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(s[0], s[4]), _mm256_add_ps(s[2], s[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(s[1], s[5]), _mm256_add_ps(s[3], s[7]));
    r = ts_tree16_v(lo, hi);
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    float32x4_t s[16];
    for (int a = 0; a < 16; a++) s[a] = vdupq_n_f32(0);
    for (int64_t i = 0; i < np; i += 64)
        for (int a = 0; a < 16; a++) s[a] = vfmaq_f32(s[a], ts_load_h4(x + i + 4 * a), vld1q_f32(y + i + 4 * a));
    /* 16-lane accumulator a = quarters s[4a..4a+3]: (s0 + s2) + (s1 + s3) */
    float32x4_t l[4];
    for (int q = 0; q < 4; q++) l[q] = vaddq_f32(vaddq_f32(s[q], s[8 + q]), vaddq_f32(s[4 + q], s[12 + q]));
    r = ts_tree16_n(l[0], l[1], l[2], l[3]);
#else
    float s[64] = {0}, l[16];
    for (int64_t i = 0; i < np; i += 64)
        for (int a = 0; a < 64; a++) s[a] = fmaf(ts_h2f(x[i + a]), y[i + a], s[a]);
    for (int t = 0; t < 16; t++) l[t] = (s[t] + s[32 + t]) + (s[16 + t] + s[48 + t]);
    r = ts_tree16(l);
#endif
    if (np == n) return r;
    double sum = r;
    for (int64_t i = np; i < n; i++) sum += (double)(ts_h2f(x[i]) * y[i]);
    return (float)sum;
}

/* out[d0..d0+nd) = sum_j p[j] * v[j][d] with lane (first + j) mod na (16: tinyBLAS, 64:
 * vec_dot_f16), lanes reduced as those orders do. nd <= 16. */
static inline void ts_pv_block(const float *p, const ts_half *v, size_t v_stride, int64_t first, int64_t npos,
                               int64_t d0, int nd, int na, float *out) {
#if defined(TS_ISA_AVX512)
    if (nd == 16 && na == 16) {
        /* Lane = cell mod 16: whole groups of 16 cells with the lane a constant of the unrolled
         * loop, so the 16 chains stay in registers. */
        __m512 a16[16];
        for (int t = 0; t < 16; t++) a16[t] = _mm512_setzero_ps();
        const int64_t cend = first + npos;
        for (int64_t c0 = first & ~(int64_t)15; c0 < cend; c0 += 16) {
            const int64_t j0 = c0 - first;
            if (c0 >= first && c0 + 16 <= cend) {
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    a16[t] = _mm512_fmadd_ps(
                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + (j0 + t) * v_stride + d0))),
                        _mm512_set1_ps(p[j0 + t]), a16[t]);
            } else {
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    if (j0 + t >= 0 && j0 + t < npos)
                        a16[t] = _mm512_fmadd_ps(
                            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + (j0 + t) * v_stride + d0))),
                            _mm512_set1_ps(p[j0 + t]), a16[t]);
            }
        }
        __m512 t3[8], t6[4];
        for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(a16[i + 8], a16[i]);
        for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[i + 4], t3[i]);
        _mm512_storeu_ps(out + d0, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
        return;
    }
    if (nd == 16) {
        __m512 acc[64];
        for (int a = 0; a < na; a++) acc[a] = _mm512_setzero_ps();
        for (int64_t j = 0; j < npos; j++) {
            const int a = (int)((first + j) & (na - 1));
            acc[a] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + j * v_stride + d0))),
                                     _mm512_set1_ps(p[j]), acc[a]);
        }
        if (na == 64)
            for (int t = 0; t < 16; t++)
                acc[t] = _mm512_add_ps(_mm512_add_ps(acc[t], acc[32 + t]), _mm512_add_ps(acc[16 + t], acc[48 + t]));
        __m512 t3[8], t6[4];
        for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(acc[i + 8], acc[i]);
        for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[i + 4], t3[i]);
        _mm512_storeu_ps(out + d0, _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3])));
        return;
    }
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    if (nd == 16) {
        /* One lane (cell mod na) at a time, as the AVX2 form below; four quarters of 16 values. */
        float32x4_t q[64][4];
        const int64_t cend = first + npos;
        for (int a = 0; a < na; a++) {
            float32x4_t q0 = vdupq_n_f32(0), q1 = q0, q2 = q0, q3 = q0;
            for (int64_t c = first + ((a - first) % na + na) % na; c < cend; c += na) {
                const ts_half *vj = v + (c - first) * v_stride + d0;
                const float pj = p[c - first];
                q0 = vfmaq_n_f32(q0, ts_load_h4(vj), pj);
                q1 = vfmaq_n_f32(q1, ts_load_h4(vj + 4), pj);
                q2 = vfmaq_n_f32(q2, ts_load_h4(vj + 8), pj);
                q3 = vfmaq_n_f32(q3, ts_load_h4(vj + 12), pj);
            }
            q[a][0] = q0;
            q[a][1] = q1;
            q[a][2] = q2;
            q[a][3] = q3;
        }
        for (int e = 0; e < 4; e++) {
            if (na == 64)
                for (int t = 0; t < 16; t++)
                    q[t][e] = vaddq_f32(vaddq_f32(q[t][e], q[32 + t][e]), vaddq_f32(q[16 + t][e], q[48 + t][e]));
            for (int i = 0; i < 8; i++) q[i][e] = vaddq_f32(q[i + 8][e], q[i][e]);
            for (int i = 0; i < 4; i++) q[i][e] = vaddq_f32(q[i + 4][e], q[i][e]);
            vst1q_f32(out + d0 + 4 * e, vaddq_f32(vaddq_f32(q[0][e], q[2][e]), vaddq_f32(q[1][e], q[3][e])));
        }
        return;
    }
#elif defined(TS_ISA_AVX2)
    if (nd == 16) {
        /* One lane (cell mod na) at a time: its chain over the cells of that lane, in cell
         * order, stays in two registers; the lanes are then combined as above. */
        __m256 lo[64], hi[64];
        const int64_t cend = first + npos;
        for (int a = 0; a < na; a++) {
            __m256 l = _mm256_setzero_ps(), h = _mm256_setzero_ps();
            for (int64_t c = first + ((a - first) % na + na) % na; c < cend; c += na) {
                const ts_half *vj = v + (c - first) * v_stride + d0;
                const __m256 pj = _mm256_set1_ps(p[c - first]);
                l = _mm256_fmadd_ps(ts_load_h8(vj), pj, l);
                h = _mm256_fmadd_ps(ts_load_h8(vj + 8), pj, h);
            }
            lo[a] = l;
            hi[a] = h;
        }
        if (na == 64)
            for (int t = 0; t < 16; t++) {
                lo[t] = _mm256_add_ps(_mm256_add_ps(lo[t], lo[32 + t]), _mm256_add_ps(lo[16 + t], lo[48 + t]));
                hi[t] = _mm256_add_ps(_mm256_add_ps(hi[t], hi[32 + t]), _mm256_add_ps(hi[16 + t], hi[48 + t]));
            }
        for (int i = 0; i < 8; i++) {
            lo[i] = _mm256_add_ps(lo[i + 8], lo[i]);
            hi[i] = _mm256_add_ps(hi[i + 8], hi[i]);
        }
        for (int i = 0; i < 4; i++) {
            lo[i] = _mm256_add_ps(lo[i + 4], lo[i]);
            hi[i] = _mm256_add_ps(hi[i + 4], hi[i]);
        }
        _mm256_storeu_ps(out + d0, _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3])));
        _mm256_storeu_ps(out + d0 + 8, _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3])));
        return;
    }
#endif
    float acc[64][16];
    for (int a = 0; a < na; a++)
        for (int e = 0; e < nd; e++) acc[a][e] = 0.0f;
    for (int64_t j = 0; j < npos; j++) {
        const int a = (int)((first + j) & (na - 1));
        for (int e = 0; e < nd; e++) acc[a][e] = fmaf(ts_h2f(v[j * v_stride + d0 + e]), p[j], acc[a][e]);
    }
    for (int e = 0; e < nd; e++) {
        float l[16];
        for (int t = 0; t < 16; t++)
            l[t] = na == 64 ? (acc[t][e] + acc[32 + t][e]) + (acc[16 + t][e] + acc[48 + t][e]) : acc[t][e];
        out[d0 + e] = ts_tree16(l);
    }
}

static void TS_FN(attn_f16)(const float *q, const ts_half *k, size_t k_stride, const ts_half *v, size_t v_stride,
                            int64_t first, int64_t npos, int64_t hd, int64_t hdv, float scale, int batched,
                            float *scores, float *out) {
    float q16[TS_ATTN_MAX_HEAD] __attribute__((aligned(64)));
    if (hd > TS_ATTN_MAX_HEAD || npos <= 0) return;
    for (int64_t d = 0; d < hd; d++) q16[d] = ts_h2f(ts_f2h(q[d]));
    /* Scores, scaled (the causal mask adds zeros to the kept cells). */
    const int tiny_kq = batched && hd % 16 == 0;
    float m = -INFINITY;
    int64_t j16 = 0;
#if defined(TS_ISA_AVX512)
    if (tiny_kq)
        for (; j16 + 16 <= npos; j16 += 16) ts_dot_tiny16(k + j16 * k_stride, k_stride, q16, hd, scale, scores + j16);
#elif defined(TS_ISA_AVX2) || defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    if (tiny_kq)
        for (; j16 + 4 <= npos; j16 += 4) ts_dot_tiny4(k + j16 * k_stride, k_stride, q16, hd, scale, scores + j16);
#endif
    for (int64_t j = j16; j < npos; j++) {
        const ts_half *kj = k + j * k_stride;
        scores[j] = (tiny_kq ? ts_dot_tiny(kj, q16, hd) : ts_dot_vec(kj, q16, hd)) * scale;
    }
    for (int64_t j = 0; j < npos; j++) m = scores[j] > m ? scores[j] : m; /* MAX(max, x) */
    /* exp(s - max) per chunk of 16 cells (cell e = first + j), chunk sums in double. */
    double sum = 0.0;
    for (int64_t c0 = first & ~(int64_t)15; c0 < first + npos; c0 += 16) {
        float x[16], val[16];
        for (int t = 0; t < 16; t++) {
            const int64_t j = c0 + t - first;
            x[t] = j >= 0 && j < npos ? scores[j] : -INFINITY; /* masked cell: exp gives 0 */
        }
#if defined(TS_ISA_AVX512)
        const __m512 e = ts_v_expf(_mm512_sub_ps(_mm512_loadu_ps(x), _mm512_set1_ps(m)));
        _mm512_storeu_ps(val, e);
        sum += (double)_mm512_reduce_add_ps(e);
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
        const float32x4_t mv = vdupq_n_f32(m);
        float32x4_t e4[4];
        for (int qq = 0; qq < 4; qq++) {
            e4[qq] = ts_v_expf4(vsubq_f32(vld1q_f32(x + 4 * qq), mv));
            vst1q_f32(val + 4 * qq, e4[qq]);
        }
        sum += (double)ts_tree16_n(e4[0], e4[1], e4[2], e4[3]);
#elif defined(TS_ISA_AVX2)
        const __m256 mv = _mm256_set1_ps(m);
        const __m256 e0 = ts_v_expf8(_mm256_sub_ps(_mm256_loadu_ps(x), mv));
        const __m256 e1 = ts_v_expf8(_mm256_sub_ps(_mm256_loadu_ps(x + 8), mv));
        _mm256_storeu_ps(val, e0);
        _mm256_storeu_ps(val + 8, e1);
        sum += (double)ts_tree16_v(e0, e1);
#else
        for (int t = 0; t < 16; t++) val[t] = x[t] == -INFINITY ? 0.0f : ts_ggml_expf(x[t] - m);
        sum += (double)ts_tree16(val);
#endif
        for (int t = 0; t < 16; t++) {
            const int64_t j = c0 + t - first;
            if (j >= 0 && j < npos) scores[j] = val[t];
        }
    }
    /* Probabilities times (float)(1 / sum), then rounded to f16. */
    const float inv = (float)(1.0 / sum);
    int64_t jr = 0;
#if defined(TS_ISA_AVX512)
    for (; jr + 16 <= npos; jr += 16) /* F16C rounds to nearest even, as ts_f2h */
        _mm512_storeu_ps(scores + jr,
                         _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(scores + jr), _mm512_set1_ps(inv)),
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
#elif defined(TS_ISA_NEON) || defined(TS_ISA_DOTPROD)
    for (; jr + 4 <= npos; jr += 4) vst1q_f32(scores + jr, ts_round_f16x4(vmulq_n_f32(vld1q_f32(scores + jr), inv)));
#elif defined(TS_ISA_AVX2)
    for (; jr + 8 <= npos; jr += 8)
        _mm256_storeu_ps(scores + jr, ts_round_f16x8(_mm256_mul_ps(_mm256_loadu_ps(scores + jr), _mm256_set1_ps(inv))));
#endif
    for (int64_t j = jr; j < npos; j++) scores[j] = ts_h2f(ts_f2h(scores[j] * inv));
    const int na = batched && hdv % 4 == 0 ? 16 : 64;
    for (int64_t d0 = 0; d0 < hdv; d0 += 16)
        ts_pv_block(scores, v, v_stride, first, npos, d0, (int)(hdv - d0 < 16 ? hdv - d0 : 16), na, out);
}
