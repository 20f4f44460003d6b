//! The decode step of one sequence as a fixed list of device operations, built once from a
//! [`Model`]: what a GPU backend launches per token, one kernel per [`Op`]. The program is
//! independent of a GPU API, so the same list runs on the CPU ([`super::host`], the reference
//! the tests hold to the session's own forward pass) and on CUDA (`super::cuda`, feature
//! `cuda`): a wiring mistake (a wrong buffer, bias, norm, RoPE setting or window) shows on any
//! machine, not only on one with a GPU.
//!
//! Activations are f32; the KV cache is f16 (one query per head against it). The operations
//! group by the residency [`Step`] whose matrices they read, so a backend can make each step's
//! weights present (resident, or copied into a slot) before running its operations.

use tensorsharp_kernels::WType;
use tensorsharp_models::arch::{Activation, RopeStyle};

use crate::error::{Result, RuntimeError};
use crate::model::{Model, Weight};
use crate::residency::{Placement, Step};

/// An activation buffer of the program (f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The residual stream (`n_embd`).
    Residual,
    /// A normed copy of the residual (`n_embd`).
    Normed,
    /// Queries (`n_head * head_dim`).
    Q,
    /// Keys of this token (`n_head_kv * head_dim`).
    K,
    /// Values of this token (`n_head_kv * head_dim_v`).
    V,
    /// Attention output (`n_head * head_dim_v`).
    AttnOut,
    /// Output of the attention output projection, then of the FFN down projection (`n_embd`).
    Proj,
    /// FFN gate, then the activation times up (`n_ff`).
    Gate,
    /// FFN up (`n_ff`).
    Up,
    /// The logits (`n_vocab`).
    Logits,
}

impl Buf {
    /// Every buffer, in index order.
    pub const ALL: [Buf; 10] = [
        Buf::Residual,
        Buf::Normed,
        Buf::Q,
        Buf::K,
        Buf::V,
        Buf::AttnOut,
        Buf::Proj,
        Buf::Gate,
        Buf::Up,
        Buf::Logits,
    ];

    /// Index into [`Buf::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A small f32 vector of the program (a norm's weights or a bias), by index into
/// [`DecodeProgram::vectors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VecId(pub usize);

/// One device operation of the decode step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `y = x / rms(x) * w`, over `rows` rows of `n` (in place when `x == y`).
    RmsNorm {
        /// Input.
        x: Buf,
        /// Weights (`n`).
        w: VecId,
        /// Output.
        y: Buf,
        /// Rows.
        rows: usize,
        /// Elements per row.
        n: usize,
    },
    /// `y[at..at + rows] = matrix · x` (matrix by index into [`DecodeProgram::matrices`]).
    MatVec {
        /// The matrix.
        matrix: usize,
        /// Input (`cols` values).
        x: Buf,
        /// Output.
        y: Buf,
        /// First output element.
        at: usize,
    },
    /// `y += b`.
    AddVec {
        /// The vector added to.
        y: Buf,
        /// The bias.
        b: VecId,
    },
    /// Rotary embedding of `heads` rows of `head_dim` in place, at the step's position.
    Rope {
        /// Queries or keys.
        x: Buf,
        /// Rows.
        heads: usize,
        /// Frequency base.
        base: f32,
        /// Frequency scale.
        scale: f32,
    },
    /// This token's K and V rows into the f16 cache of `layer` at the step's position.
    StoreKv {
        /// The layer.
        layer: usize,
    },
    /// `AttnOut` = attention of `Q` over the cached positions of `layer` (the last `window`
    /// of them when the layer has a sliding window).
    Attention {
        /// The layer.
        layer: usize,
        /// Sliding window, in positions.
        window: Option<usize>,
    },
    /// `Gate = act(Gate) * Up` (SwiGLU or GeGLU, tanh form).
    Glu {
        /// SiLU (else GELU).
        silu: bool,
    },
    /// `y += x`.
    Add {
        /// Destination.
        y: Buf,
        /// Addend.
        x: Buf,
    },
    /// `Logits = cap * tanh(Logits / cap)`.
    Softcap {
        /// The cap.
        cap: f32,
    },
}

/// A matrix the program reads.
#[derive(Debug, Clone, Copy)]
pub struct ProgramMatrix {
    /// Element type.
    pub wtype: WType,
    /// Rows (outputs).
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
    /// The step that reads it.
    pub step: Step,
    /// Where its bytes are in [`Model::ram`], when they are in RAM.
    pub ram_at: Option<usize>,
}

impl ProgramMatrix {
    fn of(w: &Weight, step: Step) -> ProgramMatrix {
        ProgramMatrix {
            wtype: w.wtype,
            rows: w.rows,
            cols: w.cols,
            row_bytes: w.row_bytes,
            step,
            ram_at: match w.placement {
                Placement::Ram { at } => Some(at as usize),
                _ => None,
            },
        }
    }

    /// Bytes of the matrix.
    pub fn bytes(&self) -> usize {
        self.rows * self.row_bytes
    }
}

