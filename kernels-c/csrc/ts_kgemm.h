/* The K-quant prefill GEMM (8 or more columns) of the x86 AVX-512 tiers, in llama.cpp's x86
 * orders. Included by ts_kernels.c after the unpackers, when TS_ISA_AVX512 is defined (the
 * avx512 and amx tiers).
 *
 * Sixteen weight rows are unpacked once per super-block range into the VNNI order (64 bytes hold
 * four consecutive codes of each of the 16 rows) and reused for every tile of up to 16 columns.
 * Per sub-block of SUB elements (16, or 32 where the scales are per 32) one tile product gives
 * the exact int32 dot products of the 16 rows with the 16 columns: on the amx tier an AMX tile
 * product, on the avx512 tier SUB/4 vpdpbusd per column (the 16 rows' codes times the column's
 * four activations, broadcast), each row's dot in its own lane. These are multiplied by the rows'
 * integer sub-block scales and summed in int32 per super-block; then llama.cpp's float order
 * for the type (ORDER) scales them, with the rows in the sixteen float lanes, so that a result
 * does not depend on the tiling or the thread count.
 *
 * The AMX engine packs the offset types (Q3_K, Q6_K: SAME) as signed codes (code - OFF) for its
 * signed-by-signed product; vpdpbusd takes unsigned codes, so the avx512 engine keeps them
 * unsigned and adds the offset term -OFF * sum_j sc_j * s_j through the same activation 16-sums
 * as the mins: the super-block's integer total, the only thing llama.cpp's tiled order scales,
 * is the same. The other types keep unsigned codes and add their min term
 * dmin * da * sum_j min_j * s_j, the sums of 16 activations s_j taken two at a time by an int16
 * pair product (the mins packed as pairs to match).
 *
 * The avx2 tier has the same tiles with 8 rows and 8 columns: per column and four codes one
 * vpmaddubsw (the 8 rows' codes times the column's four activations, broadcast) gives each row's
 * two pair sums in int16; these add up in int16 over as many groups of four as cannot overflow
 * (KG_GROUP: twice the type's largest code times 127 per lane and group) and one vpmaddwd with
 * the rows' sub-block scales (each in both int16 halves of its row's lane) turns them into each
 * row's scaled int32 dot product: the same integers as the AVX-512 engines, then the same float
 * order, eight rows to a vector. */
#ifndef TS_KGEMM_H
#define TS_KGEMM_H

#if defined(TS_ISA_AVX512) || defined(TS_ISA_AVX2)
#define KG_MIN_COLS 8 /* fewer columns take vec_dot's order (the GEMV kernels) */
#define KG_KSB 8      /* super-blocks of one row tile packed at a time */
#endif

#if defined(TS_ISA_AVX512)
#define KG_R 16 /* weight rows per tile (the lanes of one vector) */
#define KG_C 16 /* activation columns per tile */

/* Writes the 16-row output vectors of nc columns, rows past nr untouched. */
static inline void kg_store(float *y, size_t ys, const __m512 *v, int nc, int nr) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(y + c * ys, m, v[c]);
}

/* The output vectors of nc columns as a chain's start (rows past nr zero). */
static inline void kg_load(const float *y, size_t ys, __m512 *v, int nc, int nr) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++) v[c] = _mm512_maskz_loadu_ps(m, y + c * ys);
}

/* The vpdpbusd tile product of one column: start plus the 16 rows' dot products of nk*4 unsigned
 * codes (wv[kk]: codes 4kk..4kk+3 of each row, the VNNI order) with the column's activations
 * qc, four at a time broadcast to every lane. */
static inline __attribute__((always_inline)) __m512i kg_vnni_dot(const __m512i *wv, int nk, const uint8_t *qc,
                                                                __m512i start) {
    for (int kk = 0; kk < nk; kk++) {
        int32_t a4;
        memcpy(&a4, qc + 4 * kk, 4);
        start = _mm512_dpbusd_epi32(start, wv[kk], _mm512_set1_epi32(a4));
    }
    return start;
}

