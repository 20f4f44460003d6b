//! A loaded model: the GGUF file, its architecture spec, tokenizer and resolved weights.
//! By default the file's tensor data is read into resident memory (huge pages where the kernel
//! gives them) at load; with `--mmap` ([`WeightsMode::Mapped`]) quantized matrices are zero-copy views
//! of the mapping instead. Either way a [`Weight`] is an offset into the file's data; norms and
//! biases (small f32 vectors) are copied out at load.

use std::path::Path;

use tensorsharp_kernels::{Kernels, WType};
use tensorsharp_models::{GgufFile, ModelError, ModelSpec};

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// A weight matrix inside the model file's data: `rows` rows of `cols` elements.
#[derive(Debug, Clone, Copy)]
pub struct Weight {
    /// Element type.
    pub wtype: WType,
    /// Absolute offset of the data in the file.
    pub offset: usize,
    /// Output features (rows).
    pub rows: usize,
    /// Input features (elements per row).
    pub cols: usize,
    /// Bytes per row.
    pub row_bytes: usize,
}

/// The weights of one transformer block.
#[derive(Debug)]
pub struct LayerWeights {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) wq: Weight,
    pub(crate) wk: Weight,
    pub(crate) wv: Weight,
    pub(crate) wo: Weight,
    pub(crate) bq: Option<Vec<f32>>,
    pub(crate) bk: Option<Vec<f32>>,
    pub(crate) bv: Option<Vec<f32>>,
    pub(crate) q_norm: Option<Vec<f32>>,
    pub(crate) k_norm: Option<Vec<f32>>,
    pub(crate) post_attn_norm: Option<Vec<f32>>,
    pub(crate) ffn_norm: Vec<f32>,
    pub(crate) gate: Weight,
    pub(crate) up: Weight,
    pub(crate) down: Weight,
    pub(crate) post_ffw_norm: Option<Vec<f32>>,
}

/// A model ready to run: read-only, shareable between sessions and threads.
#[derive(Debug)]
pub struct Model {
    /// Watches a file mapping for SIGBUS (declared before `file`: unregistered before the
    /// mapping is unmapped).
    mapping_watch: Option<crate::fault::MappingWatch>,
    /// The file the model was loaded from.
    path: std::path::PathBuf,
    pub(crate) file: GgufFile,
    pub(crate) spec: ModelSpec,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) kernels: Kernels,
    pub(crate) embd: Weight,
    pub(crate) output: Weight,
    pub(crate) output_norm: Vec<f32>,
    pub(crate) layers: Vec<LayerWeights>,
    /// GELU lookup table (GeGLU models only; see `ops::gelu_f16_table`).
    pub(crate) gelu_table: Vec<f32>,
    /// See [`Model::fingerprint`].
    fingerprint: u64,
}

/// How a model's weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsMode {
    /// Read once at load into private memory on transparent huge pages (the default): decode
    /// reads every weight each token, and 2 MiB pages spare most of the TLB misses of the page
    /// cache's 4 KiB ones (see [`GgufFile::open_resident`]).
    #[default]
    Resident,
    /// A zero-copy mapping of the file (`--mmap`): instant load, pages shared with other
    /// processes and faulted in on first use, slower decode. Also what `Resident` falls back to
    /// when the file is larger than 90% of the RAM available.
    Mapped,
}

/// Whether the file at `path` can be read into memory without crowding out the rest of the
/// plan: a copy larger than the RAM available would end in the OOM killer, where a mapping only
/// pages (and the memory plan reports the shortfall as a typed error). Logs the fallback.
fn fits_in_ram(path: &Path) -> bool {
    let (Ok(meta), Some(budget)) = (std::fs::metadata(path), crate::plan::detect_ram_budget()) else {
        return true; // unknown: the read reports its own error
    };
    let fits = copy_fits(meta.len(), budget.bytes);
    if !fits {
        log::warn!(
            "{}: {} MiB does not fit in the {} MiB available ({}); mapping it instead of reading it in",
            path.display(),
            meta.len() >> 20,
            budget.bytes >> 20,
            budget.source
        );
    }
    fits
}

/// Address space a load needs besides the file: the parsed header, tokenizer tables and norms
/// (a few MiB for the test models; generous for large vocabularies).
const LOAD_TABLES_ESTIMATE: u64 = 48 << 20;