/// The operations of one residency step.
#[derive(Debug, Clone)]
pub struct StepOps {
    /// The step (whose matrices the operations read).
    pub step: Step,
    /// The operations, in order.
    pub ops: Vec<Op>,
}

/// The shapes the executors size their buffers by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Layers.
    pub n_layers: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// KV heads.
    pub n_head_kv: usize,
    /// Key (query) head width.
    pub head_dim: usize,
    /// Value head width.
    pub head_dim_v: usize,
    /// FFN width.
    pub n_ff: usize,
    /// Vocabulary.
    pub n_vocab: usize,
    /// Rotated dimensions per head.
    pub rope_dim: usize,
    /// NeoX pairs (`i`, `i + rope_dim / 2`), else interleaved (`2i`, `2i + 1`).
    pub neox: bool,
    /// RMS norm epsilon.
    pub eps: f32,
    /// Attention score scale.
    pub attn_scale: f32,
    /// Embedding scale (1 when the model has none).
    pub embed_scale: f32,
}

impl Shape {
    /// Elements of buffer `b`.
    pub fn len(&self, b: Buf) -> usize {
        match b {
            Buf::Residual | Buf::Normed | Buf::Proj => self.n_embd,
            Buf::Q => self.n_head * self.head_dim,
            Buf::K => self.n_head_kv * self.head_dim,
            Buf::V => self.n_head_kv * self.head_dim_v,
            Buf::AttnOut => self.n_head * self.head_dim_v,
            Buf::Gate | Buf::Up => self.n_ff,
            Buf::Logits => self.n_vocab,
        }
    }
}

/// The decode step of a model: the embedding lookup, then [`StepOps`] per layer and per output
/// chunk.
#[derive(Debug, Clone)]
pub struct DecodeProgram {
    /// Shapes.
    pub shape: Shape,
    /// The matrices, in the residency planner's order (each layer's seven, the output chunks,
    /// the untied embedding).
    pub matrices: Vec<ProgramMatrix>,
    /// Norm weights and biases.
    pub vectors: Vec<Vec<f32>>,
    /// The embedding's matrices: (first token, matrix index), ascending (the output chunks
    /// when the embedding is tied to the output matrix).
    pub embedding: Vec<(usize, usize)>,
    /// The steps in forward order.
    pub steps: Vec<StepOps>,
}

impl DecodeProgram {
    /// The program of `model`'s decode step.
    pub fn new(model: &Model) -> Result<DecodeProgram> {
        let sp = &model.spec;
        if [sp.n_embd, sp.n_ff, sp.head_dim, sp.head_dim_v]
            .iter()
            .any(|n| !n.is_multiple_of(32))
        {
            return Err(RuntimeError::InvalidParameter {
                name: "gpu",
                problem: format!(
                    "the device kernels need widths in multiples of 32 (n_embd {}, n_ff {}, head_dim {}, head_dim_v {})",
                    sp.n_embd, sp.n_ff, sp.head_dim, sp.head_dim_v
                ),
            });
        }
        let shape = Shape {
            n_layers: sp.n_layers,
            n_embd: sp.n_embd,
            n_head: sp.n_head,
            n_head_kv: sp.n_head_kv,
            head_dim: sp.head_dim,
            head_dim_v: sp.head_dim_v,
            n_ff: sp.n_ff,
            n_vocab: sp.n_vocab,
            rope_dim: sp.rope_dim,
            neox: sp.rope_style == RopeStyle::Neox,
            eps: sp.rms_eps,
            attn_scale: sp.attn_scale,
            embed_scale: sp.embed_scale.unwrap_or(1.0),
        };
        let mut p = DecodeProgram {
            shape,
            matrices: Vec::new(),
            vectors: Vec::new(),
            embedding: Vec::new(),
            steps: Vec::new(),
        };
        let (e, hd) = (sp.n_embd, sp.head_dim);
        for (il, lw) in model.layers.iter().enumerate() {
            let step = Step::Layer(il);
            let m0 = p.matrices.len();
            for w in [&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.gate, &lw.up, &lw.down] {
                p.matrices.push(ProgramMatrix::of(w, step));
            }
            let [wq, wk, wv, wo, gate, up, down] = std::array::from_fn(|j| m0 + j);
            let la = &sp.layers[il];
            let mut ops = Vec::new();
            let attn_norm = p.vector(&lw.attn_norm);
            ops.push(Op::RmsNorm {
                x: Buf::Residual,
                w: attn_norm,
                y: Buf::Normed,
                rows: 1,
                n: e,
            });
            for (m, y, b) in [(wq, Buf::Q, &lw.bq), (wk, Buf::K, &lw.bk), (wv, Buf::V, &lw.bv)] {
                ops.push(Op::MatVec {
                    matrix: m,
                    x: Buf::Normed,
                    y,
                    at: 0,
                });
                if let Some(b) = b {
                    let b = p.vector(b);
                    ops.push(Op::AddVec { y, b });
                }
            }
            for (x, heads, norm) in [(Buf::Q, sp.n_head, &lw.q_norm), (Buf::K, sp.n_head_kv, &lw.k_norm)] {
                if let Some(n) = norm {
                    let w = p.vector(n);
                    ops.push(Op::RmsNorm {
                        x,
                        w,
                        y: x,
                        rows: heads,
                        n: hd,
                    });
                }
                ops.push(Op::Rope {
                    x,
                    heads,
                    base: la.rope_base,
                    scale: la.rope_scale,
                });
            }
            ops.push(Op::StoreKv { layer: il });
            ops.push(Op::Attention {
                layer: il,
                window: la.sliding_window,
            });
            let post_attn = lw.post_attn_norm.as_deref().map(|n| p.vector(n));
            project_into_residual(&mut ops, wo, Buf::AttnOut, post_attn, e);
            let ffn_norm = p.vector(&lw.ffn_norm);
            ops.push(Op::RmsNorm {
                x: Buf::Residual,
                w: ffn_norm,
                y: Buf::Normed,
                rows: 1,
                n: e,
            });
            for (m, y) in [(gate, Buf::Gate), (up, Buf::Up)] {
                ops.push(Op::MatVec {
                    matrix: m,
                    x: Buf::Normed,
                    y,
                    at: 0,
                });
            }
            ops.push(Op::Glu {
                silu: sp.activation == Activation::Silu,
            });
            let post_ffw = lw.post_ffw_norm.as_deref().map(|n| p.vector(n));
            project_into_residual(&mut ops, down, Buf::Gate, post_ffw, e);
            p.steps.push(StepOps { step, ops });
        }
        let output_norm = p.vector(&model.output_norm);
        // In the planner's chunks, so that a GPU plan's placement indexes these matrices.
        let chunks = model.planned_output_chunks();
        let n_chunks = chunks.len();
        for (k, c) in chunks.iter().enumerate() {
            let step = Step::Output(k);
            let m = p.matrices.len();
            p.matrices.push(ProgramMatrix::of(&c.weight, step));
            if sp.tied_output {
                p.embedding.push((c.first_row, m));
            }
            let mut ops = Vec::new();
            if k == 0 {
                ops.push(Op::RmsNorm {
                    x: Buf::Residual,
                    w: output_norm,
                    y: Buf::Normed,
                    rows: 1,
                    n: e,
                });
            }
            ops.push(Op::MatVec {
                matrix: m,
                x: Buf::Normed,
                y: Buf::Logits,
                at: c.first_row,
            });
            if k + 1 == n_chunks {
                if let Some(cap) = sp.final_logit_softcap {
                    ops.push(Op::Softcap { cap });
                }
            }
            p.steps.push(StepOps { step, ops });
        }
        if !sp.tied_output {
            p.embedding.push((0, p.matrices.len()));
            p.matrices.push(ProgramMatrix::of(&model.embd, Step::Embedding));
        }
        Ok(p)
    }

