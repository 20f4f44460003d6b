/* AVX-512 GEMV of Q6_K and Q4_K in the exact orders of llama.cpp's x86 kernels for few columns.
 * Included by ts_kernels.c on the avx512 and amx tiers.
 *
 * Q6_K: llama.cpp's vec_dot (ggml_vec_dot_q6_K_q8_K, its AVX2 body, which the reference's AVX-512
 * build runs for one to seven columns).
 *
 * vec_dot keeps eight int32 lanes per super-block: lane l sums, over the two halves j and the
 * four 32-byte code vectors k of each half, scale(j, k, byte group) times the four products of
 * bytes 4l..4l+3 of vector k (maddubs pairs, madd with the int16 scales), minus 32 times the
 * scale-weighted activation sums of 16-element groups 2l and 2l+1 (q8sclsub); then
 * acc[l] = fma(d_y * d_x, float(lane l), acc[l]) per super-block and hsum_float_8 at the end.
 * The lanes are integers, so only their contents must match, not how they are summed: here one
 * zmm holds both halves' vector k (half 0 in lanes 0-7, half 1 in 8-15), maddubs and one
 * vpdpwssd per vector with the scales laid out to match, and the two halves of the zmm are added
 * at the end of the super-block. That is four maddubs, four vpdpwssd and about twelve decode
 * operations per 256 weights (the AVX2 body: eight of each plus twice the decode), enough to
 * keep up with memory. The activations are laid out once per call in the zmm order. */
#ifndef TS_KVEC_H
#define TS_KVEC_H

/* No several-column GEMV for the type on this tier (the GEMV form's fallback). */
static int ts_cols_none(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, int64_t ncols,
                        float *y, size_t ys, int64_t n) {
    (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;
    return 0;
}

#if defined(TS_ISA_AVX512)

#define KV_MAX_SB 64 /* super-blocks of one row prepared at once (rows up to 16384) */

typedef struct {
    int8_t q[KV_MAX_SB][4][64] __attribute__((aligned(64))); /* the codes, in the row kernel's order */
    int16_t bs[KV_MAX_SB][16] __attribute__((aligned(32)));  /* activation sums: per 16 (Q6_K) or 32 (Q4_K) */
    float d[KV_MAX_SB];
} kv_act;

/* A column's nsb super-blocks in the row kernels' order (see kv_prepare_q6_k / kv_prepare_q4_k
 * below), into q[sb][k][64], bs[sb][16] and d[sb]: Q4_K (K4) takes vector k as the 64 codes of
 * sub-blocks (k/2)*4 + k%2 and that plus 2, with the sums per 32; Q6_K as [a[32k..] |
 * a[128+32k..]] with the sums per 16. */
static inline void kv_prepare_into(const ts_block_q8a *a, int64_t nsb, int k4, int8_t (*q)[4][64], int16_t (*bs)[16],
                                   float *d) {
    for (int64_t sb = 0; sb < nsb; sb++) {
        const ts_block_q8a *b = a + 8 * sb;
        for (int k = 0; k < 4; k++) {
            const int s0 = k4 ? (k >> 1) * 4 + (k & 1) : k, s1 = k4 ? s0 + 2 : 4 + k;
            memcpy(q[sb][k], b[s0].qs, 32);
            memcpy(q[sb][k] + 32, b[s1].qs, 32);
        }
        for (int i = 0; i < 8; i++) {
            if (k4) {
                bs[sb][i] = (int16_t)(b[i].s[0] + b[i].s[1]);
            } else {
                bs[sb][2 * i] = b[i].s[0];
                bs[sb][2 * i + 1] = b[i].s[1];
            }
        }
        d[sb] = b[0].d;
    }
}

/* A row's chains for one column: Q6_K's eight lanes, Q4_K's two scalars. */
typedef struct {
    __m256 acc;
    float sacc, macc;
} kv_chain;

/* One super-block of a row, decoded once for every column it meets: the four code vectors, the
 * scales each vector's products take (permuted to match), and the block's f16 scales. */
typedef struct {
    __m512i c[4], scs[4];
    __m256i sc16; /* Q6_K: the sixteen scales, for the offset term */
    __m128i mn;   /* Q4_K: the eight mins */
    float dw, dm;
} kv_sb;

/* Q6_K. The scales of vector k: sc[2k] for bytes 0-15 of half 0, sc[2k+1] for 16-31, sc[8+2k]
 * and sc[9+2k] for half 1 (get_scale_shuffle(4j+k) of vec_dot). */
static inline void kv_sidx_q6_k(__m512i *sidx) {
    for (int k = 0; k < 4; k++) {
        int16_t ix[32];
        for (int i = 0; i < 32; i++) ix[i] = (int16_t)((i >= 16 ? 8 : 0) + 2 * k + ((i >> 3) & 1));
        sidx[k] = _mm512_loadu_si512(ix);
    }
}

static inline __attribute__((always_inline)) void kv_decode_q6_k(const ts_block_q6_k *b, const __m512i *sidx, kv_sb *o) {
    const __m512i m15 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3), m12 = _mm512_set1_epi8(12);
    const __m512i m48 = _mm512_set1_epi8(48), m192 = _mm512_set1_epi8((char)0xC0);
    for (int pf = 0; pf < (int)sizeof *b; pf += 64) __builtin_prefetch((const uint8_t *)b + TS_PREFETCH + pf);
    const __m512i A = _mm512_loadu_si512(b->ql), B = _mm512_loadu_si512(b->ql + 64);
    const __m512i H = _mm512_loadu_si512(b->qh);
    const __m512i q1 = _mm512_shuffle_i64x2(A, B, 0x44); /* ql[0..32] | ql[64..96] */
    const __m512i q2 = _mm512_shuffle_i64x2(A, B, 0xEE); /* ql[32..64] | ql[96..128] */
    o->c[0] = _mm512_or_si512(_mm512_and_si512(q1, m15), _mm512_slli_epi16(_mm512_and_si512(H, m3), 4));
    o->c[1] = _mm512_or_si512(_mm512_and_si512(q2, m15), _mm512_slli_epi16(_mm512_and_si512(H, m12), 2));
    o->c[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q1, 4), m15), _mm512_and_si512(H, m48));
    o->c[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q2, 4), m15), _mm512_srli_epi16(_mm512_and_si512(H, m192), 2));
    o->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    const __m512i sc = _mm512_castsi256_si512(o->sc16);
    for (int k = 0; k < 4; k++) o->scs[k] = _mm512_permutexvar_epi16(sidx[k], sc);
    o->dw = ts_h2f(b->d);
}

