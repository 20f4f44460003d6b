/* TensorSharp CUDA backend: weight decoders shared by the device kernels (ts_cuda_kernels.cu,
 * compiled by NVRTC for the device's own architecture) and a host build that checks them
 * against the CPU kernels' dequantization bit for bit (runtime/tests/cuda_host.rs).
 *
 * Every decoder turns one 32-element sub-block of a weight row into floats, with ggml's
 * dequantize_row_* arithmetic in ggml's order (block layouts as in kernels-c/csrc/ts_blocks.h):
 * a matrix-vector kernel gives each lane of a warp the sub-blocks lane, lane + 32, ... of a row.
 * No headers: NVRTC compiles this without the CUDA toolkit's include tree. */
#ifndef TS_CUDA_QUANT_CUH
#define TS_CUDA_QUANT_CUH

#ifdef __CUDACC_RTC__
#define TS_DEV __device__ __forceinline__
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
#else
#include <stdint.h>
#define TS_DEV static inline
typedef uint8_t u8;
typedef int8_t i8;
typedef uint16_t u16;
typedef uint32_t u32;
#endif

/* ggml type ids. */
#define TS_T_F32 0
#define TS_T_F16 1
#define TS_T_Q4_0 2
#define TS_T_Q4_1 3
#define TS_T_Q5_0 6
#define TS_T_Q8_0 8
#define TS_T_Q4_K 12
#define TS_T_Q5_K 13
#define TS_T_Q6_K 14

/* IEEE binary16 bits to float, exactly (subnormals, infinities and NaN included). */
TS_DEV float ts_h2f(u16 h) {
    u32 sign = (u32)(h & 0x8000u) << 16;
    u32 exp = (h >> 10) & 0x1fu;
    u32 man = h & 0x3ffu;
    u32 bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while ((man & 0x400u) == 0);
            bits = sign | ((u32)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union {
        u32 u;
        float f;
    } c;
    c.u = bits;
    return c.f;
}

/* Float to IEEE binary16 bits, rounded to nearest even (as ops::f32_to_f16 on the CPU). */
TS_DEV u16 ts_f2h(float f) {
    union {
        float f;
        u32 u;
    } c;
    c.f = f;
    const u32 x = c.u;
    const u16 sign = (u16)((x >> 16) & 0x8000u);
    const int exp = (int)((x >> 23) & 0xffu);
    const u32 man = x & 0x7fffffu;
    if (exp == 0xff) return (u16)(sign | 0x7c00u | (man ? 0x200u : 0u));
    const int e = exp - 127 + 15;
    if (e >= 0x1f) return (u16)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return sign;
        const u32 m = man | 0x800000u;
        const u32 shift = (u32)(14 - e);
        const u32 half = 1u << (shift - 1);
        const u32 rem = m & ((1u << shift) - 1);
        u32 r = m >> shift;
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (u16)(sign | r);
    }
    u32 r = ((u32)e << 10) | (man >> 13);
    const u32 rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (u16)(sign | r);
}

TS_DEV u16 ts_ld16(const u8 *p) { return (u16)(p[0] | (p[1] << 8)); }

/* Bytes per block and elements per block of each supported type (0: unsupported). */
TS_DEV int ts_block_bytes(int t) {
    switch (t) {
    case TS_T_F32: return 128; /* 32 floats as a "block" */
    case TS_T_F16: return 64;
    case TS_T_Q4_0: return 18;
    case TS_T_Q4_1: return 20;
    case TS_T_Q5_0: return 22;
    case TS_T_Q8_0: return 34;
    case TS_T_Q4_K: return 144;
    case TS_T_Q5_K: return 176;
    case TS_T_Q6_K: return 210;
    default: return 0;
    }
}

TS_DEV int ts_block_elems(int t) {
    return (t == TS_T_Q4_K || t == TS_T_Q5_K || t == TS_T_Q6_K) ? 256 : 32;
}

/* ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block. */
TS_DEV void ts_scale_min_k4(int j, const u8 *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Sub-block `s` (32 elements) of a row of type `t` into y[0..32). */
TS_DEV void ts_dequant_sub32(int t, const u8 *row, long s, float *y) {
    if (t == TS_T_F32) {
        const u8 *p = row + s * 128;
        for (int l = 0; l < 32; l++) {
            union {
                u32 u;
                float f;
            } c;
            c.u = (u32)p[4 * l] | ((u32)p[4 * l + 1] << 8) | ((u32)p[4 * l + 2] << 16) | ((u32)p[4 * l + 3] << 24);
            y[l] = c.f;
        }
    } else if (t == TS_T_F16) {
        const u8 *p = row + s * 64;
        for (int l = 0; l < 32; l++) y[l] = ts_h2f(ts_ld16(p + 2 * l));
    } else if (t == TS_T_Q4_0) {
        const u8 *b = row + s * 18;
        const float d = ts_h2f(ts_ld16(b));
        for (int j = 0; j < 16; j++) {
            y[j] = ((b[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
        }
    } else if (t == TS_T_Q4_1) {
        const u8 *b = row + s * 20;
        const float d = ts_h2f(ts_ld16(b)), m = ts_h2f(ts_ld16(b + 2));
        for (int j = 0; j < 16; j++) {
            y[j] = (b[4 + j] & 0x0F) * d + m;
            y[j + 16] = (b[4 + j] >> 4) * d + m;
        }
    } else if (t == TS_T_Q5_0) {
        const u8 *b = row + s * 22;
        const float d = ts_h2f(ts_ld16(b));
        const u32 qh = (u32)b[2] | ((u32)b[3] << 8) | ((u32)b[4] << 16) | ((u32)b[5] << 24);
        for (int j = 0; j < 16; j++) {
            const u8 xh0 = ((qh >> j) << 4) & 0x10;
            const u8 xh1 = (qh >> (j + 12)) & 0x10;
            y[j] = (((b[6 + j] & 0x0F) | xh0) - 16) * d;
            y[j + 16] = (((b[6 + j] >> 4) | xh1) - 16) * d;
        }
    } else if (t == TS_T_Q8_0) {
        const u8 *b = row + s * 34;
        const float d = ts_h2f(ts_ld16(b));
        for (int j = 0; j < 32; j++) y[j] = ((const i8 *)(b + 2))[j] * d;
    } else if (t == TS_T_Q4_K || t == TS_T_Q5_K) {
        const int bytes = t == TS_T_Q4_K ? 144 : 176;
        const u8 *b = row + (s / 8) * bytes;
        const int j = (int)(s % 8);
        const float d = ts_h2f(ts_ld16(b)), dmin = ts_h2f(ts_ld16(b + 2));
        const u8 *scales = b + 4;
        int sc, mn;
        ts_scale_min_k4(j, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        if (t == TS_T_Q4_K) {
            const u8 *q = b + 16 + 32 * (j / 2);
            for (int l = 0; l < 32; l++) y[l] = d1 * ((j & 1) ? (q[l] >> 4) : (q[l] & 0xF)) - m1;
        } else {
            const u8 *qh = b + 16;
            const u8 *ql = b + 48 + 32 * (j / 2);
            const u8 u = (u8)(1u << j);
            for (int l = 0; l < 32; l++)
                y[l] = d1 * (((j & 1) ? (ql[l] >> 4) : (ql[l] & 0xF)) + ((qh[l] & u) ? 16 : 0)) - m1;
        }
    } else if (t == TS_T_Q6_K) {
        const u8 *b = row + (s / 8) * 210;
        const int j = (int)(s % 8), n = j / 4, k = j % 4;
        const u8 *ql = b + 64 * n, *qh = b + 128 + 32 * n;
        const i8 *sc = (const i8 *)(b + 192) + 8 * n;
        const float d = ts_h2f(ts_ld16(b + 208));
        for (int l = 0; l < 32; l++) {
            const int lo = (k & 1) ? ql[l + 32] : ql[l];
            const int nib = (k & 2) ? (lo >> 4) : (lo & 0xF);
            const int q = (nib | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
            y[l] = d * sc[l / 16 + 2 * k] * q;
        }
    }
}

#endif
