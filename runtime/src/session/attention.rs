//! Causal (optionally sliding-window) grouped-query attention of a chunk over the KV cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::kv::KvType;
use super::layout::ROW_MULTI;
use super::matmul::{FirstError, SharedPtr};
use super::Session;
use crate::error::Result;
use crate::ops;
use crate::pool::split;

impl Session {
    /// Attention of the pass's `t_n` rows in layer `layer`, each over its own sequence's cache up
    /// to its position (`row_seq`, `row_pos`; `row_flags` says whether a row's sequence has
    /// several rows in the pass, which picks the prefill arithmetic): `q` holds their queries
    /// (`n_head * head_dim` per row; an f32 or q8_0 cache rounds them to f16 in place), `out`
    /// receives `n_head * head_dim_v` per row. Parallel over (row, head) pairs; K·q runs through
    /// the kernels' f32-activation GEMV over cache rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
        &self,
        layer: usize,
        t_n: usize,
        row_seq: &[u32],
        row_pos: &[u32],
        row_flags: &[u8],
        q: &mut [f32],
        out: &mut [f32],
    ) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let (hd, hdv, nh, nkv) = (sp.head_dim, sp.head_dim_v, sp.n_head, sp.n_head_kv);
        let group = nh / nkv;
        let window = sp.layers[layer].sliding_window;
        let kv = self.kv;
        let kvt = kv.kv_type();
        let wt = kvt.wtype();
        let n_ctx = self.params.n_ctx;
        let cache = SharedPtr(kv.base(&self.arena));
        let scores = SharedPtr(self.arena.ptr(self.buffers.scores));
        let value_row = SharedPtr(self.arena.ptr(self.buffers.value_row));
        let (qp, outp) = (SharedPtr(q.as_mut_ptr()), SharedPtr(out.as_mut_ptr()));
        let kernels = model.kernels;
        let scale = sp.attn_scale;
        let failed = FirstError::default();
        // A decode step's heads cost the same: a fixed share per thread. A prefill chunk's tokens
        // cost more the later they stand (causal): threads take whole tokens from a shared
        // counter, the last (longest) first, so the work evens out.
        let next_token = AtomicUsize::new(0);
        self.pool.run(&|i, nt| {
            let (w0, w1) = split(t_n * nh, i, nt, 1);
            let dynamic = t_n > 1 && nt > 1;
            let (mut fixed, mut taken) = (w0..w1, 0..0);
            // SAFETY: thread i owns scores[i*n_ctx..] and value_row[i*hdv..] (the plan sizes them
            // per thread).
            let sc = unsafe { std::slice::from_raw_parts_mut(scores.get().add(i * n_ctx), n_ctx) };
            // SAFETY: as above.
            let vt = unsafe { std::slice::from_raw_parts_mut(value_row.get().add(i * hdv), hdv) };
            loop {
                let item = if !dynamic {
                    match fixed.next() {
                        Some(item) => item,
                        None => break,
                    }
                } else if let Some(item) = taken.next() {
                    item
                } else {
                    let c = next_token.fetch_add(1, Ordering::Relaxed);
                    if c >= t_n {
                        break;
                    }
                    let t = t_n - 1 - c;
                    taken = t * nh..(t + 1) * nh;
                    continue;
                };
                let (t, h) = (item / nh, item % nh);
                let g = h / group;
                let p = row_pos[t] as usize;
                let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
                let npos = p + 1 - lo;
                let first = kv.cell(row_seq[t] as usize, lo);
                let multi = row_flags[t] & ROW_MULTI != 0;
                // SAFETY: positions lo..=p of the row's sequence, kv head g, were written (this
                // pass or earlier) and lie in the layer region; q[t][h] and out[t][h] are this work item's alone.
                unsafe {
                    let qh = qp.get().add(t * nh * hd + h * hd);
                    let k0 = cache.get().add(kv.k_row(layer, first, g));
                    let v0 = cache.get().add(kv.v_row(layer, first, g));
                    if kvt == KvType::F16 {
                        let out = outp.get().add(t * nh * hdv + h * hdv);
                        kernels.attention_f16_raw(
                            qh,
                            k0 as *const u16,
                            kv.k_stride() / 2,
                            v0 as *const u16,
                            kv.v_stride() / 2,
                            lo,
                            npos,
                            hd,
                            hdv,
                            scale,
                            multi,
                            sc.as_mut_ptr(),
                            out,
                        );
                        continue;
                    }
                    // f32 / q8_0 caches: flash-attention arithmetic as llama.cpp runs it for
                    // these cache types (it needs flash attention for a quantized V cache):
                    // query rounded to f16, online softmax, f16 value accumulator.
                    for d in 0..hd {
                        *qh.add(d) = ops::f16_to_f32(ops::f32_to_f16(*qh.add(d)));
                    }
                    kernels.matmul_f32_raw(wt, k0, kv.k_stride(), npos, qh, hd, 1, sc.as_mut_ptr(), npos, hd);
                    let s = &mut sc[..npos];
                    s.iter_mut().for_each(|v| *v *= scale);
                    let out = std::slice::from_raw_parts_mut(outp.get().add(t * nh * hdv + h * hdv), hdv);
                    out.iter_mut().for_each(|v| *v = 0.0);
                    let r16 = |x: f32| ops::f16_to_f32(ops::f32_to_f16(x));
                    let (mut m, mut ssum) = (f32::NEG_INFINITY, 0f32);
                    for (j, &sj) in s.iter().enumerate() {
                        let (mut ms, mut vs) = (1f32, 1f32);
                        if sj > m {
                            let mold = m;
                            m = sj;
                            ms = (mold - m).exp();
                            out.iter_mut().for_each(|o| *o = r16(*o * ms));
                        } else {
                            vs = (sj - m).exp();
                        }
                        let vrow = std::slice::from_raw_parts(v0.add(j * kv.v_stride()), kv.row_v());
                        match kernels.dequantize(wt, vrow, vt) {
                            Ok(()) => out.iter_mut().zip(vt.iter()).for_each(|(o, v)| *o = r16(*o + v * vs)),
                            Err(e) => failed.record(Err(e)),
                        }
                        ssum = ssum * ms + vs;
                    }
                    let inv = if ssum == 0.0 { 0.0 } else { 1.0 / ssum };
                    out.iter_mut().for_each(|o| *o *= inv);
                }
            }
        });
        failed.into_result()
    }
}