/* A decoded Q6_K super-block against one column's prepared codes q, sums bs and scale dy, in
 * vec_dot's order: eight int32 lanes (the two halves of the dpwssd chain added), minus 32 times
 * the scale-weighted sums, then acc = fma(dy * d, float(lane), acc). */
static inline __attribute__((always_inline)) void kv_col_q6_k(const kv_sb *o, const int8_t (*q)[64], const int16_t *bs,
                                                             float dy, kv_chain *ch) {
    __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(o->c[0], _mm512_load_si512(q[0])), o->scs[0]);
    for (int k = 1; k < 4; k++) s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(o->c[k], _mm512_load_si512(q[k])), o->scs[k]);
    const __m256i sub = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_load_si256((const __m256i *)bs), o->sc16), 5);
    const __m256i s8 = _mm256_sub_epi32(_mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1)), sub);
    const float d = dy * o->dw;
    ch->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s8), ch->acc);
}

/* Q4_K, in the order of llama.cpp's repacked GEMV (ggml_gemv_q4_K_8x8_q8_K): per super-block one
 * integer sum of the sub-block scales times the sub-block dot products and one of the mins times
 * the activation sums of 32, each taken into its own float chain, sacc = fma(float(sum), d * d_y,
 * sacc) and macc = fma(float(mins), dmin * d_y, macc), the row's result sacc - macc. The integer
 * sums are exact, so they are computed the fast way: the 128 code bytes are two zmm, whose low and
 * high nibbles are four zmm of codes (sub-blocks 0/2, 1/3, 4/6, 5/7 in the two 256-bit halves)
 * against the activations laid out to match, maddubs, and one vpdpwssd each with the two
 * sub-block scales spread over their halves. Vector k: sub-blocks (k/2)*4 + k%2 and that plus 2. */