#if defined(TS_ISA_AMX)
#define KG_SIGNED 1 /* offset codes packed signed */
#define KG_BEGIN() amx_begin()
#define KG_DONE() amx_done()
/* dot[c*16 + r]: sub-block product of row r with column c, from the AMX tiles. */
#define KG_PRODUCT(SUB, SAME, q, as, nc, wb, stage, dot)                                           \
    do {                                                                                           \
        _tile_zero(TS_AMX_C);                                                                      \
        if ((SUB) == 16) {                                                                         \
            AMX_LOAD_ACT(TS_AMX_A16, q, as, nc, 16, stage);                                        \
            _tile_loadd(TS_AMX_B16, wb, 64);                                                       \
            if (SAME)                                                                              \
                _tile_dpbssd(TS_AMX_C, TS_AMX_A16, TS_AMX_B16);                                    \
            else                                                                                   \
                _tile_dpbsud(TS_AMX_C, TS_AMX_A16, TS_AMX_B16);                                    \
        } else {                                                                                   \
            AMX_LOAD_ACT(TS_AMX_A, q, as, nc, 32, stage);                                          \
            _tile_loadd(TS_AMX_B, wb, 64);                                                         \
            if (SAME)                                                                              \
                _tile_dpbssd(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                        \
            else                                                                                   \
                _tile_dpbsud(TS_AMX_C, TS_AMX_A, TS_AMX_B);                                        \
        }                                                                                          \
        _tile_stored(TS_AMX_C, dot, 64);                                                           \
    } while (0)
/* isum[c] += sv * (the sub-block product of column c), through the stored product tile. */
#define KG_SCALED_PRODUCT(SUB, SAME, q, as, nc, wb, stage, dot, sv, isum)                          \
    do {                                                                                           \
        KG_PRODUCT(SUB, SAME, q, as, nc, wb, stage, dot);                                          \
        for (int c_ = 0; c_ < (nc); c_++)                                                          \
            (isum)[c_] = _mm512_add_epi32((isum)[c_], _mm512_mullo_epi32(_mm512_load_si512((dot) + 16 * c_), (sv))); \
    } while (0)
#else
#define KG_SIGNED 0
#define KG_BEGIN() ((void)0)
#define KG_DONE() ((void)0)
/* The same from vpdpbusd (kg_vnni_dot per column), the rows' codes unsigned. */
static inline __attribute__((always_inline)) void kg_vnni_product(int sub, const uint8_t *q, size_t as, int nc,
                                                                 const int8_t *wb, int32_t *dot) {
    __m512i wv[8];
    for (int kk = 0; kk < sub / 4; kk++) wv[kk] = _mm512_load_si512(wb + 64 * kk);
    for (int c = 0; c < nc; c++)
        _mm512_store_si512(dot + 16 * c, kg_vnni_dot(wv, sub / 4, q + c * as, _mm512_setzero_si512()));
}
/* isum[c] += sv * (the sub-block product of column c), the product never leaving registers. */
static inline __attribute__((always_inline)) void kg_vnni_scaled(int sub, const uint8_t *q, size_t as, int nc,
                                                                const int8_t *wb, __m512i sv, __m512i *isum) {
    __m512i wv[8];
    for (int kk = 0; kk < sub / 4; kk++) wv[kk] = _mm512_load_si512(wb + 64 * kk);
    for (int c = 0; c < nc; c++)
        isum[c] = _mm512_add_epi32(
            isum[c], _mm512_mullo_epi32(kg_vnni_dot(wv, sub / 4, q + c * as, _mm512_setzero_si512()), sv));
}
#define KG_PRODUCT(SUB, SAME, q, as, nc, wb, stage, dot)                                           \
    do {                                                                                           \
        (void)(stage);                                                                             \
        if ((nc) == 16)                                                                            \
            kg_vnni_product((SUB), (q), (as), 16, (wb), (dot));                                    \
        else                                                                                       \
            kg_vnni_product((SUB), (q), (as), (nc), (wb), (dot));                                  \
    } while (0)
#define KG_SCALED_PRODUCT(SUB, SAME, q, as, nc, wb, stage, dot, sv, isum)                          \
    do {                                                                                           \
        (void)(stage);                                                                             \
        (void)(dot);                                                                               \
        if ((nc) == 16)                                                                            \
            kg_vnni_scaled((SUB), (q), (as), 16, (wb), (sv), (isum));                              \
        else                                                                                       \
            kg_vnni_scaled((SUB), (q), (as), (nc), (wb), (sv), (isum));                            \
    } while (0)
#endif

/* The integer min term of super-block b for one column over the activation 16-sum pairs
 * [jp0, jp1) (0..8: the whole super-block; 2g..2g+2: sub-block pair g): the rows' negated mins
 * (mnp, int16 pairs) times the column's sums. */
static inline __m512i kg_mins(const int32_t *mnp, const ts_block_q8a *col, int b, int jp0, int jp1) {
    __m512i m = _mm512_setzero_si512();
    for (int jp = jp0; jp < jp1; jp++) {
        int32_t sp;
        memcpy(&sp, col[jp].s, 4);
        m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(mnp + (b * 8 + jp) * 16), _mm512_set1_epi32(sp));
    }
    return m;
}