    fn vector(&mut self, v: &[f32]) -> VecId {
        self.vectors.push(v.to_vec());
        VecId(self.vectors.len() - 1)
    }

    /// The matrix holding `token`'s embedding row and the row's index in it.
    pub fn embedding_row(&self, token: usize) -> (usize, usize) {
        let i = self.embedding.partition_point(|&(first, _)| first <= token).max(1) - 1;
        let (first, m) = self.embedding[i];
        (m, token - first)
    }

    /// Bytes of the f16 KV cache for `n_ctx` positions.
    pub fn kv_cache_bytes(&self, n_ctx: usize) -> usize {
        let s = &self.shape;
        s.n_layers * n_ctx * s.n_head_kv * (s.head_dim + s.head_dim_v) * 2
    }

    /// Whether every matrix type has a device kernel (F32, F16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K,
    /// Q5_K, Q6_K); the first one without, when not.
    pub fn unsupported_type(&self) -> Option<WType> {
        self.matrices
            .iter()
            .map(|m| m.wtype)
            .find(|t| device_type_code(*t).is_none())
    }
}

/// A block's output projection (`matrix · x` into `Proj`), its post-norm where the model has
/// one (Gemma 3), and the residual add: the end of the attention and of the FFN block.
fn project_into_residual(ops: &mut Vec<Op>, matrix: usize, x: Buf, post_norm: Option<VecId>, e: usize) {
    ops.push(Op::MatVec {
        matrix,
        x,
        y: Buf::Proj,
        at: 0,
    });
    if let Some(w) = post_norm {
        ops.push(Op::RmsNorm {
            x: Buf::Proj,
            w,
            y: Buf::Proj,
            rows: 1,
            n: e,
        });
    }
    ops.push(Op::Add {
        y: Buf::Residual,
        x: Buf::Proj,
    });
}

/// The type code of `t` in the device kernels' `type` argument (`ts_cuda_quant.cuh`), when they
/// implement it.
pub fn device_type_code(t: WType) -> Option<i32> {
    Some(match t {
        WType::F32 => 0,
        WType::F16 => 1,
        WType::Q4_0 => 2,
        WType::Q4_1 => 3,
        WType::Q5_0 => 6,
        WType::Q8_0 => 8,
        WType::Q4_K => 12,
        WType::Q5_K => 13,
        WType::Q6_K => 14,
        _ => return None,
    })
}