static inline void kv_sidx_q4_k(__m512i *sidx) {
    for (int k = 0; k < 4; k++) {
        int16_t ix[32];
        for (int i = 0; i < 32; i++) ix[i] = (int16_t)((k >> 1) * 4 + (k & 1) + (i >= 16 ? 2 : 0));
        sidx[k] = _mm512_loadu_si512(ix);
    }
}

static inline __attribute__((always_inline)) void kv_decode_q4_k(const ts_block_q4_k *b, const __m512i *sidx, kv_sb *o) {
    const __m512i m15 = _mm512_set1_epi8(15);
    for (int pf = 0; pf < (int)sizeof *b; pf += 64) __builtin_prefetch((const uint8_t *)b + TS_PREFETCH + pf);
    uint32_t A, B, C;
    memcpy(&A, b->scales, 4);
    memcpy(&B, b->scales + 4, 4);
    memcpy(&C, b->scales + 8, 4);
    const uint64_t scb = (uint64_t)(A & 0x3f3f3f3fu) | (uint64_t)((C & 0x0f0f0f0fu) | ((A >> 2) & 0x30303030u)) << 32;
    const uint64_t mnb = (uint64_t)(B & 0x3f3f3f3fu) | (uint64_t)(((C >> 4) & 0x0f0f0f0fu) | ((B >> 2) & 0x30303030u)) << 32;
    const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)scb)));
    o->mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mnb));
    const __m512i q0 = _mm512_loadu_si512(b->qs), q1 = _mm512_loadu_si512(b->qs + 64);
    o->c[0] = _mm512_and_si512(q0, m15);
    o->c[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m15);
    o->c[2] = _mm512_and_si512(q1, m15);
    o->c[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m15);
    for (int k = 0; k < 4; k++) o->scs[k] = _mm512_permutexvar_epi16(sidx[k], sc);
    o->dw = ts_h2f(b->d);
    o->dm = ts_h2f(b->dmin);
}

static inline __attribute__((always_inline)) void kv_col_q4_k(const kv_sb *o, const int8_t (*q)[64], const int16_t *bs,
                                                             float dy, kv_chain *ch) {
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < 4; k++) s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(o->c[k], _mm512_load_si512(q[k])), o->scs[k]);
    const __m128i m4 = _mm_madd_epi16(o->mn, _mm_load_si128((const __m128i *)bs));
    const int32_t is = _mm512_reduce_add_epi32(s), im = ts_hsum_i32x4(m4);
    ch->sacc = __builtin_fmaf((float)is, o->dw * dy, ch->sacc);
    ch->macc = __builtin_fmaf((float)im, o->dm * dy, ch->macc);
}

#define KV_FIN_Q6_K(ch) ts_acc_sum((ch).acc)
#define KV_FIN_Q4_K(ch) ((ch).sacc - (ch).macc)

/* One row of nsb super-blocks against the column prepared in p (the decode GEMV). */
#define KV_ROW(T, FIN)                                                                               \
    static inline float kv_row_##T(const ts_block_##T *x, int64_t nsb, const kv_act *p) {            \
        __m512i sidx[4];                                                                             \
        kv_sidx_##T(sidx);                                                                           \
        kv_chain ch = {_mm256_setzero_ps(), 0.0f, 0.0f};                                             \
        for (int64_t sb = 0; sb < nsb; sb++) {                                                       \
            kv_sb o;                                                                                 \
            kv_decode_##T(x + sb, sidx, &o);                                                         \
            kv_col_##T(&o, p->q[sb], p->bs[sb], p->d[sb], &ch);                                      \
        }                                                                                            \
        return FIN(ch);                                                                              \
    }
KV_ROW(q6_k, KV_FIN_Q6_K)
KV_ROW(q4_k, KV_FIN_Q4_K)

static void kv_prepare_q6_k(const ts_block_q8a *a, int64_t nsb, kv_act *p) { kv_prepare_into(a, nsb, 0, p->q, p->bs, p->d); }
static void kv_prepare_q4_k(const ts_block_q8a *a, int64_t nsb, kv_act *p) { kv_prepare_into(a, nsb, 1, p->q, p->bs, p->d); }

