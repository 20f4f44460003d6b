//! A model-level summary of a GGUF file: architecture, key hyperparameters, sizes by type.

use std::collections::BTreeMap;

use crate::gguf::GgufFile;
use crate::quant::GgmlType;
use crate::Result;

/// The hyperparameters `tsharp info` shows, read from `<arch>.*` keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hyperparameters {
    /// `<arch>.block_count`
    pub n_layers: Option<u64>,
    /// `<arch>.context_length` (training context)
    pub n_ctx_train: Option<u64>,
    /// `<arch>.embedding_length`
    pub n_embd: Option<u64>,
    /// `<arch>.feed_forward_length`
    pub n_ff: Option<u64>,
    /// `<arch>.attention.head_count`
    pub n_head: Option<u64>,
    /// `<arch>.attention.head_count_kv`
    pub n_head_kv: Option<u64>,
    /// `<arch>.attention.key_length` (head dimension, when given)
    pub head_dim: Option<u64>,
    /// `<arch>.rope.freq_base`
    pub rope_freq_base: Option<f64>,
    /// `<arch>.attention.layer_norm_rms_epsilon`
    pub rms_eps: Option<f64>,
    /// `<arch>.attention.sliding_window`
    pub sliding_window: Option<u64>,
    /// Length of `tokenizer.ggml.tokens`
    pub vocab_size: Option<u64>,
}

/// Bytes and tensors of one ggml type in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeTotals {
    /// Number of tensors.
    pub tensors: u64,
    /// Number of elements.
    pub elements: u64,
    /// Bytes of data.
    pub bytes: u64,
}

/// What `tsharp info` prints about a model.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// `general.architecture`
    pub architecture: Option<String>,
    /// `general.name`
    pub name: Option<String>,
    /// Key hyperparameters.
    pub hparams: Hyperparameters,
    /// Total elements of all tensors (parameters).
    pub n_params: u64,
    /// Total bytes of tensor data.
    pub n_bytes: u64,
    /// Totals per tensor type.
    pub by_type: BTreeMap<GgmlType, TypeTotals>,
}

impl ModelSummary {
    /// Reads the summary from an open file. Fails only if a hyperparameter key exists with the
    /// wrong type.
    pub fn from_gguf(f: &GgufFile) -> Result<ModelSummary> {
        let arch = f.architecture().map(str::to_owned);
        let a = arch.clone().unwrap_or_default();
        let u = |k: &str| f.get_u64(&format!("{a}.{k}"));
        let hparams = Hyperparameters {
            n_layers: u("block_count")?,
            n_ctx_train: u("context_length")?,
            n_embd: u("embedding_length")?,
            n_ff: u("feed_forward_length")?,
            n_head: u("attention.head_count")?,
            n_head_kv: u("attention.head_count_kv")?,
            head_dim: u("attention.key_length")?,
            rope_freq_base: f.get_f64(&format!("{a}.rope.freq_base"))?,
            rms_eps: f.get_f64(&format!("{a}.attention.layer_norm_rms_epsilon"))?,
            sliding_window: u("attention.sliding_window")?,
            vocab_size: f.get_array("tokenizer.ggml.tokens")?.map(|t| t.len() as u64),
        };
        let mut by_type: BTreeMap<GgmlType, TypeTotals> = BTreeMap::new();
        for t in f.tensors() {
            let e = by_type.entry(t.ggml_type).or_default();
            e.tensors += 1;
            e.elements += t.n_elements;
            e.bytes += t.n_bytes;
        }
        Ok(ModelSummary {
            architecture: arch,
            name: f.get_str("general.name")?.map(str::to_owned),
            hparams,
            n_params: by_type.values().map(|t| t.elements).sum(),
            n_bytes: by_type.values().map(|t| t.bytes).sum(),
            by_type,
        })
    }
}