/// Under an address-space limit (`ulimit -v`), refuses a load that cannot fit before anything is
/// allocated (an allocation that fails later would abort the process).
fn check_address_space(path: &Path) -> Result<()> {
    let Some(room) = crate::plan::address_space_room() else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // the open reports it
    };
    let need = meta.len() + LOAD_TABLES_ESTIMATE + crate::plan::ADDRESS_SPACE_MARGIN;
    if need <= room {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    Err(crate::error::RuntimeError::OverBudget {
        needed: need,
        budget: room,
        message: format!(
            "{}: loading needs about {:.1} MiB of address space ({:.1} MiB of weights, tables, margin) but the address-space limit (ulimit -v) leaves {:.1} MiB: raise the limit or use a smaller model",
            path.display(),
            mib(need),
            mib(meta.len()),
            mib(room)
        ),
    })
}

/// The rule of [`fits_in_ram`]: a copy may take up to 90% of the RAM available.
fn copy_fits(file_len: u64, available: u64) -> bool {
    file_len <= available / 10 * 9
}

impl Model {
    /// Opens and validates `path`, resolves the architecture, tokenizer and weights, and picks
    /// the kernel tier (`TSHARP_KERNELS`, else the board profile's, else the best this CPU
    /// runs: [`crate::board::tier`]). The weights are read into resident memory
    /// ([`WeightsMode::Resident`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(path, crate::board::kernels()?)
    }

    /// [`load`](Self::load) with an explicit kernel tier.
    pub fn load_with(path: impl AsRef<Path>, kernels: Kernels) -> Result<Model> {
        Self::load_opts(path, WeightsMode::default(), Some(kernels))
    }

    /// [`load`](Self::load) with an explicit weights placement and, optionally, kernel tier
    /// (`None`: [`crate::board::tier`]).
    pub fn load_opts(path: impl AsRef<Path>, weights: WeightsMode, kernels: Option<Kernels>) -> Result<Model> {
        let kernels = match kernels {
            Some(k) => k,
            None => crate::board::kernels()?,
        };
        let path = path.as_ref();
        check_address_space(path)?;
        let file = match weights {
            WeightsMode::Resident if !fits_in_ram(path) => GgufFile::open(path)?,
            WeightsMode::Resident => GgufFile::open_resident(path)?,
            WeightsMode::Mapped => GgufFile::open(path)?,
        };
        let spec = ModelSpec::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        if tokenizer.n_vocab() != spec.n_vocab {
            return Err(ModelError::BadTensor {
                name: "token_embd.weight".into(),
                problem: format!(
                    "{} rows but the tokenizer has {} tokens",
                    spec.n_vocab,
                    tokenizer.n_vocab()
                ),
            }
            .into());
        }
        let w = |name: &str| weight(&file, name);
        let v = |name: &str| vector(&file, name);
        let ov = |name: &str, present: bool| {
            if present {
                vector(&file, name).map(Some)
            } else {
                Ok(None)
            }
        };
        let mut layers = Vec::with_capacity(spec.n_layers);
        for il in 0..spec.n_layers {
            let b = |s: &str| format!("blk.{il}.{s}");
            layers.push(LayerWeights {
                attn_norm: v(&b("attn_norm.weight"))?,
                wq: w(&b("attn_q.weight"))?,
                wk: w(&b("attn_k.weight"))?,
                wv: w(&b("attn_v.weight"))?,
                wo: w(&b("attn_output.weight"))?,
                bq: ov(&b("attn_q.bias"), spec.qkv_bias)?,
                bk: ov(&b("attn_k.bias"), spec.qkv_bias)?,
                bv: ov(&b("attn_v.bias"), spec.qkv_bias)?,
                q_norm: ov(&b("attn_q_norm.weight"), spec.qk_norm)?,
                k_norm: ov(&b("attn_k_norm.weight"), spec.qk_norm)?,
                post_attn_norm: ov(&b("post_attention_norm.weight"), spec.post_norms)?,
                ffn_norm: v(&b("ffn_norm.weight"))?,
                gate: w(&b("ffn_gate.weight"))?,
                up: w(&b("ffn_up.weight"))?,
                down: w(&b("ffn_down.weight"))?,
                post_ffw_norm: ov(&b("post_ffw_norm.weight"), spec.post_norms)?,
            });
        }
        let embd = w("token_embd.weight")?;
        let output = if spec.tied_output { embd } else { w("output.weight")? };
        let output_norm = v("output_norm.weight")?;
        let gelu_table = match spec.activation {
            tensorsharp_models::arch::Activation::GeluTanh => crate::ops::gelu_f16_table(),
            _ => Vec::new(),
        };
        let mapping_watch = if file.is_file_mapping() {
            let w = crate::fault::MappingWatch::register(file.bytes());
            if w.is_none() {
                log::warn!(
                    "{}: the mapping is not watched for truncation (no SIGBUS guard)",
                    path.display()
                );
            }
            w
        } else {
            None
        };
        Ok(Model {
            mapping_watch,
            path: path.to_owned(),
            fingerprint: fingerprint(&file),
            gelu_table,
            file,
            spec,
            tokenizer,
            kernels,
            embd,
            output,
            output_norm,
            layers,
        })
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Err(ModelFileChanged)` once a read of the mapped file faulted (it was truncated or
    /// rewritten in place under the mapping); `Ok` for a resident model.
    pub fn check_file(&self) -> Result<()> {
        match &self.mapping_watch {
            Some(w) if w.faulted() => Err(crate::error::RuntimeError::ModelFileChanged {
                path: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// An identity of the model file: a 64-bit FNV-1a hash of its header (metadata, tokenizer,
    /// tensor names, shapes, types and offsets) and of the first 64 bytes of every tensor, so
    /// two fine-tunes of one base model differ. Saved session states carry it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The architecture spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The kernels in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Heap bytes the loaded model holds besides the mapping: the parsed GGUF header, the
    /// tokenizer tables, the f32 norms and biases copied out at load.
    pub fn heap_bytes(&self) -> (usize, usize) {
        use tensorsharp_models::gguf::malloc_bytes as m;
        let v = |x: &Vec<f32>| m(x.len() * 4);
        let ov = |x: &Option<Vec<f32>>| x.as_ref().map_or(0, v);
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                v(&l.attn_norm)
                    + v(&l.ffn_norm)
                    + ov(&l.bq)
                    + ov(&l.bk)
                    + ov(&l.bv)
                    + ov(&l.q_norm)
                    + ov(&l.k_norm)
                    + ov(&l.post_attn_norm)
                    + ov(&l.post_ffw_norm)
            })
            .sum();
        let own = m(self.layers.len() * std::mem::size_of::<LayerWeights>())
            + layers
            + v(&self.output_norm)
            + v(&self.gelu_table);
        (self.file.metadata_heap_bytes() + own, self.tokenizer.heap_bytes())
    }

    /// The GGUF file (resident or mapped).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The bytes of a weight.
    pub(crate) fn bytes(&self, w: &Weight) -> &[u8] {
        &self.file.bytes()[w.offset..w.offset + w.rows * w.row_bytes]
    }

    /// Bytes of weights read per decoded token (every matrix once, one embedding row).
    pub fn weight_bytes_per_token(&self) -> u64 {
        let m = |w: &Weight| (w.rows * w.row_bytes) as u64;
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| m(&l.wq) + m(&l.wk) + m(&l.wv) + m(&l.wo) + m(&l.gate) + m(&l.up) + m(&l.down))
            .sum();
        layers + m(&self.output) + self.embd.row_bytes as u64
    }
}

/// See [`Model::fingerprint`].
fn fingerprint(f: &GgufFile) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    let bytes = f.bytes();
    eat(&bytes[..(f.data_offset() as usize).min(bytes.len())]);
    for t in f.tensors() {
        if let Ok(data) = f.data_of(t) {
            eat(&data[..data.len().min(64)]);
        }
    }
    h
}

fn weight(f: &GgufFile, name: &str) -> Result<Weight> {
    let t = f.tensor(name).ok_or_else(|| ModelError::BadTensor {
        name: name.into(),
        problem: "missing".into(),
    })?;
    let wtype = WType::from_ggml_id(t.ggml_type.id()).ok_or_else(|| ModelError::BadTensor {
        name: name.into(),
        problem: format!("type {} has no CPU kernel yet", t.ggml_type),
    })?;
    let cols = t.dims[0] as usize;
    if wtype.uses_q8a() && !cols.is_multiple_of(32) {
        return Err(ModelError::BadTensor {
            name: name.into(),
            problem: format!("row length {cols} is not a multiple of 32"),
        }
        .into());
    }
    Ok(Weight {
        wtype,
        offset: t.file_offset as usize,
        rows: t.n_rows() as usize,
        cols,
        row_bytes: t.row_bytes() as usize,
    })
}

fn vector(f: &GgufFile, name: &str) -> Result<Vec<f32>> {
    let data = f.tensor_data(name)?;
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::copy_fits;

    #[test]
    fn resident_copy_needs_headroom() {
        assert!(copy_fits(400 << 20, 8 << 30));
        assert!(copy_fits(900, 1000));
        assert!(!copy_fits(901, 1000));
        assert!(!copy_fits(4 << 30, 2 << 30));
    }
}
