/* ts_quantize.h — activation quantization (per-32 and per-256 scales) and the lane start values of
 * offset codes.
 * Part of ts_kernels.c (included once, after ts_simd.h and the tier's TS_FN / TS_COLS settings);
 * not a standalone header. */
#ifndef TS_QUANTIZE_H
#define TS_QUANTIZE_H

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

#endif /* TS_QUANTIZE_H */
