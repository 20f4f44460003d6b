/* ts_q32.h — the generic matmul of the per-32 weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * IQ4_NL, Q2_0) against per-32 activations, as static inline functions whose type parameters
 * (block size, code kind, offset, summation order, unpacker) are constants at each call, so every
 * type gets its own specialised copy; ts_kernels.c's DEFINE_Q32_KERNELS makes the thin per-type
 * entry points. Part of ts_kernels.c (included once); not a standalone header. */
#ifndef TS_Q32_H
#define TS_Q32_H

/* The unpacker of a per-32 type (see the unpackers above). */
typedef void (*ts_unpack_fn)(const void *restrict blk, int8_t *restrict w8, float *restrict sc, float *restrict mn);

/* One weight row of a per-32 type (qk elements in blocks of bb bytes, codes of `kind` with
 * offset `off`, summed in `order`; every one a constant at the call, so each type gets its own
 * copy) against nc columns, over chunks [0, nch) of the current chunk range. */
static inline __attribute__((always_inline)) void m32_row(
    const uint8_t *wr, int qk, size_t bb, int kind, int off, int order, ts_unpack_fn unpack, int64_t nch,
    const ts_block_q8a *a, size_t as, int nc, const float *da, const int32_t *off8, const float *sd, float *y,
    size_t ys, ts_acc *keep, float *keepm, int first, int last) {
    /* The lane chains and the min chain wait in keep / keepm between chunk ranges (a row
     * longer than TS_KB chunks); the one float chain of the other orders waits in y. */
    ts_acc acc[TS_COLS];
    float fa[TS_COLS];
    float mins[TS_COLS];
    for (int c = 0; c < TS_COLS; c++) {
        fa[c] = !first && c < nc ? y[c * ys] : 0.0f;
        acc[c] = first || order != Q32_LANES ? ts_acc_zero() : keep[c];
        mins[c] = first || order != Q32_LANES ? 0.0f : keepm[c];
    }
    for (int64_t g = 0; g < nch; g += 8) {
        const int gn = nch - g < 8 ? (int)(nch - g) : 8;
        int8_t w8[256];
        float dw[8] = {0}, mw[8] = {0};
        for (int k = 0; k < 8 && k < gn; k += qk / 32) {
            const uint8_t *blk = wr + (size_t)((g + k) / (qk / 32)) * bb;
            float sc[64 / 16], mn[64 / 16];
            for (size_t pf = 0; pf < bb; pf += 64) __builtin_prefetch(blk + TS_PREFETCH + pf);
            unpack(blk, w8 + 32 * k, sc, mn);
            for (int j = 0; j < qk / 32; j++) {
                dw[k + j] = sc[2 * j];
                mw[k + j] = mn[2 * j];
            }
        }
        if (kind == KIND_S32 && TS_U8_FULL)
            for (int i = 0; i < 256; i += 32) st32(w8 + i, ld32((const uint8_t *)w8 + i) ^ 0x80);
        /* Scale products of every column, then chunk-outer, column-inner so that each chunk
         * of codes is loaded once and consecutive fmas go to different accumulators. */
        ts_sc8 pv[TS_COLS];
        const ts_sc8 dwv = ts_sc8_load(dw);
        for (int c = 0; c < nc; c++) pv[c] = ts_sc8_mul(dwv, ts_sc8_load(da + c * TS_KB + g));
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            if (k >= gn) break;
            for (int c = 0; c < nc; c++) {
                const ts_block_q8a *ab = (const ts_block_q8a *)((const uint8_t *)a + c * as) + g + k;
                /* One accumulation chain per column, chunk after chunk, as llama.cpp's
                 * vec_dot and tinyBLAS sum. */
                if (order == Q32_PAIR) {
                    if (k & 1) continue;
                    const float t0 = (float)ts_dot32_total(w8 + 32 * k, ab->qs, 0, -off * (ab->s[0] + ab->s[1]));
                    const float t1 = (float)ts_dot32_total(w8 + 32 * k + 32, ab[1].qs, 0, -off * (ab[1].s[0] + ab[1].s[1]));
                    const float d1a = da[c * TS_KB + g + k], d1b = da[c * TS_KB + g + k + 1];
                    const float p0 = d1a * t0, p1 = d1b * t1;
                    const float si = p0 + p1;
                    const float ps = dw[k] * si;
                    fa[c] += ps;
                } else if (order == Q32_BLOCK)
                    fa[c] = __builtin_fmaf((float)ts_dot32_total(w8 + 32 * k, ab->qs, Q32_SIGNED(kind),
                                                                -Q32_OFF(kind, off) * (ab->s[0] + ab->s[1])),
                                           dw[k] * da[c * TS_KB + g + k], fa[c]);
                else if (Q32_SIGNED(kind))
                    acc[c] = ts_acc_s8x32_lane(acc[c], w8 + 32 * k, ab->qs, pv[c], k);
                else
                    acc[c] = ts_acc_u8x32_lane(acc[c], w8 + 32 * k, ab->qs, pv[c], k,
                                               off8 + 8 * (c * TS_KB + g + k));
            }
        }
        for (int c = 0; c < nc; c++) {
            /* Min terms summed in block order, as llama.cpp does. */
            if (kind == KIND_U32_MIN)
                for (int k = 0; k < 8 && k < gn; k++) mins[c] += mw[k] * sd[c * TS_KB + g + k];
        }
    }
    for (int c = 0; c < nc; c++) {
        if (order != Q32_LANES) {
            y[c * ys] = fa[c] + mins[c];
        } else if (last) {
            y[c * ys] = ts_acc_sum(acc[c]) + mins[c];
        } else {
            keep[c] = acc[c];
            keepm[c] = mins[c];
        }
    }
}

