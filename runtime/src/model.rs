//! A loaded model: the GGUF file, its architecture spec, tokenizer and resolved weights.
//! By default the file's tensor data is read into resident memory (huge pages where the kernel
//! gives them) at load; with `--mmap` ([`WeightsMode::Mapped`]) quantized matrices are zero-copy views
//! of the mapping instead. Under a RAM budget ([`WeightsMode::Budget`]) only some matrices are
//! read in and the rest are streamed from the file while decoding (see [`crate::residency`]).
//! A [`Weight`] says where its bytes are ([`Placement`]); norms and biases (small f32 vectors)
//! are copied out at load.

use std::path::Path;
use std::sync::Arc;

use tensorsharp_kernels::{Kernels, WType};
use tensorsharp_models::{GgufFile, ModelError, ModelSpec};

use crate::error::{Result, RuntimeError};
use crate::residency::{Matrix, Placement, ResidencyPlan, Step, DEFAULT_RING, DIRECT_ALIGN};
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
    /// Where the bytes are while decoding: in RAM (at an offset of [`Model::ram`]), in a staging
    /// slot of a streamed unit, or (the embedding) read row by row from the file.
    pub placement: Placement,
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

/// Rows of the output matrix planned as one unit ([`Step::Output`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputChunk {
    /// The chunk's first row (the first logit it computes).
    pub first_row: usize,
    /// The chunk's rows as a matrix.
    pub weight: Weight,
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
    /// The output matrix in row chunks (one chunk unless its weights are streamed): the rows
    /// from `first_row`, each chunk its own [`Weight`] with its own placement.
    pub(crate) output_chunks: Vec<OutputChunk>,
    pub(crate) layers: Vec<LayerWeights>,
    /// GELU lookup table (GeGLU models only; see `ops::gelu_f16_table`).
    pub(crate) gelu_table: Vec<f32>,
    /// See [`Model::fingerprint`].
    fingerprint: u64,
    /// Under a RAM budget: the resident matrices (the rest stream from `stream_file`).
    resident: Option<memmap2::Mmap>,
    /// Under a RAM budget: the placement of every matrix.
    residency: Option<ResidencyPlan>,
    /// Under a RAM budget: the file, read with `pread` by the streaming thread and the
    /// embedding lookup.
    stream_file: Option<Arc<std::fs::File>>,
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
    /// At most this many bytes of weights in RAM: the resident matrices and the staging ring of
    /// the streamed ones ([`ResidencyPlan::new`]); everything resident (as `Resident`) when it
    /// fits. The rest is read from the file (`pread`, through the page cache) by a prefetch
    /// thread ahead of the layer that needs it.
    Budget(u64),
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
            WeightsMode::Mapped | WeightsMode::Budget(_) => GgufFile::open(path)?,
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
        let reads = TensorReads::new(&file, path)?;
        let v = |name: &str| vector(&file, &reads, name);
        let ov = |name: &str, present: bool| {
            if present {
                vector(&file, &reads, name).map(Some)
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
        let mut embd = w("token_embd.weight")?;
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
        let fingerprint = fingerprint(&file, &reads)?;
        let (mut resident, mut residency, mut stream_file) = (None, None, None);
        let mut output_chunks = vec![OutputChunk {
            first_row: 0,
            weight: output,
        }];
        if let WeightsMode::Budget(budget) = weights {
            output_chunks = chunk_output(&output, &layers);
            let plan = ResidencyPlan::with_io_align(
                matrices(&layers, &output_chunks, &embd, spec.tied_output),
                budget,
                DEFAULT_RING,
                DIRECT_ALIGN,
            )?;
            if !plan.streams() {
                // Everything fits: the usual resident copy of the whole file.
                return Self::load_opts(path, WeightsMode::Resident, Some(kernels));
            }
            let f = std::fs::File::open(path).map_err(|source| ModelError::Io {
                path: path.to_owned(),
                source,
            })?;
            resident = Some(read_resident(&f, path, &plan)?);
            place(&mut layers, &mut output_chunks, &mut embd, spec.tied_output, &plan);
            // The header and the norms are copied out: the mapping's pages leave this process's
            // resident set (they stay in the page cache).
            file.release_pages();
            residency = Some(plan);
            stream_file = Some(Arc::new(f));
        }
        Ok(Model {
            mapping_watch,
            path: path.to_owned(),
            fingerprint,
            resident,
            residency,
            stream_file,
            gelu_table,
            file,
            spec,
            tokenizer,
            kernels,
            embd,
            output,
            output_chunks,
            output_norm,
            layers,
        })
    }

    /// Loads `path` for sessions with `params` (see [`load_opts`](Self::load_opts) for
    /// `weights` and `kernels`): when the sessions' memory plan with every weight in RAM is over
    /// the budget (`params.ram_budget`, else the detected one), the weights are fitted to what
    /// the budget leaves them ([`weights_budget`](Self::weights_budget)) and the rest is streamed
    /// from the file ([`WeightsMode::Budget`]). A mapped model (`--mmap`) is never streamed.
    pub fn load_for(
        path: impl AsRef<Path>,
        weights: WeightsMode,
        kernels: Option<Kernels>,
        params: &crate::session::SessionParams,
    ) -> Result<Model> {
        let path = path.as_ref();
        let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
        // Without a budget of its own, a file that takes under half the RAM available is not
        // worth a second parse of the header to check.
        let worth_checking =
            params.ram_budget.is_some() || crate::plan::detect_ram_budget().is_none_or(|b| file_len > b.bytes / 2);
        if weights != WeightsMode::Resident || !worth_checking {
            return Self::load_opts(path, weights, kernels);
        }
        let probe = Self::load_opts(path, WeightsMode::Mapped, kernels)?;
        let budget = probe.weights_budget(params)?;
        drop(probe);
        match budget {
            None => Self::load_opts(path, weights, kernels),
            Some(b) => {
                log::info!(
                    "{}: the plan is over the RAM budget with every weight in RAM: {:.1} MiB of weights in RAM, the rest streamed from the file",
                    path.display(),
                    b as f64 / 1048576.0
                );
                Self::load_opts(path, WeightsMode::Budget(b), kernels)
            }
        }
    }

    /// What the RAM budget of sessions with `params` leaves the weights (resident matrices and
    /// staging ring) once the rest of the plan, this process's program image and
    /// [`crate::plan::PROCESS_MARGIN`] are set aside; `None` when the plan fits with every
    /// weight in RAM (or there is no budget). `Err(OverBudget)` with the plan's advice when the
    /// rest alone does not fit.
    pub fn weights_budget(&self, params: &crate::session::SessionParams) -> Result<Option<u64>> {
        let plan = crate::session::Session::plan_for(self, params)?;
        let Some(budget) = plan.budget.as_ref().map(|b| b.bytes) else {
            return Ok(None);
        };
        if plan.total() <= budget {
            return Ok(None);
        }
        let rest =
            plan.total() - plan.weights + crate::plan::program_image_bytes(&self.path) + crate::plan::PROCESS_MARGIN;
        if rest >= budget {
            plan.check_budget()?;
        }
        Ok(Some(budget.saturating_sub(rest)))
    }

    /// The placement of this model's matrices with at most `weights_budget` bytes of them in
    /// RAM (what `tsharp plan` shows; loading with [`WeightsMode::Budget`] applies it).
    pub fn residency_for(&self, weights_budget: u64) -> Result<ResidencyPlan> {
        ResidencyPlan::with_io_align(
            matrices(
                &self.layers,
                &self.planned_output_chunks(),
                &self.embd,
                self.spec.tied_output,
            ),
            weights_budget,
            DEFAULT_RING,
            DIRECT_ALIGN,
        )
    }

    /// The output matrix's chunks as the residency planner sees them ([`residency_for`](Self::residency_for)
    /// plans these; the same as the loaded chunks when the model streams).
    pub(crate) fn planned_output_chunks(&self) -> Vec<OutputChunk> {
        if self.residency.is_some() {
            self.output_chunks.clone()
        } else {
            chunk_output(&self.output, &self.layers)
        }
    }

    /// This (mapped) model with the placement [`load_for`](Self::load_for) would give it under
    /// `params`' budget, but nothing read: what a session's memory plan would be under it
    /// ([`Session::plan_for`](crate::session::Session::plan_for), for `tsharp plan` and
    /// `tsharpd --check-config`). Unchanged when the plan fits with every weight in RAM. A model
    /// planned for streaming cannot run: [`Session::new`](crate::session::Session::new)
    /// refuses it.
    pub fn planned_for(self, params: &crate::session::SessionParams) -> Result<Model> {
        match self.weights_budget(params)? {
            Some(b) => {
                let plan = self.residency_for(b)?;
                Ok(self.planned_with(plan))
            }
            None => Ok(self),
        }
    }

    fn planned_with(mut self, plan: ResidencyPlan) -> Model {
        self.output_chunks = chunk_output(&self.output, &self.layers);
        place(
            &mut self.layers,
            &mut self.output_chunks,
            &mut self.embd,
            self.spec.tied_output,
            &plan,
        );
        self.residency = Some(plan);
        self.resident = None;
        self.stream_file = None;
        self
    }

    /// Bytes of weights held in RAM (the resident matrices under a RAM budget, else the file).
    pub fn ram_weight_bytes(&self) -> u64 {
        self.residency
            .as_ref()
            .map_or(self.ram().len() as u64, |r| r.resident_bytes)
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

    /// The weights held in RAM: the resident matrices under a RAM budget, else the whole file
    /// (resident copy or mapping). [`Placement::Ram`] offsets are into these bytes.
    pub fn ram(&self) -> &[u8] {
        match &self.resident {
            Some(r) => r,
            None => self.file.bytes(),
        }
    }

    /// The placement of every matrix when the model streams weights under a RAM budget.
    pub fn residency(&self) -> Option<&ResidencyPlan> {
        self.residency.as_ref()
    }

    /// The file the streamed weights are read from (under a RAM budget).
    pub(crate) fn stream_file(&self) -> Option<&Arc<std::fs::File>> {
        self.stream_file.as_ref()
    }

    /// The embedding row of token `tok` when it is in RAM (`None`: read it from the file). A
    /// tied embedding is the output matrix, whose chunks may be in RAM or streamed.
    pub(crate) fn embedding_row_in_ram(&self, tok: usize) -> Option<&[u8]> {
        let rb = self.embd.row_bytes;
        if let Some(m) = self.ram_bytes_of(&self.embd) {
            return m.get(tok * rb..(tok + 1) * rb);
        }
        if !self.spec.tied_output {
            return None;
        }
        let c = self
            .output_chunks
            .iter()
            .find(|c| (c.first_row..c.first_row + c.weight.rows).contains(&tok))?;
        let r = tok - c.first_row;
        self.ram_bytes_of(&c.weight)?.get(r * rb..(r + 1) * rb)
    }

    /// The bytes of a weight held in RAM (`None` for a streamed one).
    pub(crate) fn ram_bytes_of(&self, w: &Weight) -> Option<&[u8]> {
        match w.placement {
            Placement::Ram { at } => Some(&self.ram()[at as usize..at as usize + w.rows * w.row_bytes]),
            _ => None,
        }
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
fn fingerprint(f: &GgufFile, reads: &TensorReads) -> Result<u64> {
    let mut h = crate::fnv::Fnv1a::new();
    let bytes = f.bytes();
    h.eat(&bytes[..(f.data_offset() as usize).min(bytes.len())]);
    for t in f.tensors() {
        if f.data_of(t).is_ok() {
            h.eat(&reads.read(f, t, 64)?);
        }
    }
    Ok(h.finish())
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
        placement: Placement::Ram { at: t.file_offset },
    })
}

/// The output matrix in row chunks of at most the largest layer's bytes (whole multiples of
/// 64 rows, so every chunk starts where the kernels' row blocks start).
fn chunk_output(output: &Weight, layers: &[LayerWeights]) -> Vec<OutputChunk> {
    let layer_bytes = layers
        .iter()
        .map(|l| {
            layer_matrices(l)
                .iter()
                .map(|(_, w)| w.rows * w.row_bytes)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let rows_per = (layer_bytes / output.row_bytes.max(1) / 64 * 64).max(64);
    (0..output.rows)
        .step_by(rows_per)
        .map(|r0| {
            let rows = rows_per.min(output.rows - r0);
            OutputChunk {
                first_row: r0,
                weight: Weight {
                    offset: output.offset + r0 * output.row_bytes,
                    rows,
                    placement: Placement::Ram {
                        at: (output.offset + r0 * output.row_bytes) as u64,
                    },
                    ..*output
                },
            }
        })
        .collect()
}

/// The matrices of a model for the residency planner, in a fixed order that [`place`] follows:
/// each layer's seven, the output matrix's chunks, the embedding when it is not the output
/// matrix.
fn matrices(layers: &[LayerWeights], output: &[OutputChunk], embd: &Weight, tied: bool) -> Vec<Matrix> {
    let m = |name: String, step, w: &Weight| Matrix {
        name,
        step,
        file_offset: w.offset as u64,
        bytes: (w.rows * w.row_bytes) as u64,
        row_bytes: w.row_bytes as u64,
    };
    let mut v = Vec::new();
    for (il, l) in layers.iter().enumerate() {
        for (n, w) in layer_matrices(l) {
            v.push(m(format!("blk.{il}.{n}"), Step::Layer(il), w));
        }
    }
    let name = if tied { "token_embd (output, tied)" } else { "output" };
    for (k, c) in output.iter().enumerate() {
        let last = c.first_row + c.weight.rows;
        v.push(m(
            format!("{name} rows {}..{last}", c.first_row),
            Step::Output(k),
            &c.weight,
        ));
    }
    if !tied {
        v.push(m("token_embd".into(), Step::Embedding, embd));
    }
    v
}

/// A layer's matrices with their tensor-name suffixes.
fn layer_matrices(l: &LayerWeights) -> [(&'static str, &Weight); 7] {
    [
        ("attn_q", &l.wq),
        ("attn_k", &l.wk),
        ("attn_v", &l.wv),
        ("attn_output", &l.wo),
        ("ffn_gate", &l.gate),
        ("ffn_up", &l.up),
        ("ffn_down", &l.down),
    ]
}

/// Sets every weight's placement from `plan` (the order of [`matrices`]). A tied embedding's
/// rows are read from the file unless the output matrix is one resident chunk (the lookup of a
/// chunked output matrix goes by chunk: [`Model::embedding_row_in_ram`]).
fn place(layers: &mut [LayerWeights], output: &mut [OutputChunk], embd: &mut Weight, tied: bool, plan: &ResidencyPlan) {
    let mut p = plan.placements.iter().copied();
    let mut next = || p.next().unwrap_or(Placement::Rows);
    for l in layers.iter_mut() {
        for w in [
            &mut l.wq,
            &mut l.wk,
            &mut l.wv,
            &mut l.wo,
            &mut l.gate,
            &mut l.up,
            &mut l.down,
        ] {
            w.placement = next();
        }
    }
    for c in output.iter_mut() {
        c.weight.placement = next();
    }
    if tied {
        embd.placement = match output {
            [one] => one.weight.placement,
            _ => Placement::Rows,
        };
    } else {
        embd.placement = next();
    }
}

/// Reads the resident matrices of `plan` from `f` into private memory advised for huge pages.
fn read_resident(f: &std::fs::File, path: &Path, plan: &ResidencyPlan) -> Result<memmap2::Mmap> {
    use std::os::unix::fs::FileExt;
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let len = usize::try_from(plan.resident_bytes.max(1)).map_err(|_| RuntimeError::OverBudget {
        needed: plan.resident_bytes,
        budget: usize::MAX as u64,
        message: "the resident weights do not fit the address space".into(),
    })?;
    let mut mem = memmap2::MmapMut::map_anon(len).map_err(io)?;
    // Advice only: without transparent huge pages the copy stays on normal pages.
    let _ = mem.advise(memmap2::Advice::HugePage);
    for (m, p) in plan.matrices.iter().zip(&plan.placements) {
        if let Placement::Ram { at } = *p {
            let dst = &mut mem[at as usize..(at + m.bytes) as usize];
            f.read_exact_at(dst, m.file_offset).map_err(io)?;
            // The copy is ours now: its pages need not stay in the page cache too (they would
            // crowd out the streamed ones, and under a cgroup limit they are charged to us).
            use std::os::fd::AsRawFd;
            let _ = nix::fcntl::posix_fadvise(
                f.as_raw_fd(),
                m.file_offset as i64,
                m.bytes as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
    }
    Ok(mem.make_read_only().map_err(io)?)
}

fn vector(f: &GgufFile, reads: &TensorReads, name: &str) -> Result<Vec<f32>> {
    let info = f
        .tensor(name)
        .ok_or_else(|| ModelError::NoSuchTensor(name.to_owned()))?;
    f.data_of(info)?; // bounds
    let data = reads.read(f, info, usize::MAX)?;
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// How the loader reads tensor data it copies out (norms, biases, the fingerprint's heads): from
/// private memory directly, but from a file mapping with `pread`. Touching a mapping maps the
/// page cache's folio around the byte (up to 2 MiB with large folios), and the heads of a few
/// hundred tensors would put most of the file in this process's resident set for a moment,
/// which a RAM budget counts.
struct TensorReads(Option<(std::fs::File, std::path::PathBuf)>);

impl TensorReads {
    fn new(f: &GgufFile, path: &Path) -> Result<TensorReads> {
        if !f.is_file_mapping() {
            return Ok(TensorReads(None));
        }
        let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(TensorReads(Some((file, path.to_owned()))))
    }

    /// Up to `max` bytes of the data of `info` (bounds checked by the caller).
    fn read<'a>(
        &self,
        f: &'a GgufFile,
        info: &tensorsharp_models::gguf::TensorInfo,
        max: usize,
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        let data = f.data_of(info)?;
        let n = data.len().min(max);
        match &self.0 {
            None => Ok(std::borrow::Cow::Borrowed(&data[..n])),
            Some((file, path)) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, info.file_offset)
                    .map_err(|source| ModelError::Io {
                        path: path.clone(),
                        source,
                    })?;
                Ok(std::borrow::Cow::Owned(buf))
            }
        }
    }
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
