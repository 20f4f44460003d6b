//! Architecture specs as data: everything the executor needs to know about a model family,
//! resolved from GGUF metadata (hyperparameters from metadata only) and the tensor table.
//!
//! Supported: `llama` (SmolLM2, TinyLlama, Llama 2/3, Mistral; tied or untied output),
//! `qwen2` (QKV biases) and `gemma3` (embedding scaling, QK-norm, GeGLU, post-attention and
//! post-FFN norms, interleaved sliding-window and global layers with their own RoPE bases).

use crate::gguf::GgufFile;
use crate::quant::GgmlType;
use crate::{ModelError, Result};

/// A supported model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama`
    Llama,
    /// `qwen2`
    Qwen2,
    /// `gemma3`
    Gemma3,
}

impl Arch {
    /// The family named by `general.architecture`.
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_owned())),
        }
    }

    /// The GGUF name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// How RoPE pairs up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]) — llama.
    Interleaved,
    /// Halves (x[i], x[i + d/2]) — GPT-NeoX, qwen2, gemma.
    Neox,
}

/// The feed-forward activation (applied to the gate, times the up projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU).
    Silu,
    /// GELU, tanh approximation (GeGLU).
    GeluTanh,
}

/// Per-layer attention settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// `Some(w)`: the layer attends to the last `w` positions only.
    pub sliding_window: Option<usize>,
    /// RoPE base frequency of this layer.
    pub rope_base: f32,
    /// RoPE position scale (1 / linear scaling factor).
    pub rope_scale: f32,
}

/// Everything the executor needs about a model.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Family.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of a query/key head.
    pub head_dim: usize,
    /// Dimension of a value head.
    pub head_dim_v: usize,
    /// Vocabulary size (rows of the embedding).
    pub n_vocab: usize,
    /// Training context length.
    pub n_ctx_train: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Embedding multiplier (gemma: sqrt(n_embd)).
    pub embed_scale: Option<f32>,
    /// Q/K/V projections have biases (qwen2).
    pub qkv_bias: bool,
    /// Per-head RMSNorm of Q and K (gemma3).
    pub qk_norm: bool,
    /// RMSNorm after attention and after the FFN, before the residual add (gemma3).
    pub post_norms: bool,
    /// Multiplier of Q·K.
    pub attn_scale: f32,
    /// Final logit soft-capping (`cap * tanh(x / cap)`), if any.
    pub final_logit_softcap: Option<f32>,
    /// The output projection is the token embedding (no `output.weight`).
    pub tied_output: bool,
    /// Per-layer attention settings.
    pub layers: Vec<LayerAttention>,
}

fn need_u(f: &GgufFile, key: &str) -> Result<usize> {
    let v = f.get_u64(key)?.ok_or_else(|| bad(key, "missing"))?;
    if v == 0 || v > 1 << 24 {
        return Err(bad(key, format!("{v} is out of range")));
    }
    Ok(v as usize)
}

