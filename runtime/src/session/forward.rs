//! The forward pass of a chunk of tokens: embeddings, then per layer the attention block and
//! the FFN block, then (when asked) the logits of the last token.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tensorsharp_models::arch::{Activation, RopeStyle};

use super::kv::store_row;
use super::matmul::{FirstError, MatmulJob, SharedPtr};
use super::profile::ProfileOp;
use super::Session;
use crate::error::{Result, RuntimeError};
use crate::model::LayerWeights;
use crate::ops;
use crate::pool::split;
use crate::tokenizer::Token;

/// The forward pass's buffers, borrowed from the arena for one pass (see
/// [`Buffers`](super::layout::Buffers) for their shapes).
struct Activations<'a> {
    /// The residual stream.
    residual: &'a mut [f32],
    /// The residual after a norm.
    normed: &'a mut [f32],
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    attn_out: &'a mut [f32],
    /// Output of the attention output projection, then of the FFN down projection.
    proj_out: &'a mut [f32],
    ffn_gate: &'a mut [f32],
    ffn_up: &'a mut [f32],
    /// (cos, sin) of each distinct RoPE setting for each token of the chunk.
    rope: &'a mut [(f32, f32)],
}

impl Session {
    /// Runs `tokens` (at most `n_batch`, fitting the context) through the model after the cached
    /// positions, and computes the logits of the last one when `want_logits`.
    pub(crate) fn forward(&mut self, tokens: &[Token], want_logits: bool) -> Result<()> {
        let model = Arc::clone(&self.model);
        let pos0 = self.n_past;
        let b = self.buffers;
        // SAFETY: the slots are disjoint parts of the arena and `&mut self` excludes any other
        // user; parallel regions below only write disjoint ranges through raw pointers.
        let mut act = unsafe {
            let a = &self.arena;
            Activations {
                residual: a.slice(b.residual),
                normed: a.slice(b.normed),
                q: a.slice(b.q),
                k: a.slice(b.k),
                v: a.slice(b.v),
                attn_out: a.slice(b.attn_out),
                proj_out: a.slice(b.proj_out),
                ffn_gate: a.slice(b.ffn_gate),
                ffn_up: a.slice(b.ffn_up),
                rope: a.slice(b.rope),
            }
        };
        let mut clock = self.profiler.start();
        self.embed(tokens, pos0, &mut act)?;
        self.profiler.lap(ProfileOp::Embedding, &mut clock);
        for (layer, lw) in model.layers.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RuntimeError::Cancelled);
            }
            self.attention_block(layer, lw, tokens.len(), pos0, &mut act, &mut clock)?;
            self.ffn_block(layer, lw, tokens.len(), &mut act, &mut clock)?;
        }
        // SAFETY: &mut self; the token slot holds n_ctx ids and pos0 + len <= n_ctx (checked by
        // the callers); nothing else borrows it.
        let cached = unsafe { std::slice::from_raw_parts_mut(self.kv.tokens_ptr(&self.arena), self.params.n_ctx) };
        cached[pos0..pos0 + tokens.len()].copy_from_slice(tokens);
        self.n_past += tokens.len();
        if want_logits {
            self.output_logits(tokens.len() - 1, &mut act)?;
            self.profiler.lap(ProfileOp::Logits, &mut clock);
        }
        Ok(())
    }

    /// The embeddings of `tokens` into the residual stream and the RoPE tables of their positions.
    fn embed(&self, tokens: &[Token], pos0: usize, act: &mut Activations) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let e = sp.n_embd;
        for (t, &tok) in tokens.iter().enumerate() {
            let rb = model.embd.row_bytes;
            let row = &model.bytes(&model.embd)[tok as usize * rb..(tok as usize + 1) * rb];
            let x = &mut act.residual[t * e..(t + 1) * e];
            model.kernels.dequantize(model.embd.wtype, row, x)?;
            if let Some(sc) = sp.embed_scale {
                x.iter_mut().for_each(|v| *v *= sc);
            }
        }
        let half = sp.rope_dim / 2;
        for (ri, &(base, scale)) in self.ropes.pairs.iter().enumerate() {
            for t in 0..tokens.len() {
                let off = (ri * self.params.n_batch + t) * half;
                ops::rope_table(pos0 + t, sp.rope_dim, base, scale, &mut act.rope[off..off + half]);
            }
        }
        Ok(())
    }

    /// Norm, q/k/v projections, per-token biases, QK-norm and RoPE, the K/V rows into the cache,
    /// attention, the output projection (into `proj_out`).
    fn attention_block(
        &self,
        layer: usize,
        lw: &LayerWeights,
        t_n: usize,
        pos0: usize,
        act: &mut Activations,
        clock: &mut Option<Instant>,
    ) -> Result<()> {
        let sp = &self.model.spec;
        let (e, eps) = (sp.n_embd, sp.rms_eps);
        let (hd, hdv, nh, nkv) = (sp.head_dim, sp.head_dim_v, sp.n_head, sp.n_head_kv);
        let (q_dim, kv_dim, v_dim, att_dim) = (nh * hd, nkv * hd, nkv * hdv, nh * hdv);
        for t in 0..t_n {
            ops::rms_norm(
                &act.residual[t * e..(t + 1) * e],
                &lw.attn_norm,
                eps,
                &mut act.normed[t * e..(t + 1) * e],
            );
        }
        self.profiler.lap(ProfileOp::Norms, clock);
        let jobs = [
            MatmulJob {
                weight: lw.wq,
                out: SharedPtr(act.q.as_mut_ptr()),
                stride: q_dim,
            },
            MatmulJob {
                weight: lw.wk,
                out: SharedPtr(act.k.as_mut_ptr()),
                stride: kv_dim,
            },
            MatmulJob {
                weight: lw.wv,
                out: SharedPtr(act.v.as_mut_ptr()),
                stride: v_dim,
            },
        ];
        self.project(&jobs, act.normed.as_ptr(), e, t_n)?;
        self.profiler.lap(ProfileOp::QkvProjection, clock);
        // Per token: biases, QK-norm, RoPE, the K/V rows into the cache. Tokens are
        // independent, so a prompt's are split over the pool (decode stays on this thread).
        let (qp, kp, vp) = (
            SharedPtr(act.q.as_mut_ptr()),
            SharedPtr(act.k.as_mut_ptr()),
            SharedPtr(act.v.as_mut_ptr()),
        );
        let kv = self.kv;
        let cache = SharedPtr(kv.base(&self.arena));
        let half = sp.rope_dim / 2;
        let rope = &act.rope[self.ropes.layer_pair[layer] * self.params.n_batch * half..];
        let neox = sp.rope_style == RopeStyle::Neox;
        let per_token = |t: usize| {
            // SAFETY: token t's q, k and v rows and its K/V cache rows (position pos0 + t) are
            // touched by this call alone; q, k, v hold t_n rows and the cache n_ctx.
            let (qt, kt, vt) = unsafe {
                (
                    std::slice::from_raw_parts_mut(qp.get().add(t * q_dim), q_dim),
                    std::slice::from_raw_parts_mut(kp.get().add(t * kv_dim), kv_dim),
                    std::slice::from_raw_parts_mut(vp.get().add(t * v_dim), v_dim),
                )
            };
            for (dst, b) in [(&mut *qt, &lw.bq), (&mut *kt, &lw.bk), (&mut *vt, &lw.bv)] {
                if let Some(b) = b {
                    dst.iter_mut().zip(b).for_each(|(d, b)| *d += b);
                }
            }
            let cs = &rope[t * half..][..half];
            for h in qt.chunks_exact_mut(hd) {
                if let Some(n) = &lw.q_norm {
                    ops::rms_norm_inplace(h, n, eps);
                }
                ops::rope(h, cs, neox);
            }
            for h in kt.chunks_exact_mut(hd) {
                if let Some(n) = &lw.k_norm {
                    ops::rms_norm_inplace(h, n, eps);
                }
                ops::rope(h, cs, neox);
            }
            for g in 0..nkv {
                // SAFETY: the K and V rows of (pos0 + t, g) belong to this call alone and lie
                // inside the cache (pos0 + t < n_ctx).
                let (kd, vd) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(cache.get().add(kv.k_row(layer, pos0 + t, g)), kv.row_k()),
                        std::slice::from_raw_parts_mut(cache.get().add(kv.v_row(layer, pos0 + t, g)), kv.row_v()),
                    )
                };
                store_row(kv.kv_type(), &kt[g * hd..(g + 1) * hd], kd);
                store_row(kv.kv_type(), &vt[g * hdv..(g + 1) * hdv], vd);
            }
        };
        if t_n < 4 {
            (0..t_n).for_each(per_token);
        } else {
            self.pool.run(&|i, nt| {
                let (t0, t1) = split(t_n, i, nt, 1);
                (t0..t1).for_each(per_token);
            });
        }
        self.profiler.lap(ProfileOp::QkvPrepare, clock);
        self.attention(layer, t_n, pos0, act.q, act.attn_out)?;
        self.profiler.lap(ProfileOp::Attention, clock);
        let jobs = [MatmulJob {
            weight: lw.wo,
            out: SharedPtr(act.proj_out.as_mut_ptr()),
            stride: e,
        }];
        self.project(&jobs, act.attn_out.as_ptr(), att_dim, t_n)?;
        self.profiler.lap(ProfileOp::AttentionOutput, clock);
        Ok(())
    }

    /// The attention output into the residual, norm, gate/up projections, activation, down
    /// projection, into the residual. After the last layer's attention only the last token's
    /// state is used (for the logits), so there the FFN runs for that token alone.
    fn ffn_block(
        &self,
        layer: usize,
        lw: &LayerWeights,
        t_n: usize,
        act: &mut Activations,
        clock: &mut Option<Instant>,
    ) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let (e, eps, ff) = (sp.n_embd, sp.rms_eps, sp.n_ff);
        // As in llama.cpp's graph (which also decides which of its matmul kernels, and so which
        // summation order, runs): tokens t0.. go on, their FFN rows counted from 0.
        let t0 = if layer + 1 == model.layers.len() { t_n - 1 } else { 0 };
        let t_f = t_n - t0;
        for t in t0..t_n {
            let ot = &mut act.proj_out[t * e..(t + 1) * e];
            if let Some(n) = &lw.post_attn_norm {
                ops::rms_norm_inplace(ot, n, eps);
            }
            act.residual[t * e..(t + 1) * e]
                .iter_mut()
                .zip(ot.iter())
                .for_each(|(a, b)| *a += b);
            let r = (t - t0) * e;
            ops::rms_norm(
                &act.residual[t * e..(t + 1) * e],
                &lw.ffn_norm,
                eps,
                &mut act.normed[r..r + e],
            );
        }
        let jobs = [
            MatmulJob {
                weight: lw.gate,
                out: SharedPtr(act.ffn_gate.as_mut_ptr()),
                stride: ff,
            },
            MatmulJob {
                weight: lw.up,
                out: SharedPtr(act.ffn_up.as_mut_ptr()),
                stride: ff,
            },
        ];
        self.profiler.lap(ProfileOp::Norms, clock);
        self.project(&jobs, act.normed.as_ptr(), e, t_f)?;
        self.profiler.lap(ProfileOp::FfnGateUp, clock);
        self.ffn_activation(t_f, act)?;
        let jobs = [MatmulJob {
            weight: lw.down,
            out: SharedPtr(act.proj_out.as_mut_ptr()),
            stride: e,
        }];
        self.profiler.lap(ProfileOp::FfnActivation, clock);
        self.project(&jobs, act.ffn_gate.as_ptr(), ff, t_f)?;
        self.profiler.lap(ProfileOp::FfnDown, clock);
        for t in t0..t_n {
            let ot = &mut act.proj_out[(t - t0) * e..(t - t0 + 1) * e];
            if let Some(n) = &lw.post_ffw_norm {
                ops::rms_norm_inplace(ot, n, eps);
            }
            act.residual[t * e..(t + 1) * e]
                .iter_mut()
                .zip(ot.iter())
                .for_each(|(a, b)| *a += b);
        }
        self.profiler.lap(ProfileOp::Norms, clock);
        Ok(())
    }

    /// `ffn_gate = act(ffn_gate) * ffn_up` for `t_f` rows, split over the threads: SwiGLU through
    /// the kernels, GeGLU through the model's f16 lookup table.
    fn ffn_activation(&self, t_f: usize, act: &mut Activations) -> Result<()> {
        let model = &*self.model;
        let ff = model.spec.n_ff;
        let (gp, upp, table) = (
            SharedPtr(act.ffn_gate.as_mut_ptr()),
            SharedPtr(act.ffn_up.as_mut_ptr()),
            &model.gelu_table[..],
        );
        let silu = model.spec.activation == Activation::Silu;
        let failed = FirstError::default();
        self.pool.run(&|i, nt| {
            let (lo, hi) = split(t_f * ff, i, nt, 64);
            // SAFETY: [lo, hi) of gate and up is this thread's alone; both hold t_f*ff values.
            let (g, u) = unsafe {
                (
                    std::slice::from_raw_parts_mut(gp.get().add(lo), hi - lo),
                    std::slice::from_raw_parts(upp.get().add(lo), hi - lo),
                )
            };
            if silu {
                // Row by row: ggml's vector exp covers a row's whole chunks of 16, libm's
                // exp the rest (none when ff is a multiple of 16).
                let mut a = lo;
                while a < hi {
                    let row_end = (a / ff + 1) * ff;
                    let b = row_end.min(hi);
                    let n_vec = (row_end - ff + (ff & !15)).saturating_sub(a).min(b - a);
                    failed.record(model.kernels.swiglu(&mut g[a - lo..b - lo], &u[a - lo..b - lo], n_vec));
                    a = b;
                }
            } else {
                g.iter_mut()
                    .zip(u)
                    .for_each(|(g, u)| *g = ops::gelu_lookup(table, *g) * u);
            }
        });
        failed.into_result()
    }

    /// The output norm of token `last`'s residual and the logits (softcapped where the model
    /// says so) into the logits slot.
    fn output_logits(&self, last: usize, act: &mut Activations) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let e = sp.n_embd;
        ops::rms_norm(
            &act.residual[last * e..(last + 1) * e],
            &model.output_norm,
            sp.rms_eps,
            &mut act.normed[..e],
        );
        // SAFETY: the logits slot is disjoint from the activations; &self is the pass's owner.
        let logits = unsafe { self.arena.slice(self.buffers.logits) };
        let jobs = [MatmulJob {
            weight: model.output,
            out: SharedPtr(logits.as_mut_ptr()),
            stride: sp.n_vocab,
        }];
        self.project(&jobs, act.normed.as_ptr(), e, 1)?;
        if let Some(cap) = sp.final_logit_softcap {
            logits.iter_mut().for_each(|l| *l = cap * (*l / cap).tanh());
        }
        Ok(())
    }
}
