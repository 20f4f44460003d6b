//! The forward pass of a set of rows (a prefill chunk of one sequence, or a batch of rows of
//! several sequences): embeddings, then per layer the attention block and the FFN block, then
//! (when asked) the logits of the rows that want them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tensorsharp_kernels::MatmulForm;
use tensorsharp_models::arch::{Activation, RopeStyle};

use super::kv::store_row;
use super::layout::{ROW_LOGITS, ROW_MULTI};
use super::matmul::{FirstError, MatmulJob, SharedPtr};
use super::profile::ProfileOp;
use super::Session;
use crate::error::{Result, RuntimeError};
use crate::model::LayerWeights;
use crate::ops;
use crate::pool::split;
use crate::residency::Step;
use crate::stream::Held;
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
    /// (cos, sin) of each distinct RoPE setting for each row.
    rope: &'a mut [(f32, f32)],
    /// Each row's sequence.
    row_seq: &'a mut [u32],
    /// Each row's position in its sequence.
    row_pos: &'a mut [u32],
    /// Each row's flags ([`ROW_LOGITS`], [`ROW_MULTI`]).
    row_flags: &'a mut [u8],
    /// How the pass's matrix products sum their columns: [`MatmulForm::Gemv`] for a batched
    /// decode step (every row a different sequence), so each sequence gets what decoding it
    /// alone would; else as llama.cpp sums a batch.
    form: MatmulForm,
}

/// One row of a batched forward pass ([`Session::forward_batch`]): a token of a sequence, after
/// the sequence's cached positions and its earlier rows in the same batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRow {
    /// The sequence (`< n_seq`).
    pub seq: u32,
    /// The token.
    pub token: Token,
    /// Whether to compute this row's logits ([`Session::seq_logits`]); at most one row per
    /// sequence and pass.
    pub logits: bool,
}

/// The rows of one forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Consecutive tokens of one sequence after its cached positions; the logits of the last
    /// one when `logits`. Computed exactly as the same tokens in a one-sequence session.
    Chunk {
        /// The sequence.
        seq: usize,
        /// Its tokens.
        tokens: &'a [Token],
        /// Whether the last token's logits are wanted.
        logits: bool,
    },
    /// Rows of any sequences (validated by [`Session::forward_batch`]).
    Batch(&'a [BatchRow]),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Rows::Chunk { tokens, .. } => tokens.len(),
            Rows::Batch(rows) => rows.len(),
        }
    }

    /// Row `t`: (sequence, token, logits wanted).
    fn get(&self, t: usize) -> (usize, Token, bool) {
        match *self {
            Rows::Chunk { seq, tokens, logits } => (seq, tokens[t], logits && t + 1 == tokens.len()),
            Rows::Batch(rows) => (rows[t].seq as usize, rows[t].token, rows[t].logits),
        }
    }
}

