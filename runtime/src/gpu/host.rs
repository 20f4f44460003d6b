//! The [`DecodeProgram`] run on the CPU with the device kernels' arithmetic (f32 activations,
//! an f16 KV cache, each operation as its CUDA kernel computes it up to summation order): the
//! reference a GPU backend is held to, and the test that the program computes the model (its
//! logits against the session's own forward pass). Not a fast path: one thread, the matrix
//! products through the CPU kernels' f32-activation GEMV.

use std::sync::Arc;

use super::program::{Buf, DecodeProgram, Op};
use super::DecodeBackend;
use crate::error::{Result, RuntimeError};
use crate::model::Model;
use crate::ops::{f16_to_f32, f32_to_f16};

/// The decode program on the CPU.
pub struct HostBackend {
    model: Arc<Model>,
    program: DecodeProgram,
    n_ctx: usize,
    bufs: Vec<Vec<f32>>,
    /// Per layer: `n_ctx` rows of K, then `n_ctx` rows of V (f16 bits).
    kv: Vec<u16>,
    /// One dequantized row.
    row: Vec<f32>,
    /// Attention scores of one head.
    scores: Vec<f32>,
}

impl HostBackend {
    /// The program of `model` with a KV cache of `n_ctx` positions. Every matrix must be in RAM.
    pub fn new(model: Arc<Model>, n_ctx: usize) -> Result<HostBackend> {
        let program = DecodeProgram::new(&model)?;
        if program.matrices.iter().any(|m| m.ram_at.is_none()) {
            return Err(RuntimeError::InvalidParameter {
                name: "gpu",
                problem: "the reference backend needs every matrix in RAM (no --ram-budget)".into(),
            });
        }
        let s = program.shape;
        let bufs = Buf::ALL.iter().map(|&b| vec![0f32; s.len(b)]).collect();
        let widest = program.matrices.iter().map(|m| m.cols).max().unwrap_or(0);
        Ok(HostBackend {
            kv: vec![0u16; program.kv_cache_bytes(n_ctx) / 2],
            row: vec![0f32; widest.max(s.n_embd)],
            scores: vec![0f32; n_ctx],
            bufs,
            program,
            model,
            n_ctx,
        })
    }

    /// The bytes of matrix `m`.
    fn matrix(&self, m: usize) -> &[u8] {
        let pm = &self.program.matrices[m];
        let at = pm.ram_at.unwrap_or(0);
        &self.model.ram()[at..at + pm.bytes()]
    }