/* The vector vocabulary of the tile code below (16 rows per vector). */
typedef __m512 kg_vf;
typedef __m512i kg_vi;
#define KG_FZERO() _mm512_setzero_ps()
#define KG_IZERO() _mm512_setzero_si512()
#define KG_FLOAD(p) _mm512_loadu_ps(p)
#define KG_FSTORE(p, v) _mm512_storeu_ps((p), (v))
#define KG_CVT(v) _mm512_cvtepi32_ps(v)
#define KG_FMUL(a, b) _mm512_mul_ps((a), (b))
#define KG_FADD(a, b) _mm512_add_ps((a), (b))
#define KG_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define KG_FSET1(x) _mm512_set1_ps(x)
#define KG_IADD(a, b) _mm512_add_epi32((a), (b))
#define KG_SCALE_ENC(sc) ((int32_t)(sc)) /* the row's sub-block scale as the tile product takes it */
#define KG_GROUP(SUB, MAXCODE) ((SUB) / 4)
/* isum[c] += (the rows' scaled sub-block products of column c) for nc columns. */
#define KG_SUB_PRODUCTS(SUB, SAME, MAXCODE, q, as, nc, wb, svp, isum)                               \
    do {                                                                                           \
        const __m512i sv_ = _mm512_loadu_si512(svp);                                               \
        KG_SCALED_PRODUCT(SUB, SAME, q, as, nc, wb, kg_stage, kg_dot, sv_, isum);                  \
    } while (0)
/* The tile's product buffers (the AMX engine's activation staging and stored product tile). */
#define KG_TILE_LOCALS(nc)                                                                         \
    int32_t kg_dot[256] __attribute__((aligned(64)));                                              \
    int8_t kg_stage[16 * 32] __attribute__((aligned(64)));                                         \
    if ((nc) < 16) memset(kg_stage, 0, sizeof kg_stage)
#define KG_LOAD_Y(y, ys, v, nc, nr) kg_load((y), (ys), (v), (nc), (nr))
#define KG_STORE_Y(y, ys, v, nc, nr) kg_store((y), (ys), (v), (nc), (nr))
#define KG_MINS(mnp, col, b, jp0, jp1) kg_mins((mnp), (col), (b), (jp0), (jp1))

#elif defined(TS_ISA_AVX2)
#define KG_R 8 /* weight rows per tile (the lanes of one vector) */
#define KG_C 8 /* activation columns per tile */
#define KG_SIGNED 0
#define KG_BEGIN() ((void)0)
#define KG_DONE() ((void)0)

/* Lanes [0, nr) set. */
static inline __m256i kg2_rows(int nr) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline void kg2_store(float *y, size_t ys, const __m256 *v, int nc, int nr) {
    if (nr == 8) {
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(y + c * ys, v[c]);
        return;
    }
    const __m256i m = kg2_rows(nr);
    for (int c = 0; c < nc; c++) _mm256_maskstore_ps(y + c * ys, m, v[c]);
}