impl Session {
    /// Runs `rows` (at most `n_batch`, each sequence's fitting its context: checked by the
    /// callers) through the model after the cached positions, and computes the logits of the
    /// rows that want them. A cancelled pass leaves every sequence's length as it was.
    pub(crate) fn forward(&mut self, rows: Rows) -> Result<()> {
        if self.backend.is_some() {
            return self.forward_on_backend(rows);
        }
        let model = Arc::clone(&self.model);
        let t_n = rows.len();
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
                row_seq: a.slice(b.row_seq),
                row_pos: a.slice(b.row_pos),
                row_flags: a.slice(b.row_flags),
                form: MatmulForm::Batch,
            }
        };
        // Each row's sequence, position and flags; the rows per sequence.
        self.seq_rows.iter_mut().for_each(|n| *n = 0);
        for t in 0..t_n {
            let (seq, _, logits) = rows.get(t);
            act.row_seq[t] = seq as u32;
            act.row_pos[t] = (self.seq_len[seq] + self.seq_rows[seq] as usize) as u32;
            act.row_flags[t] = if logits { ROW_LOGITS } else { 0 };
            self.seq_rows[seq] += 1;
        }
        for t in 0..t_n {
            if self.seq_rows[act.row_seq[t] as usize] > 1 {
                act.row_flags[t] |= ROW_MULTI;
            }
        }
        self.seq_logits_row.iter_mut().for_each(|r| *r = u32::MAX);
        if t_n > 1 && act.row_flags[..t_n].iter().all(|f| f & ROW_MULTI == 0) {
            act.form = MatmulForm::Gemv;
        }
        // Only a one-sequence chunk can skip the last layer's FFN for all but its last row.
        let one_chunk = matches!(rows, Rows::Chunk { .. });
        if let Some(st) = &self.streamer {
            st.begin_pass()?;
        }
        let mut clock = self.profiler.start();
        self.embed(&rows, &mut act)?;
        self.profiler.lap(ProfileOp::Embedding, &mut clock);
        for (layer, lw) in model.layers.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RuntimeError::Cancelled);
            }
            let held = self.acquire_weights(Step::Layer(layer))?;
            self.attention_block(layer, lw, held, t_n, &mut act, &mut clock)?;
            let last_rows_only = one_chunk && layer + 1 == model.layers.len();
            self.ffn_block(lw, held, t_n, last_rows_only, &mut act, &mut clock)?;
            self.release_weights(held);
        }
        for t in 0..t_n {
            let (seq, token, _) = rows.get(t);
            // SAFETY: &mut self; a sequence's token ids are n_ctx cells and every row's position
            // is below n_ctx (checked by the callers); nothing else borrows them.
            unsafe { *self.kv.tokens_ptr(&self.arena, seq).add(act.row_pos[t] as usize) = token };
        }
        for (len, &n) in self.seq_len.iter_mut().zip(&self.seq_rows) {
            *len += n as usize;
        }
        if act.row_flags[..t_n].iter().any(|f| f & ROW_LOGITS != 0) {
            self.output_logits(t_n, &mut act)?;
            self.profiler.lap(ProfileOp::Logits, &mut clock);
            let mut n_out = 0;
            for t in 0..t_n {
                if act.row_flags[t] & ROW_LOGITS != 0 {
                    self.seq_logits_row[act.row_seq[t] as usize] = n_out;
                    n_out += 1;
                }
            }
        } else if let Some(st) = &self.streamer {
            for k in 0..model.output_chunks.len() {
                st.skip(Step::Output(k))?;
            }
        }
        Ok(())
    }

    /// [`forward`](Self::forward) on the session's backend: each row's token at its position,
    /// the logits of the rows that want them (one sequence: the last row's).
    fn forward_on_backend(&mut self, rows: Rows) -> Result<()> {
        let n_vocab = self.model.spec.n_vocab;
        let Some(backend) = self.backend.as_mut() else {
            return Ok(());
        };
        let base = self.seq_len[0];
        self.seq_logits_row[0] = u32::MAX;
        for t in 0..rows.len() {
            // As on the CPU, a cancelled or failed pass leaves the sequence as it was.
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RuntimeError::Cancelled);
            }
            let (_, token, logits) = rows.get(t);
            // SAFETY: the logits slot holds n_seq >= 1 rows of n_vocab and nothing else borrows
            // it during the pass (&mut self).
            let out = logits.then(|| unsafe { &mut self.arena.slice::<f32>(self.buffers.logits)[..n_vocab] });
            backend.step(token, base + t, out)?;
            // SAFETY: sequence 0's token ids are n_ctx cells; the position is below n_ctx (checked
            // by the callers).
            unsafe { *self.kv.tokens_ptr(&self.arena, 0).add(base + t) = token };
            if logits {
                self.seq_logits_row[0] = 0;
            }
        }
        self.seq_len[0] = base + rows.len();
        Ok(())
    }

    /// Waits for the streamed matrices of `step` (none: `None`, every matrix in RAM).
    fn acquire_weights(&self, step: Step) -> Result<Option<Held>> {
        match &self.streamer {
            Some(st) => st.acquire(step),
            None => Ok(None),
        }
    }

    /// Gives the staging slot of [`acquire_weights`](Self::acquire_weights) back.
    fn release_weights(&self, held: Option<Held>) {
        if let (Some(st), Some(h)) = (&self.streamer, held) {
            st.release(h);
        }
    }

    /// The embeddings of the rows' tokens into the residual stream and the RoPE tables of their
    /// positions.
    fn embed(&self, rows: &Rows, act: &mut Activations) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let e = sp.n_embd;
        let rb = model.embd.row_bytes;
        for t in 0..rows.len() {
            let tok = rows.get(t).1 as usize;
            let row = match (model.embedding_row_in_ram(tok), self.buffers.embd_rows) {
                (Some(r), _) => r,
                (None, Some(slot)) => {
                    // SAFETY: the slot holds n_batch rows (layout) and t < n_batch; &self is the
                    // pass's owner and nothing else uses the slot.
                    let buf = unsafe { &mut self.arena.slice(slot)[t * rb..(t + 1) * rb] };
                    self.read_embedding_row(tok, buf)?;
                    &*buf
                }
                (None, None) => {
                    return Err(RuntimeError::InvalidParameter {
                        name: "weight streaming",
                        problem: "the embedding is not in RAM and has no row buffer".into(),
                    })
                }
            };
            let x = &mut act.residual[t * e..(t + 1) * e];
            model.kernels.dequantize(model.embd.wtype, row, x)?;
            if let Some(sc) = sp.embed_scale {
                x.iter_mut().for_each(|v| *v *= sc);
            }
        }
        let half = sp.rope_dim / 2;
        for (ri, &(base, scale)) in self.ropes.pairs.iter().enumerate() {
            for t in 0..rows.len() {
                let off = (ri * self.params.n_batch + t) * half;
                let pos = act.row_pos[t] as usize;
                ops::rope_table(pos, sp.rope_dim, base, scale, &mut act.rope[off..off + half]);
            }
        }
        Ok(())
    }

    /// Reads the embedding row of `tok` from the model file (`pread`).
    fn read_embedding_row(&self, tok: usize, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let model = &*self.model;
        let Some(file) = model.stream_file() else {
            return Err(RuntimeError::InvalidParameter {
                name: "weight streaming",
                problem: "the embedding is not in RAM and the model file is not open".into(),
            });
        };
        let off = (model.embd.offset + tok * model.embd.row_bytes) as u64;
        file.read_exact_at(buf, off).map_err(|e| {
            RuntimeError::Io(std::io::Error::new(
                e.kind(),
                format!("reading an embedding row from the model file: {e} (was it truncated or replaced?)"),
            ))
        })
    }

    /// Norm, q/k/v projections, per-token biases, QK-norm and RoPE, the K/V rows into the cache,
    /// attention, the output projection (into `proj_out`).
    fn attention_block(
        &self,
        layer: usize,
        lw: &LayerWeights,
        held: Option<Held>,
        t_n: usize,
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
        self.project(&jobs, held, act.normed.as_ptr(), e, t_n, act.form)?;
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
        let (row_seq, row_pos) = (&*act.row_seq, &*act.row_pos);
        let per_token = |t: usize| {
            let cell = kv.cell(row_seq[t] as usize, row_pos[t] as usize);
            // SAFETY: row t's q, k and v rows and its K/V cache rows (its sequence's cell at its
            // position) are touched by this call alone; q, k, v hold t_n rows; the cell is in the
            // cache (position < n_ctx, sequence < n_seq).
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
                // SAFETY: the K and V rows of (cell, g) belong to this call alone and lie inside
                // the cache.
                let (kd, vd) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(cache.get().add(kv.k_row(layer, cell, g)), kv.row_k()),
                        std::slice::from_raw_parts_mut(cache.get().add(kv.v_row(layer, cell, g)), kv.row_v()),
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
        self.attention(layer, t_n, act.row_seq, act.row_pos, act.row_flags, act.q, act.attn_out)?;
        self.profiler.lap(ProfileOp::Attention, clock);
        let jobs = [MatmulJob {
            weight: lw.wo,
            out: SharedPtr(act.proj_out.as_mut_ptr()),
            stride: e,
        }];
        self.project(&jobs, held, act.attn_out.as_ptr(), att_dim, t_n, act.form)?;
        self.profiler.lap(ProfileOp::AttentionOutput, clock);
        Ok(())
    }

    /// The attention output into the residual, norm, gate/up projections, activation, down
    /// projection, into the residual. After the last layer's attention of a one-sequence chunk
    /// only the last token's state is used (for the logits), so there (`last_row_only`) the FFN
    /// runs for that token alone.
    fn ffn_block(
        &self,
        lw: &LayerWeights,
        held: Option<Held>,
        t_n: usize,
        last_row_only: bool,
        act: &mut Activations,
        clock: &mut Option<Instant>,
    ) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let (e, eps, ff) = (sp.n_embd, sp.rms_eps, sp.n_ff);
        // As in llama.cpp's graph (which also decides which of its matmul kernels, and so which
        // summation order, runs): tokens t0.. go on, their FFN rows counted from 0.
        let t0 = if last_row_only { t_n - 1 } else { 0 };
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
        self.project(&jobs, held, act.normed.as_ptr(), e, t_f, act.form)?;
        self.profiler.lap(ProfileOp::FfnGateUp, clock);
        self.ffn_activation(t_f, act)?;
        let jobs = [MatmulJob {
            weight: lw.down,
            out: SharedPtr(act.proj_out.as_mut_ptr()),
            stride: e,
        }];
        self.profiler.lap(ProfileOp::FfnActivation, clock);
        self.project(&jobs, held, act.ffn_gate.as_ptr(), ff, t_f, act.form)?;
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

    /// The output norm of the residual of each row that wants logits and their logits
    /// (softcapped where the model says so) into the logits slot, one row each in row order.
    fn output_logits(&self, t_n: usize, act: &mut Activations) -> Result<()> {
        let model = &*self.model;
        let sp = &model.spec;
        let e = sp.n_embd;
        let mut n_out = 0;
        for t in 0..t_n {
            if act.row_flags[t] & ROW_LOGITS == 0 {
                continue;
            }
            ops::rms_norm(
                &act.residual[t * e..(t + 1) * e],
                &model.output_norm,
                sp.rms_eps,
                &mut act.normed[n_out * e..(n_out + 1) * e],
            );
            n_out += 1;
        }
        // SAFETY: the logits slot is disjoint from the activations; &self is the pass's owner.
        let logits = unsafe { self.arena.slice(self.buffers.logits) };
        // The output matrix's chunks (one unless it is streamed), each into its rows' logits.
        for (k, c) in model.output_chunks.iter().enumerate() {
            let jobs = [MatmulJob {
                weight: c.weight,
                out: SharedPtr(logits[c.first_row..].as_mut_ptr()),
                stride: sp.n_vocab,
            }];
            let held = self.acquire_weights(Step::Output(k))?;
            let done = self.project(&jobs, held, act.normed.as_ptr(), e, n_out, act.form);
            self.release_weights(held);
            done?;
        }
        if let Some(cap) = sp.final_logit_softcap {
            logits[..n_out * sp.n_vocab]
                .iter_mut()
                .for_each(|l| *l = cap * (*l / cap).tanh());
        }
        Ok(())
    }
}
