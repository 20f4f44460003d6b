/* ts_kquant.h — the generic matmul of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against
 * per-256 activations, as static inline functions whose type parameters are constants at each
 * call; ts_kernels.c's DEFINE_K_KERNELS makes the thin per-type entry points. Part of
 * ts_kernels.c (included once, after the K_* order names); not a standalone header. */
#ifndef TS_KQUANT_H
#define TS_KQUANT_H

/* One super-block of a row in the K_REPACK order: per 64 elements one integer sum (the two
 * sub-blocks' scaled dot products) and one integer min term (their mins times activation
 * sums); columns in per64 take them into the float chains at once, the others add them up
 * over the super-block first. mn16 holds the negated mins, so macc is minus llama.cpp's
 * min chain and the row's result is sacc + macc. */
static inline __attribute__((always_inline)) void mk_repack(
    const int8_t *w8, const int16_t *sc16, const int16_t *mn16, float d, float dmin,
    const ts_block_q8a *a, size_t as, int nc, const int16_t *bs, const float *da, int64_t b,
    unsigned per64, float *sacc, float *macc) {
    int32_t isb[TS_COLS] = {0}, imb[TS_COLS] = {0};
    for (int g = 0; g < 4; g++) {
        ts_iacc ip[TS_COLS];
        for (int c = 0; c < nc; c++) ip[c] = ts_iacc_zero();
        for (int k = 2 * g; k < 2 * g + 2; k++) {
            const ts_ksc ks = ts_ksc_make(sc16[2 * k], sc16[2 * k + 1]);
            for (int c = 0; c < nc; c++) {
                const ts_block_q8a *ab =
                    (const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * b + k;
                ip[c] = ts_iacc_u8x32(ip[c], w8 + 32 * k, ab->qs, ks);
            }
        }
        for (int c = 0; c < nc; c++) {
            const int16_t *s16 = bs + (c * TS_KSB + b) * 16 + 4 * g;
            const int32_t is = ts_iacc_hsum(ip[c]);
            const int32_t im = mn16[4 * g] * s16[0] + mn16[4 * g + 1] * s16[1] +
                               mn16[4 * g + 2] * s16[2] + mn16[4 * g + 3] * s16[3];
            if (per64 >> c & 1) {
                const float dc = da[c * TS_KSB + b];
                sacc[c] = __builtin_fmaf((float)is, d * dc, sacc[c]);
                macc[c] = __builtin_fmaf((float)im, dmin * dc, macc[c]);
            } else {
                isb[c] += is;
                imb[c] += im;
            }
        }
    }
    for (int c = 0; c < nc; c++)
        if (!(per64 >> c & 1)) {
            const float dc = da[c * TS_KSB + b];
            sacc[c] = __builtin_fmaf((float)isb[c], d * dc, sacc[c]);
            macc[c] = __builtin_fmaf((float)imb[c], dmin * dc, macc[c]);
        }
}

/* One weight row of a K-quant type (super-blocks of bb bytes; SAME: dmin == d; its summation
 * order; lane_off: Q3_K's in-lane offset; every one a constant at the call) against nc columns. */
static inline __attribute__((always_inline)) void mk_row(
    const uint8_t *wr, size_t bb, int same, int order, int lane_off, ts_kunpack_fn kunpack, int64_t nsb,
    const ts_block_q8a *a, size_t as, int nc, const int16_t *bs, const float *da, float *y, size_t ys,
    int accumulate, unsigned per64, int tiled, const int16_t *p4) {
    ts_acc acc[TS_COLS];
    float sacc[TS_COLS] = {0}, macc[TS_COLS] = {0};
    for (int c = 0; c < TS_COLS; c++) acc[c] = ts_acc_zero();
    for (int64_t b = 0; b < nsb; b++) {
        int8_t w8[TS_QK_K];
        int16_t sc16[16], mn16[16];
        float d, dmin;
        for (size_t pf = 0; pf < bb; pf += 64) __builtin_prefetch(wr + b * bb + TS_PREFETCH + pf);
        kunpack(wr + b * bb, w8, sc16, mn16, &d, &dmin);
        if (order == K_REPACK) {
            mk_repack(w8, sc16, mn16, d, dmin, a, as, nc, bs, da, b, per64, sacc, macc);
            continue;
        }
        /* Chunk-outer, column-inner: each chunk of codes is loaded once for all columns. */
        ts_iacc ia[TS_COLS];
        for (int c = 0; c < nc; c++) ia[c] = ts_iacc_zero();
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            const ts_ksc ks = ts_ksc_make(sc16[2 * k], sc16[2 * k + 1]);
            for (int c = 0; c < nc; c++) {
                const ts_block_q8a *ab =
                    (const ts_block_q8a *)((const uint8_t *)a + c * as) + 8 * b + k;
                /* LANE_OFF: the offset leaves each lane with its own products (the lanes
                 * of the signed codes, as Q3_K's vec_dot subtracts it), from p4 prepared
                 * per call for one column. */
                if (lane_off && !tiled) {
                    int16_t p4k[16];
                    if (!p4) ts_p4(ab->qs, p4k);
                    ia[c] = ts_iacc_u8x32_off(ia[c], w8 + 32 * k, ab->qs, ks,
                                              p4 ? p4 + (b * 8 + k) * 16 : p4k);
                } else {
                    ia[c] = ts_iacc_u8x32(ia[c], w8 + 32 * k, ab->qs, ks);
                }
            }
        }
        for (int c = 0; c < nc; c++) {
            const int16_t *s16 = bs + (c * TS_KSB + b) * 16;
            const float dc = da[c * TS_KSB + b];
            const ts_iacc i = ia[c];
            if (tiled) {
                /* mn16 holds the offset terms same or the negated mins. */
                const int32_t im = ts_iacc_hsum(ts_iacc_dot16(ts_iacc_zero(), mn16, s16));
                float r = (float)(ts_iacc_hsum(i) + (same ? im : 0)) * d;
                if (!same) r = __builtin_fmaf(dmin, (float)im, r);
                sacc[c] = __builtin_fmaf(r, dc, sacc[c]);
            } else if (same) {
                acc[c] = ts_acc_fma_iacc(acc[c], lane_off ? i : ts_iacc_dot16(i, mn16, s16), d * dc);
            } else {
                acc[c] = ts_acc_fma_iacc(acc[c], i, d * dc);
                acc[c] = ts_acc_fma_iacc(acc[c], ts_iacc_dot16(ts_iacc_zero(), mn16, s16),
                                         dmin * dc);
            }
        }
    }
    for (int c = 0; c < nc; c++)
        y[c * ys] = (accumulate ? y[c * ys] : 0.0f) +
                    (order == K_REPACK || tiled ? sacc[c] + macc[c] : ts_acc_sum(acc[c]));
}