static inline void kg2_load(const float *y, size_t ys, __m256 *v, int nc, int nr) {
    const __m256i m = kg2_rows(nr);
    for (int c = 0; c < nc; c++) v[c] = _mm256_maskload_ps(y + c * ys, m);
}

/* The 8 rows' scaled dot products of nk*4 codes (wv[kk]: codes 4kk..4kk+3 of each row) with the
 * column's activations qc: pair sums in int16 over groups of grp, each group scaled by sv (the
 * rows' scales as int16 pairs) into int32. */
static inline __attribute__((always_inline)) __m256i kg2_dot(const __m256i *wv, int nk, int grp, const uint8_t *qc,
                                                             __m256i sv) {
    __m256i tot = _mm256_setzero_si256();
    for (int k0 = 0; k0 < nk; k0 += grp) {
        __m256i s16 = _mm256_setzero_si256();
        for (int kk = k0; kk < k0 + grp && kk < nk; kk++) {
            int32_t a4;
            memcpy(&a4, qc + 4 * kk, 4);
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(wv[kk], _mm256_set1_epi32(a4)));
        }
        tot = _mm256_add_epi32(tot, _mm256_madd_epi16(s16, sv));
    }
    return tot;
}

static inline __m256i kg2_mins(const int32_t *mnp, const ts_block_q8a *col, int b, int jp0, int jp1) {
    __m256i m = _mm256_setzero_si256();
    for (int jp = jp0; jp < jp1; jp++) {
        int32_t sp;
        memcpy(&sp, col[jp].s, 4);
        m = _mm256_add_epi32(m, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(mnp + (b * 8 + jp) * 8)),
                                                  _mm256_set1_epi32(sp)));
    }
    return m;
}

typedef __m256 kg_vf;
typedef __m256i kg_vi;
#define KG_FZERO() _mm256_setzero_ps()
#define KG_IZERO() _mm256_setzero_si256()
#define KG_FLOAD(p) _mm256_loadu_ps(p)
#define KG_FSTORE(p, v) _mm256_storeu_ps((p), (v))
#define KG_CVT(v) _mm256_cvtepi32_ps(v)
#define KG_FMUL(a, b) _mm256_mul_ps((a), (b))
#define KG_FADD(a, b) _mm256_add_ps((a), (b))
#define KG_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define KG_FSET1(x) _mm256_set1_ps(x)
#define KG_IADD(a, b) _mm256_add_epi32((a), (b))
#define KG_SCALE_ENC(sc) ((int32_t)((uint32_t)(uint16_t)(sc) | ((uint32_t)(uint16_t)(sc) << 16)))
#define KG_GROUP(SUB, MAXCODE) ((SUB) / 4 < 32767 / (2 * 127 * (MAXCODE)) ? (SUB) / 4 : 32767 / (2 * 127 * (MAXCODE)))
#define KG_SUB_PRODUCTS(SUB, SAME, MAXCODE, q, as, nc, wb, svp, isum)                               \
    do {                                                                                           \
        __m256i wv_[8];                                                                            \
        for (int kk_ = 0; kk_ < (SUB) / 4; kk_++) wv_[kk_] = _mm256_load_si256((const __m256i *)((wb) + 32 * kk_)); \
        const __m256i sv_ = _mm256_loadu_si256((const __m256i *)(svp));                            \
        for (int c_ = 0; c_ < (nc); c_++)                                                          \
            (isum)[c_] = _mm256_add_epi32((isum)[c_], kg2_dot(wv_, (SUB) / 4, KG_GROUP(SUB, MAXCODE), (q) + c_ * (as), sv_)); \
    } while (0)
#define KG_TILE_LOCALS(nc) (void)(nc)
#define KG_LOAD_Y(y, ys, v, nc, nr) kg2_load((y), (ys), (v), (nc), (nr))
#define KG_STORE_Y(y, ys, v, nc, nr) kg2_store((y), (ys), (v), (nc), (nr))
#define KG_MINS(mnp, col, b, jp0, jp1) kg2_mins((mnp), (col), (b), (jp0), (jp1))
#endif