/* ---- Several columns: a batched decode step ----------------------------------------------
 * Each super-block of a row is decoded once (codes and the permuted scales) and then taken
 * against every column exactly as kv_row_* takes it against one (the same integer sums, the
 * same float chain per column), so each column gets its one-column bits. The columns'
 * activations are prepared KVM_SB super-blocks at a time (5.7 KiB per column): a row of up to
 * 5120 elements (Qwen2.5 0.5B's FFN down projection, 4864) is prepared once per call, where
 * eight super-blocks at a time prepared each column again for every block of rows (measured:
 * that FFN down projection 16 % faster at four columns, bench --parallel 4 --profile). Longer
 * rows keep their chains between passes in blocks of KVM_RB rows. About 55 KiB of stack. */
#define KVM_MAXC 8
#define KVM_SB 20
#define KVM_RB 16
typedef struct {
    int8_t q[KVM_SB][4][64] __attribute__((aligned(64)));
    int16_t bs[KVM_SB][16] __attribute__((aligned(32)));
    float d[KVM_SB];
} kvm_col;

/* kv_prepare_* into a kvm_col (nsb <= KVM_SB). */
static void kvm_prepare_q6_k(const ts_block_q8a *a, int64_t nsb, kvm_col *p) { kv_prepare_into(a, nsb, 0, p->q, p->bs, p->d); }
static void kvm_prepare_q4_k(const ts_block_q8a *a, int64_t nsb, kvm_col *p) { kv_prepare_into(a, nsb, 1, p->q, p->bs, p->d); }

/* One row's nsb super-blocks against nc prepared columns: each super-block decoded once, then
 * taken to every column as kv_row_* takes it to one. */
#define KVM_ROW(T)                                                                                   \
    static inline __attribute__((always_inline)) void kvm_row_##T(const ts_block_##T *x, int64_t nsb, \
                                                                 const kvm_col *p, int nc, kv_chain *ch) { \
        __m512i sidx[4];                                                                             \
        kv_sidx_##T(sidx);                                                                           \
        for (int64_t sb = 0; sb < nsb; sb++) {                                                       \
            kv_sb o;                                                                                 \
            kv_decode_##T(x + sb, sidx, &o);                                                         \
            for (int c = 0; c < nc; c++) kv_col_##T(&o, p[c].q[sb], p[c].bs[sb], p[c].d[sb], ch + c);  \
        }                                                                                            \
    }
KVM_ROW(q6_k)
KVM_ROW(q4_k)

