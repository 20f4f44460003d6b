/* TensorSharp CUDA backend kernels, compiled at first use by NVRTC for the device's own
 * architecture (and in CI for sm_53, sm_72 and sm_87 by scripts/cuda-check.py). Decode-step
 * kernels over f32 activations:
 *   ts_matvec:   y[r] = dot(row r of a quantized matrix, x), one warp per row
 *   ts_get_row:  the embedding row of a token, dequantized
 *   ts_rms_norm: y = x / rms(x) * w
 *   ts_rope:     rotary embedding of q or k rows in place (NeoX or interleaved pairs)
 *   ts_attention_f16: one query per head against the f16 KV cache (softmax over the positions)
 *   ts_swiglu / ts_geglu: the FFN activation times the up projection
 *   ts_add:      the residual (and biases)
 *   ts_store_f16: a K or V row into the f16 cache
 *   ts_scale:    x *= s (the embedding scale)
 *   ts_softcap:  x = cap * tanh(x / cap) (final logit softcapping)
 * Parity with the CPU path is by tolerance (greedy equal up to near-ties, logits cosine >=
 * 0.999: scripts/gpu-check.sh), not bits: the sums run in another order. */
#include "ts_cuda_quant.cuh"

#define TS_WARP 32

__device__ __forceinline__ float ts_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float ts_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block of (32, rows_per_block) threads; grid over rows. n % 32 == 0. */
extern "C" __global__ void ts_matvec(int type, const u8 *w, long row_bytes, int nrows, const float *x, int n,
                                     float *y) {
    const int r = blockIdx.x * blockDim.y + threadIdx.y;
    if (r >= nrows) return;
    const u8 *row = w + (long)r * row_bytes;
    float acc = 0.0f, v[32];
    for (long s = threadIdx.x; s < n / 32; s += TS_WARP) {
        ts_dequant_sub32(type, row, s, v);
        const float *xs = x + s * 32;
#pragma unroll
        for (int l = 0; l < 32; l++) acc += v[l] * xs[l];
    }
    acc = ts_warp_sum(acc);
    if (threadIdx.x == 0) y[r] = acc;
}

/* One warp: the row of `token` (n elements) into y. */
extern "C" __global__ void ts_get_row(int type, const u8 *w, long row_bytes, int token, int n, float *y) {
    const u8 *row = w + (long)token * row_bytes;
    float v[32];
    for (long s = threadIdx.x; s < n / 32; s += TS_WARP) {
        ts_dequant_sub32(type, row, s, v);
        for (int l = 0; l < 32; l++) y[s * 32 + l] = v[l];
    }
}

/* One block of 32 threads per row. */
extern "C" __global__ void ts_rms_norm(const float *x, const float *w, float *y, int n, float eps) {
    const float *xr = x + (long)blockIdx.x * n;
    float *yr = y + (long)blockIdx.x * n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += TS_WARP) ss += xr[i] * xr[i];
    ss = ts_warp_sum(ss);
    const float scale = rsqrtf(ss / n + eps);
    for (int i = threadIdx.x; i < n; i += TS_WARP) yr[i] = xr[i] * scale * w[i];
}

/* x holds n_heads rows of head_dim; pairs (i, i + rope_dim/2) when neox, else (2i, 2i + 1). */
extern "C" __global__ void ts_rope(float *x, int n_heads, int head_dim, int rope_dim, int pos, float base,
                                   float freq_scale, int neox) {
    const int h = blockIdx.x;
    if (h >= n_heads) return;
    float *xh = x + (long)h * head_dim;
    const int half = rope_dim / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float theta = pos * freq_scale * powf(base, -2.0f * i / rope_dim);
        float s, c;
        sincosf(theta, &s, &c);
        const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * c - x1 * s;
        xh[b] = x0 * s + x1 * c;
    }
}

/* One warp per query head: out[h] = softmax(scale * q_h . K_g) . V_g over npos cached positions
 * of the head's KV group g (f16 rows of head_dim / head_dim_v at k_stride / v_stride elements);
 * scores: npos floats of scratch per head. */
extern "C" __global__ void ts_attention_f16(const float *q, const u16 *k, long k_stride, const u16 *v,
                                            long v_stride, int n_head, int n_head_kv, int head_dim,
                                            int head_dim_v, int npos, float scale, float *scores,
                                            float *out) {
    const int h = blockIdx.x;
    if (h >= n_head) return;
    const int g = h / (n_head / n_head_kv);
    const float *qh = q + (long)h * head_dim;
    float *sc = scores + (long)h * npos;
    float mx = -3.0e38f;
    for (int p = threadIdx.x; p < npos; p += TS_WARP) {
        const u16 *kr = k + (long)p * k_stride + (long)g * head_dim;
        float s = 0.0f;
        for (int i = 0; i < head_dim; i++) s += qh[i] * ts_h2f(kr[i]);
        s *= scale;
        sc[p] = s;
        mx = fmaxf(mx, s);
    }
    mx = ts_warp_max(mx);
    float sum = 0.0f;
    for (int p = threadIdx.x; p < npos; p += TS_WARP) {
        const float e = expf(sc[p] - mx);
        sc[p] = e;
        sum += e;
    }
    sum = ts_warp_sum(sum);
    __syncwarp();
    float *oh = out + (long)h * head_dim_v;
    for (int i = threadIdx.x; i < head_dim_v; i += TS_WARP) {
        float acc = 0.0f;
        for (int p = 0; p < npos; p++) acc += sc[p] * ts_h2f(v[(long)p * v_stride + (long)g * head_dim_v + i]);
        oh[i] = acc / sum;
    }
}

extern "C" __global__ void ts_swiglu(float *g, const float *u, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

extern "C" __global__ void ts_geglu(float *g, const float *u, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))) * u[i];
    }
}

extern "C" __global__ void ts_add(float *a, const float *b, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] += b[i];
}

extern "C" __global__ void ts_store_f16(const float *x, u16 *dst, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = ts_f2h(x[i]);
}

extern "C" __global__ void ts_scale(float *x, float s, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

extern "C" __global__ void ts_softcap(float *x, float cap, long n) {
    const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}