#if defined(TS_ISA_AVX512) || defined(TS_ISA_AVX2)
/* How a super-block's integer sums are scaled (ORDER):
 *   KG_TILED:  llama.cpp's tiled K-quant GEMM (the K_LANES types): r = float(total)*d,
 *                 r = fma(dmin, mins, r), acc = fma(r, da, acc);
 *   KG_REPACK: its repacked 8x8 kernels (Q4_K, K_REPACK): two chains, the scaled sums and the
 *                 min terms, fed per 64 elements for the columns of whole groups of four and per
 *                 super-block for the rest, added at the end. A row tile's min chains wait in
 *                 `ms` between super-block ranges, so the columns go in groups of KG_CG. */
#define KG_TILED 1
#define KG_REPACK 2
#define KG_CG 64 /* columns per group (KG_REPACK) */
/* Packs the weight rows [0, nr) (row r at w + r*ws) of super-blocks s0..s0+nsb into the tile
 * layouts: codes in the VNNI order (bp), encoded sub-block scales (scv), min pairs (mnp), d and
 * dmin per row (dv, dmv); rows past nr are zero. The type's parameters (unpack, bsize, same,
 * off, sub) are constants at every call. */
static inline __attribute__((always_inline)) void kg_pack(ts_kunpack_fn unpack, size_t bsize, int same, int off,
                                                          int sub, const void *w, size_t ws, int nr, int64_t s0,
                                                          int nsb, int8_t *bp, int32_t *scv, int32_t *mnp, float *dv,
                                                          float *dmv) {
    (void)off;
    for (int r = 0; r < KG_R; r++) {
        const uint8_t *wr = (const uint8_t *)w + (r < nr ? r : 0) * ws;
        for (int b = 0; b < nsb; b++) {
            int8_t w8[TS_QK_K];
            int16_t sc16[16], mn16[16];
            float d = 0.0f, dmin = 0.0f;
            if (r < nr) {
                unpack(wr + (size_t)(s0 + b) * bsize, w8, sc16, mn16, &d, &dmin);
                if (same && KG_SIGNED) w8_sub(w8, TS_QK_K, off);
            } else {
                memset(w8, 0, sizeof w8);
                memset(sc16, 0, sizeof sc16);
                memset(mn16, 0, sizeof mn16);
            }
            dv[b * KG_R + r] = d;
            dmv[b * KG_R + r] = dmin;
            for (int j = 0; j < TS_QK_K / sub; j++) {
                scv[(b * 16 + j) * KG_R + r] = KG_SCALE_ENC(sc16[j * sub / 16]);
                for (int kk = 0; kk < sub / 4; kk++)
                    memcpy(bp + (b * TS_QK_K + j * sub) * KG_R + kk * 4 * KG_R + r * 4, w8 + j * sub + 4 * kk, 4);
            }
            for (int jp = 0; jp < 8; jp++)
                mnp[(b * 8 + jp) * KG_R + r] =
                    (int32_t)((uint32_t)(uint16_t)mn16[2 * jp] | ((uint32_t)(uint16_t)mn16[2 * jp + 1] << 16));
        }
    }
}

/* One tile: the packed rows (nr of them) times nc activation columns over the packed super-blocks,
 * continuing the float chains in y (and ms, KG_REPACK) unless first, adding the min chains if last.
 * per64: the columns that take llama.cpp's per-64 order (KG_REPACK). */