/* Two to KVM_MAXC - 1 columns: rows in blocks, activations in passes of KVM_SB super-blocks. */
#define KVM_GEMV(T, FIN)                                                                                \
    static inline __attribute__((always_inline)) void kvm_gemv_nc_##T(                                 \
        const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, int nc, float *y,    \
        size_t ys, int64_t n) {                                                                         \
        const int64_t nsb_all = n / TS_QK_K;                                                            \
        kvm_col p[KVM_MAXC];                                                                            \
        kv_chain keep[KVM_RB][KVM_MAXC];                                                               \
        const int64_t rb = nsb_all <= KVM_SB ? nrows : KVM_RB;                                          \
        for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb) {                                                 \
            const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;                                     \
            for (int64_t s0 = 0; s0 < nsb_all; s0 += KVM_SB) {                                          \
                const int64_t nsb = nsb_all - s0 < KVM_SB ? nsb_all - s0 : KVM_SB;                      \
                const int first = s0 == 0, last = s0 + nsb == nsb_all;                                  \
                for (int c = 0; c < nc; c++)                                                            \
                    kvm_prepare_##T((const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * s0, nsb, p + c); \
                for (int64_t r = rb0; r < r1; r++) {                                                    \
                    kv_chain *ch = keep[(r - rb0) % KVM_RB];                                           \
                    if (first)                                                                          \
                        for (int c = 0; c < nc; c++) ch[c] = (kv_chain){_mm256_setzero_ps(), 0.0f, 0.0f}; \
                    kvm_row_##T((const ts_block_##T *)((const uint8_t *)w + r * ws) + s0, nsb, p, nc, ch);  \
                    if (last)                                                                           \
                        for (int c = 0; c < nc; c++) y[c * ys + r] = FIN(ch[c]);                        \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }
KVM_GEMV(q6_k, KV_FIN_Q6_K)
KVM_GEMV(q4_k, KV_FIN_Q4_K)

/* Whether the product was done here: one column as llama.cpp's vec_dot (Q6_K) or repacked
 * GEMV (Q4_K), rows up to KV_MAX_SB super-blocks; two to seven columns each in that same
 * one-column order, any row length (kv_cols_*: also the GEMV form's groups; the plain entry
 * kv_gemv_* takes them only below MAXC columns, since from four on Q4_K's GEMM per-64 order
 * applies and from eight the tiled K-quant GEMM). */
#define KV_GEMV(T, MAXC)                                                                               \
    static int kv_cols_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,   \
                           int64_t ncols, float *y, size_t ys, int64_t n) {                            \
        const int64_t nsb = n / TS_QK_K;                                                               \
        switch (ncols) {                                                                               \
        case 1: break;                                                                                 \
        case 2: kvm_gemv_nc_##T(w, ws, nrows, a, as, 2, y, ys, n); return 1;                           \
        case 3: kvm_gemv_nc_##T(w, ws, nrows, a, as, 3, y, ys, n); return 1;                           \
        case 4: kvm_gemv_nc_##T(w, ws, nrows, a, as, 4, y, ys, n); return 1;                           \
        case 5: kvm_gemv_nc_##T(w, ws, nrows, a, as, 5, y, ys, n); return 1;                           \
        case 6: kvm_gemv_nc_##T(w, ws, nrows, a, as, 6, y, ys, n); return 1;                           \
        case 7: kvm_gemv_nc_##T(w, ws, nrows, a, as, 7, y, ys, n); return 1;                           \
        default: return 0;                                                                             \
        }                                                                                              \
        if (nsb > KV_MAX_SB) return 0;                                                                 \
        kv_act p;                                                                                      \
        kv_prepare_##T(a, nsb, &p);                                                                    \
        for (int64_t r = 0; r < nrows; r++)                                                            \
            y[r] = kv_row_##T((const ts_block_##T *)((const uint8_t *)w + r * ws), nsb, &p);            \
        return 1;                                                                                      \
    }                                                                                                  \
    static int kv_gemv_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as,   \
                           int64_t ncols, float *y, size_t ys, int64_t n) {                            \
        return ncols < (MAXC) && kv_cols_##T(w, ws, nrows, a, as, ncols, y, ys, n);                    \
    }
KV_GEMV(q6_k, 8)
KV_GEMV(q4_k, 4)
#define TS_K_GEMV(T, w, ws, nrows, a, as, ncols, y, ys, n) kv_gemv_##T(w, ws, nrows, a, as, ncols, y, ys, n)
/* The several-column GEMV of the GEMV form: columns per call (0: none), and the function. */
#define TS_K_COLS_MAX(T) TS_K_COLS_MAX_##T
#define TS_K_COLS_MAX_q4_k (KVM_MAXC - 1)
#define TS_K_COLS_MAX_q6_k (KVM_MAXC - 1)
#define TS_K_COLS_MAX_q2_k 0
#define TS_K_COLS_MAX_q3_k 0
#define TS_K_COLS_MAX_q5_k 0
#define TS_K_COLS_FN(T) TS_K_COLS_FN_##T
#define TS_K_COLS_FN_q4_k kv_cols_q4_k
#define TS_K_COLS_FN_q6_k kv_cols_q6_k
#define TS_K_COLS_FN_q2_k ts_cols_none
#define TS_K_COLS_FN_q3_k ts_cols_none
#define TS_K_COLS_FN_q5_k ts_cols_none
#define KV_NONE(T)                                                                                   \
    static int kv_gemv_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, \
                           int64_t ncols, float *y, size_t ys, int64_t n) {                          \
        (void)w; (void)ws; (void)nrows; (void)a; (void)as; (void)ncols; (void)y; (void)ys; (void)n;  \
        return 0;                                                                                    \
    }
KV_NONE(q2_k)
KV_NONE(q3_k)
KV_NONE(q5_k)
#else
#define TS_K_GEMV(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#define TS_K_COLS_MAX(T) 0
#define TS_K_COLS_FN(T) ts_cols_none
#endif

#endif