    fn run(&mut self, op: Op, pos: usize) -> Result<()> {
        let s = self.program.shape;
        let kernels = self.model.kernels();
        match op {
            Op::RmsNorm { x, w, y, rows, n } => {
                let wv = &self.program.vectors[w.0];
                for r in 0..rows {
                    let src = &self.bufs[x.index()][r * n..(r + 1) * n];
                    let ss: f32 = src.iter().map(|v| v * v).sum();
                    let scale = 1.0 / (ss / n as f32 + s.eps).sqrt();
                    let tmp = &mut self.row[..n];
                    tmp.iter_mut()
                        .zip(src.iter().zip(wv))
                        .for_each(|(t, (v, g))| *t = v * scale * g);
                    self.bufs[y.index()][r * n..(r + 1) * n].copy_from_slice(tmp);
                }
            }
            Op::MatVec { matrix, x, y, at } => {
                let pm = self.program.matrices[matrix];
                let mut out = std::mem::take(&mut self.bufs[y.index()]);
                let mut row = std::mem::take(&mut self.row);
                {
                    let w = self.matrix(matrix);
                    let xs = &self.bufs[x.index()][..pm.cols];
                    // The CPU kernels' f32-activation product where the tier has one, else
                    // each row dequantized and summed.
                    let y = &mut out[at..at + pm.rows];
                    if kernels.matmul_f32(pm.wtype, w, pm.rows, xs, 1, y).is_err() {
                        for (r, yr) in y.iter_mut().enumerate() {
                            let rb = &w[r * pm.row_bytes..(r + 1) * pm.row_bytes];
                            kernels.dequantize(pm.wtype, rb, &mut row[..pm.cols])?;
                            *yr = row[..pm.cols].iter().zip(xs).map(|(a, b)| a * b).sum();
                        }
                    }
                }
                self.bufs[y.index()] = out;
                self.row = row;
            }
            Op::AddVec { y, b } => {
                let bv = &self.program.vectors[b.0];
                self.bufs[y.index()].iter_mut().zip(bv).for_each(|(a, b)| *a += b);
            }
            Op::Rope { x, heads, base, scale } => {
                let half = s.rope_dim / 2;
                for h in 0..heads {
                    let xh = &mut self.bufs[x.index()][h * s.head_dim..(h + 1) * s.head_dim];
                    for i in 0..half {
                        let theta = pos as f32 * scale * base.powf(-2.0 * i as f32 / s.rope_dim as f32);
                        let (sn, c) = theta.sin_cos();
                        let (a, b) = if s.neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
                        let (x0, x1) = (xh[a], xh[b]);
                        xh[a] = x0 * c - x1 * sn;
                        xh[b] = x0 * sn + x1 * c;
                    }
                }
            }
            Op::StoreKv { layer } => {
                let (k_at, v_at) = self.kv_rows(layer, pos);
                let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
                for i in 0..kw {
                    self.kv[k_at + i] = f32_to_f16(self.bufs[Buf::K.index()][i]);
                }
                for i in 0..vw {
                    self.kv[v_at + i] = f32_to_f16(self.bufs[Buf::V.index()][i]);
                }
            }
            Op::Attention { layer, window } => {
                let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
                let npos = pos + 1 - lo;
                let group = s.n_head / s.n_head_kv;
                let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
                let (k0, _) = self.kv_rows(layer, lo);
                let (_, v0) = self.kv_rows(layer, lo);
                for h in 0..s.n_head {
                    let g = h / group;
                    let q = &self.bufs[Buf::Q.index()][h * s.head_dim..(h + 1) * s.head_dim];
                    let mut mx = f32::NEG_INFINITY;
                    for p in 0..npos {
                        let kr = &self.kv[k0 + p * kw + g * s.head_dim..][..s.head_dim];
                        let d: f32 = q.iter().zip(kr).map(|(a, b)| a * f16_to_f32(*b)).sum();
                        self.scores[p] = d * s.attn_scale;
                        mx = mx.max(self.scores[p]);
                    }
                    let mut sum = 0f32;
                    for sc in &mut self.scores[..npos] {
                        *sc = (*sc - mx).exp();
                        sum += *sc;
                    }
                    for i in 0..s.head_dim_v {
                        let mut acc = 0f32;
                        for p in 0..npos {
                            acc += self.scores[p] * f16_to_f32(self.kv[v0 + p * vw + g * s.head_dim_v + i]);
                        }
                        self.bufs[Buf::AttnOut.index()][h * s.head_dim_v + i] = acc / sum;
                    }
                }
            }
            Op::Glu { silu } => {
                let (gi, ui) = (Buf::Gate.index(), Buf::Up.index());
                for i in 0..s.n_ff {
                    let (g, u) = (self.bufs[gi][i], self.bufs[ui][i]);
                    self.bufs[gi][i] = if silu {
                        g / (1.0 + (-g).exp()) * u
                    } else {
                        0.5 * g * (1.0 + (0.797_884_6 * (g + 0.044_715 * g * g * g)).tanh()) * u
                    };
                }
            }
            Op::Add { y, x } => {
                for i in 0..s.len(y) {
                    let v = self.bufs[x.index()][i];
                    self.bufs[y.index()][i] += v;
                }
            }
            Op::Softcap { cap } => {
                self.bufs[Buf::Logits.index()]
                    .iter_mut()
                    .for_each(|l| *l = cap * (*l / cap).tanh());
            }
        }
        Ok(())
    }

    /// Offsets of the K and V rows of `layer` at `pos` in the cache.
    fn kv_rows(&self, layer: usize, pos: usize) -> (usize, usize) {
        let s = self.program.shape;
        let (kw, vw) = (s.n_head_kv * s.head_dim, s.n_head_kv * s.head_dim_v);
        let base = layer * self.n_ctx * (kw + vw);
        (base + pos * kw, base + self.n_ctx * kw + pos * vw)
    }
}

impl DecodeBackend for HostBackend {
    fn name(&self) -> &'static str {
        "host reference of the device program"
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn step(&mut self, token: u32, pos: usize, logits: Option<&mut [f32]>) -> Result<()> {
        let s = self.program.shape;
        if pos >= self.n_ctx {
            return Err(RuntimeError::ContextFull {
                needed: pos + 1,
                n_ctx: self.n_ctx,
            });
        }
        let (m, r) = self.program.embedding_row(token as usize);
        let pm = self.program.matrices[m];
        let mut x = std::mem::take(&mut self.bufs[Buf::Residual.index()]);
        let done = self.model.kernels().dequantize(
            pm.wtype,
            &self.matrix(m)[r * pm.row_bytes..(r + 1) * pm.row_bytes],
            &mut x,
        );
        x.iter_mut().for_each(|v| *v *= s.embed_scale);
        self.bufs[Buf::Residual.index()] = x;
        done?;
        let want = logits.is_some();
        for i in 0..self.program.steps.len() {
            let step = self.program.steps[i].step;
            if !want && matches!(step, crate::residency::Step::Output(_)) {
                continue;
            }
            for j in 0..self.program.steps[i].ops.len() {
                let op = self.program.steps[i].ops[j];
                self.run(op, pos)?;
            }
        }
        if let Some(l) = logits {
            l[..s.n_vocab].copy_from_slice(&self.bufs[Buf::Logits.index()]);
        }
        Ok(())
    }
}