fn bad(key: &str, problem: impl Into<String>) -> ModelError {
    ModelError::BadHyperparameter {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

impl ModelSpec {
    /// Resolves the spec of an open file, or says which key or tensor is wrong.
    pub fn from_gguf(f: &GgufFile) -> Result<ModelSpec> {
        let name = f
            .architecture()
            .ok_or_else(|| ModelError::UnsupportedArchitecture("(no general.architecture)".into()))?;
        let arch = Arch::from_name(name)?;
        let k = |s: &str| format!("{name}.{s}");
        let n_layers = need_u(f, &k("block_count"))?;
        // Every block has at least its norm and four attention and three FFN matrices: a block
        // count the tensor table cannot hold is refused before anything is sized by it (a 3 KiB
        // file claiming 16 million blocks made the per-layer tables take 18 GB; found by the
        // gguf_reader fuzz target).
        if n_layers > f.tensors().len() / 8 {
            return Err(bad(
                &k("block_count"),
                format!(
                    "{n_layers} blocks, but the file has only {} tensors (each block needs at least 8)",
                    f.tensors().len()
                ),
            ));
        }
        let n_embd = need_u(f, &k("embedding_length"))?;
        let n_ff = need_u(f, &k("feed_forward_length"))?;
        let n_head = need_u(f, &k("attention.head_count"))?;
        let n_head_kv = match f.get_u64(&k("attention.head_count_kv"))? {
            None => n_head,
            Some(_) => need_u(f, &k("attention.head_count_kv"))?,
        };
        if n_head % n_head_kv != 0 {
            return Err(bad(
                &k("attention.head_count_kv"),
                format!("{n_head} query heads are not a multiple of {n_head_kv} kv heads"),
            ));
        }
        let head_dim = match f.get_u64(&k("attention.key_length"))? {
            Some(_) => need_u(f, &k("attention.key_length"))?,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => return Err(bad(&k("embedding_length"), "not a multiple of the head count")),
        };
        let head_dim_v = match f.get_u64(&k("attention.value_length"))? {
            Some(_) => need_u(f, &k("attention.value_length"))?,
            None => head_dim,
        };
        let rope_dim = match f.get_u64(&k("rope.dimension_count"))? {
            Some(_) => need_u(f, &k("rope.dimension_count"))?,
            None => head_dim,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(bad(
                &k("rope.dimension_count"),
                format!("{rope_dim} with head dimension {head_dim}"),
            ));
        }
        let rms_eps = f.get_f64(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5) as f32;
        if !(rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(bad(&k("attention.layer_norm_rms_epsilon"), format!("{rms_eps}")));
        }
        let rope_base = f.get_f64(&k("rope.freq_base"))?.unwrap_or(10000.0) as f32;
        if !(rope_base > 1.0 && rope_base.is_finite()) {
            return Err(bad(&k("rope.freq_base"), format!("{rope_base}")));
        }
        let rope_scale = match (
            f.get_str(&k("rope.scaling.type"))?,
            f.get_f64(&k("rope.scaling.factor"))?,
        ) {
            (Some("linear"), Some(fac)) | (None, Some(fac)) if fac > 0.0 => 1.0 / fac as f32,
            (None | Some("none"), _) => 1.0,
            (Some(t), _) => {
                return Err(bad(
                    &k("rope.scaling.type"),
                    format!("'{t}' is not supported (linear only)"),
                ))
            }
        };
        let n_ctx_train = f.get_u64(&k("context_length"))?.unwrap_or(2048) as usize;
        let emb = f.tensor("token_embd.weight").ok_or_else(|| ModelError::BadTensor {
            name: "token_embd.weight".into(),
            problem: "missing".into(),
        })?;
        if emb.dims.len() != 2 || emb.dims[0] as usize != n_embd {
            return Err(ModelError::BadTensor {
                name: emb.name.clone(),
                problem: format!("shape {:?}, expected [{n_embd}, n_vocab]", emb.dims),
            });
        }
        let n_vocab = emb.dims[1] as usize;
        let tied_output = f.tensor("output.weight").is_none();

        let global = LayerAttention {
            sliding_window: None,
            rope_base,
            rope_scale,
        };
        let (rope_style, activation, embed_scale, qkv_bias, qk_norm, post_norms, attn_scale, layers) = match arch {
            Arch::Llama => (
                RopeStyle::Interleaved,
                Activation::Silu,
                None,
                false,
                false,
                false,
                1.0 / (head_dim as f32).sqrt(),
                vec![global; n_layers],
            ),
            Arch::Qwen2 => (
                RopeStyle::Neox,
                Activation::Silu,
                None,
                true,
                false,
                false,
                1.0 / (head_dim as f32).sqrt(),
                vec![global; n_layers],
            ),
            Arch::Gemma3 => {
                // Every 6th layer is global; the others slide over `sliding_window` positions
                // with RoPE base 10000 (as in the reference implementation).
                let window = need_u(f, &k("attention.sliding_window"))?;
                let local = LayerAttention {
                    sliding_window: Some(window),
                    rope_base: 10000.0,
                    rope_scale: 1.0,
                };
                let layers = (0..n_layers)
                    .map(|il| if il % 6 < 5 { local } else { global })
                    .collect();
                (
                    RopeStyle::Neox,
                    Activation::GeluTanh,
                    Some((n_embd as f32).sqrt()),
                    false,
                    true,
                    true,
                    1.0 / (head_dim as f32).sqrt(),
                    layers,
                )
            }
        };
        let final_logit_softcap = f
            .get_f64(&k("final_logit_softcapping"))?
            .map(|v| v as f32)
            .filter(|&v| v > 0.0);
        let spec = ModelSpec {
            arch,
            n_layers,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope_style,
            rope_dim,
            activation,
            embed_scale,
            qkv_bias,
            qk_norm,
            post_norms,
            attn_scale,
            final_logit_softcap,
            tied_output,
            layers,
        };
        spec.check_tensors(f)?;
        Ok(spec)
    }

    /// Every tensor the spec needs, with its expected GGUF dims (innermost first).
    pub fn required_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (e, ff, q, kv, v) = (
            self.n_embd as u64,
            self.n_ff as u64,
            (self.n_head * self.head_dim) as u64,
            (self.n_head_kv * self.head_dim) as u64,
            (self.n_head_kv * self.head_dim_v) as u64,
        );
        let qo = (self.n_head * self.head_dim_v) as u64;
        let mut t = vec![
            ("token_embd.weight".to_owned(), vec![e, self.n_vocab as u64]),
            ("output_norm.weight".to_owned(), vec![e]),
        ];
        if !self.tied_output {
            t.push(("output.weight".to_owned(), vec![e, self.n_vocab as u64]));
        }
        for il in 0..self.n_layers {
            let b = |s: &str| format!("blk.{il}.{s}");
            t.push((b("attn_norm.weight"), vec![e]));
            t.push((b("attn_q.weight"), vec![e, q]));
            t.push((b("attn_k.weight"), vec![e, kv]));
            t.push((b("attn_v.weight"), vec![e, v]));
            t.push((b("attn_output.weight"), vec![qo, e]));
            t.push((b("ffn_norm.weight"), vec![e]));
            t.push((b("ffn_gate.weight"), vec![e, ff]));
            t.push((b("ffn_up.weight"), vec![e, ff]));
            t.push((b("ffn_down.weight"), vec![ff, e]));
            if self.qkv_bias {
                t.push((b("attn_q.bias"), vec![q]));
                t.push((b("attn_k.bias"), vec![kv]));
                t.push((b("attn_v.bias"), vec![v]));
            }
            if self.qk_norm {
                t.push((b("attn_q_norm.weight"), vec![self.head_dim as u64]));
                t.push((b("attn_k_norm.weight"), vec![self.head_dim as u64]));
            }
            if self.post_norms {
                t.push((b("post_attention_norm.weight"), vec![e]));
                t.push((b("post_ffw_norm.weight"), vec![e]));
            }
        }
        t
    }

    fn check_tensors(&self, f: &GgufFile) -> Result<()> {
        for (name, dims) in self.required_tensors() {
            let t = f.tensor(&name).ok_or_else(|| ModelError::BadTensor {
                name: name.clone(),
                problem: "missing".into(),
            })?;
            if t.dims != dims {
                return Err(ModelError::BadTensor {
                    name,
                    problem: format!("shape {:?}, expected {dims:?}", t.dims),
                });
            }
            let vector = dims.len() == 1;
            if vector && t.ggml_type != GgmlType::F32 {
                return Err(ModelError::BadTensor {
                    name,
                    problem: format!("type {}, expected F32 for a norm or bias", t.ggml_type),
                });
            }
        }
        Ok(())
    }
}
