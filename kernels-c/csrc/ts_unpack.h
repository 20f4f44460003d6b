/* ts_unpack.h — the unpackers: one block of each weight type into int8 codes, per-16 scales and
 * offsets.
 * Part of ts_kernels.c (included once, after ts_simd.h and the tier's TS_FN / TS_COLS settings);
 * not a standalone header. */
#ifndef TS_UNPACK_H
#define TS_UNPACK_H

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
/* The K-quant unpacker's signature (kunpack_<type>), taken by the generic K-quant kernels. */
typedef void (*ts_kunpack_fn)(const void *restrict blk, int8_t *restrict w8, int16_t *restrict sc16,
                              int16_t *restrict mn16, float *d, float *dmin);

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

#endif /* TS_UNPACK_H */