static inline __attribute__((always_inline)) void kg_tile(int sub, int same, int maxcode, int order,
                                                          const int8_t *bp, const int32_t *scv, const int32_t *mnp,
                                                          const float *dv, const float *dmv, int nr, int64_t s0,
                                                          int nsb, const uint8_t *a, size_t as, int nc, float *y,
                                                          size_t ys, int first, int last, unsigned per64, float *ms) {
    (void)maxcode;
    kg_vf acc[KG_C], macc[KG_C]; /* macc: the min chains (KG_REPACK) */
    KG_TILE_LOCALS(nc);
    for (int c = 0; c < KG_C; c++) acc[c] = macc[c] = KG_FZERO();
    if (!first) KG_LOAD_Y(y, ys, acc, nc, nr); /* one chain through every super-block range */
    if (order == KG_REPACK && !first)
        for (int c = 0; c < nc; c++) macc[c] = KG_FLOAD(ms + KG_R * c);
    for (int b = 0; b < nsb; b++) {
        const uint8_t *ab = a + (s0 + b) * 8 * sizeof(ts_block_q8a);
        kg_vi isum[KG_C];
        for (int c = 0; c < KG_C; c++) isum[c] = KG_IZERO();
        for (int j = 0; j < TS_QK_K / sub; j++) {
            const uint8_t *q = (const uint8_t *)((const ts_block_q8a *)ab + j * sub / 32)->qs + (j * sub) % 32;
            const int8_t *wb = bp + (b * TS_QK_K + j * sub) * KG_R;
            KG_SUB_PRODUCTS(sub, same, maxcode, q, as, nc, wb, scv + (b * 16 + j) * KG_R, isum);
            if (order == KG_REPACK && (j & 1) && per64) {
                /* The columns in whole groups of four: one integer sum per 64 elements. */
                const kg_vf dvv = KG_FLOAD(dv + KG_R * b), dmv_ = KG_FLOAD(dmv + KG_R * b);
                for (int c = 0; c < nc; c++) {
                    if (!(per64 >> c & 1)) continue;
                    const ts_block_q8a *col = (const ts_block_q8a *)(ab + c * as);
                    const kg_vf dc = KG_FSET1(col->d);
                    acc[c] = KG_FMA(KG_CVT(isum[c]), KG_FMUL(dvv, dc), acc[c]);
                    macc[c] = KG_FMA(KG_CVT(KG_MINS(mnp, col, b, j - 1, j + 1)), KG_FMUL(dmv_, dc), macc[c]);
                    isum[c] = KG_IZERO();
                }
            }
        }
        const kg_vf dvv = KG_FLOAD(dv + KG_R * b);
        for (int c = 0; c < nc; c++) {
            const ts_block_q8a *col = (const ts_block_q8a *)(ab + c * as);
            const kg_vf dc = KG_FSET1(col->d);
            if (order == KG_REPACK) {
                /* The other columns: one integer sum per super-block. */
                if (per64 >> c & 1) continue;
                acc[c] = KG_FMA(KG_CVT(isum[c]), KG_FMUL(dvv, dc), acc[c]);
                macc[c] = KG_FMA(KG_CVT(KG_MINS(mnp, col, b, 0, 8)), KG_FMUL(KG_FLOAD(dmv + KG_R * b), dc), macc[c]);
                continue;
            }
            /* KG_TILED: r = float(total)*d, r = fma(dmin, mins, r), acc = fma(r, da, acc);
             * unsigned offset codes: the offset enters with the mins' pair sums. */
            const kg_vi tot = same && !KG_SIGNED ? KG_IADD(isum[c], KG_MINS(mnp, col, b, 0, 8)) : isum[c];
            kg_vf r = KG_FMUL(KG_CVT(tot), dvv);
            if (!same) r = KG_FMA(KG_FLOAD(dmv + KG_R * b), KG_CVT(KG_MINS(mnp, col, b, 0, 8)), r);
            acc[c] = KG_FMA(r, dc, acc[c]);
        }
    }
    if (order == KG_REPACK) {
        for (int c = 0; c < nc; c++) {
            if (last)
                acc[c] = KG_FADD(acc[c], macc[c]);
            else
                KG_FSTORE(ms + KG_R * c, macc[c]);
        }
    }
    KG_STORE_Y(y, ys, acc, nc, nr);
}

/* The K-quant tile GEMM: y[c*ys + r] = row r of w times activation column c, for ncols >= 8
 * (returns 0 without work for fewer: the GEMV kernels take those). Rows go in tiles of KG_R,
 * super-blocks in ranges of KG_KSB packed once and reused for every tile of KG_C columns. */