/* The generic per-32 matmul: column tiles of TS_COLS, chunk ranges of TS_KB with the columns'
 * scales, sums and lane offsets gathered once, rows in blocks of TS_M32_RB where a row spans
 * several ranges. */
static inline __attribute__((always_inline)) void mm_q32(
    const void *w, size_t ws, int64_t nrows, const ts_block_q8a *a, size_t as, int64_t ncols, float *y,
    size_t ys, int64_t n, int qk, size_t bb, int kind, int off, int order, ts_unpack_fn unpack) {
    const int64_t nch_all = n / 32;
    float da[TS_COLS * TS_KB], sd[TS_COLS * TS_KB];
    int32_t off8[TS_COLS * TS_KB * 8];
    ts_acc keep[TS_M32_RB][TS_COLS];
    float keepm[TS_M32_RB][TS_COLS];
    /* Rows in blocks whose chains wait in keep when a row spans several chunk ranges. */
    const int64_t rb = nch_all <= TS_KB ? nrows : TS_M32_RB;
    for (int64_t c0 = 0; c0 < ncols; c0 += TS_COLS) {
        const int nc = (int)(ncols - c0 < TS_COLS ? ncols - c0 : TS_COLS);
        for (int64_t rb0 = 0; rb0 < nrows; rb0 += rb)
        for (int64_t k0 = 0; k0 < nch_all; k0 += TS_KB) {
            const int64_t nch = nch_all - k0 < TS_KB ? nch_all - k0 : TS_KB;
            const ts_block_q8a *ac = (const ts_block_q8a *)((const uint8_t *)a + c0 * as) + k0;
            for (int c = 0; c < nc; c++) {
                const ts_block_q8a *col = (const ts_block_q8a *)((const uint8_t *)ac + c * as);
                for (int64_t k = 0; k < ((nch + 7) & ~(int64_t)7); k++) {
                    const int in = k < nch;
                    da[c * TS_KB + k] = in ? col[k].d : 0.0f;
                    sd[c * TS_KB + k] = in ? col[k].sd : 0.0f;
                    q32_lane_offsets(in ? col[k].qs : NULL, Q32_OFF(kind, off), off8 + 8 * (c * TS_KB + k));
                }
            }
            const int first = k0 == 0, last = k0 + nch == nch_all;
            const int64_t r1 = nrows - rb0 < rb ? nrows : rb0 + rb;
            for (int64_t r = rb0; r < r1; r++) {
                const uint8_t *wr = (const uint8_t *)w + r * ws + (size_t)(k0 / (qk / 32)) * bb;
                float *yr = y + c0 * ys + r;
                ts_acc *kr = keep[(r - rb0) % TS_M32_RB];
                float *kmr = keepm[(r - rb0) % TS_M32_RB];
                if (nc == TS_COLS)
                    m32_row(wr, qk, bb, kind, off, order, unpack, nch, ac, as, TS_COLS, da, off8, sd, yr, ys, kr, kmr, first, last);
                else if (nc == 1)
                    m32_row(wr, qk, bb, kind, off, order, unpack, nch, ac, as, 1, da, off8, sd, yr, ys, kr, kmr, first, last);
                else
                    m32_row(wr, qk, bb, kind, off, order, unpack, nch, ac, as, nc, da, off8, sd, yr, ys, kr, kmr, first, last);
            }
        }
    }
}

#endif /* TS_Q32_H */