/* The generic K-quant matmul: column tiles of TS_COLS, TS_KSB super-blocks at a time with the
 * columns' per-16 sums and scales gathered once. */
static inline __attribute__((always_inline)) void mm_kquant(
    const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, int64_t ncols, float *y,
    size_t ys, int64_t n, size_t bb, int same, int order, int lane_off, ts_kunpack_fn kunpack,
    int16_t *p4buf) {
    const int64_t nsb_all = n / TS_QK_K;
    int16_t bs[TS_COLS * TS_KSB * 16];
    float da[TS_COLS * TS_KSB];
    /* Columns of whole groups of four take the GEMM order (K_REPACK); eight or more columns
     * the tiled GEMM's (K_LANES). */
    const int tiled = order == K_LANES && ncols >= 8;
    const int64_t ngemm = order == K_REPACK ? ncols - ncols % 4 : 0;
    for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {
        const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);
        const unsigned per64 = c0 >= ngemm ? 0u
                               : c0 + nc <= ngemm ? (1u << nc) - 1
                                                  : (1u << (ngemm - c0)) - 1;
        for (int64_t s0 = 0; s0 < nsb_all; s0 += TS_KSB) {
            const int64_t nsb = nsb_all - s0 < TS_KSB ? nsb_all - s0 : TS_KSB;
            const ts_block_q8a *ac =
                (const ts_block_q8a *)((const uint8_t *)a + c0 * as) + 8 * s0;
            for (int c = 0; c < nc; c++) {
                const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)ac + c * as);
                for (int64_t b = 0; b < nsb; b++) {
                    da[c * TS_KSB + b] = col[8 * b].d;
                    for (int k = 0; k < 8; k++) {
                        bs[(c * TS_KSB + b) * 16 + 2 * k] = col[8 * b + k].s[0];
                        bs[(c * TS_KSB + b) * 16 + 2 * k + 1] = col[8 * b + k].s[1];
                    }
                }
            }
            const int16_t *p4 = NULL;
            if (lane_off && ncols == 1) {
                for (int64_t k = 0; k < 8 * nsb; k++) ts_p4(ac[k].qs, p4buf + 16 * k);
                p4 = p4buf;
            }
            for (int64_t r = 0; r < nrows; r++) {
                const uint8_t *wr = (const uint8_t *)w + r * ws + (size_t)s0 * bb;
                float *yr = y + c0 * ys + r;
                if (nc == TS_COLS)
                    mk_row(wr, bb, same, order, lane_off, kunpack, nsb, ac, as, TS_COLS, bs, da, yr, ys, s0 > 0, per64, tiled, p4);
                else if (nc == 1)
                    mk_row(wr, bb, same, order, lane_off, kunpack, nsb, ac, as, 1, bs, da, yr, ys, s0 > 0, per64, tiled, p4);
                else
                    mk_row(wr, bb, same, order, lane_off, kunpack, nsb, ac, as, nc, bs, da, yr, ys, s0 > 0, per64, tiled, p4);
            }
        }
    }
}

#endif /* TS_KQUANT_H */