static inline __attribute__((always_inline)) int kg_gemm(ts_kunpack_fn unpack, size_t bsize, int same, int off,
                                                         int sub, int maxcode, int order, const void *w, size_t ws,
                                                         int64_t nrows, const ts_block_q8a *a, size_t as,
                                                         int64_t ncols, float *y, size_t ys, int64_t n) {
    if (ncols < KG_MIN_COLS) return 0;
    int8_t bp[KG_KSB * TS_QK_K * KG_R] __attribute__((aligned(64)));
    int32_t scv[KG_KSB * 16 * KG_R] __attribute__((aligned(64)));
    int32_t mnp[KG_KSB * 8 * KG_R] __attribute__((aligned(64)));
    float dv[KG_KSB * KG_R] __attribute__((aligned(64)));
    float dmv[KG_KSB * KG_R] __attribute__((aligned(64)));
    float ms[KG_CG * KG_R] __attribute__((aligned(64)));
    const int64_t nsb_all = n / TS_QK_K;
    /* KG_REPACK: llama.cpp's GEMM takes the columns of whole groups of four. */
    const int64_t ngemm = ncols - ncols % 4;
    const int64_t cg = order == KG_REPACK && nsb_all > KG_KSB ? KG_CG : ncols;
    KG_BEGIN();
    for (int64_t g0 = 0; g0 < ncols; g0 += cg) {
        const int64_t g1 = ncols - g0 < cg ? ncols : g0 + cg;
        for (int64_t r0 = 0; r0 < nrows; r0 += KG_R) {
            const int nr = (int)(nrows - r0 < KG_R ? nrows - r0 : KG_R);
            for (int64_t s0 = 0; s0 < nsb_all; s0 += KG_KSB) {
                const int nsb = (int)(nsb_all - s0 < KG_KSB ? nsb_all - s0 : KG_KSB);
                kg_pack(unpack, bsize, same, off, sub, (const uint8_t *)w + r0 * ws, ws, nr, s0, nsb, bp, scv, mnp,
                        dv, dmv);
                for (int64_t c0 = g0; c0 < g1; c0 += KG_C) {
                    const int nc = (int)(g1 - c0 < KG_C ? g1 - c0 : KG_C);
                    const unsigned per64 = c0 >= ngemm           ? 0u
                                           : c0 + nc <= ngemm ? (1u << nc) - 1
                                                              : (1u << (ngemm - c0)) - 1;
                    const uint8_t *ac = (const uint8_t *)a + c0 * as;
                    float *yt = y + c0 * ys + r0, *mst = ms + (c0 - g0) * KG_R;
                    const int first = s0 == 0, last = s0 + nsb == nsb_all;
                    if (nc == KG_C) /* the full tile with a constant column count */
                        kg_tile(sub, same, maxcode, order, bp, scv, mnp, dv, dmv, nr, s0, nsb, ac, as, KG_C, yt, ys,
                                first, last, per64, mst);
                    else
                        kg_tile(sub, same, maxcode, order, bp, scv, mnp, dv, dmv, nr, s0, nsb, ac, as, nc, yt, ys,
                                first, last, per64, mst);
                }
            }
        }
    }
    KG_DONE();
    return 1;
}

/* The per-type tile GEMM: kg_gemm with the type's constants. SAME: offset codes (the offset OFF
 * packed signed on the amx tier); SUB: elements per integer scale; MAXCODE: the largest unsigned
 * code (the avx2 engine's int16 headroom); ORDER: KG_TILED or KG_REPACK. */
#define DEFINE_KGEMM(T, BLOCK, SAME, OFF, SUB, MAXCODE, ORDER)                                     \
    static int kg_gemm_##T(const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, \
                           int64_t ncols, float *y, size_t ys, int64_t n) {                        \
        return kg_gemm(kunpack_##T, sizeof(BLOCK), SAME, OFF, SUB, MAXCODE, ORDER, w, ws, nrows, a, as, ncols, y, \
                       ys, n);                                                                     \
    }
#define TS_K_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) kg_gemm_##T(w, ws, nrows, a, as, ncols, y, ys, n)
#else
#define TS_K_TILES(T, w, ws, nrows, a, as, ncols, y, ys, n) 0
#endif

#endif
