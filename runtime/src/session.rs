//! A session: one conversation's KV cache and scratch buffers over a shared [`Model`], and the
//! forward pass (chunked prefill with GEMM tiles, decode with GEMV).
//!
//! Every buffer is a slot of one arena sized by the session's [`MemoryPlan`]; after
//! [`Session::new`] the forward pass allocates nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tensorsharp_kernels::{ActQuant, BlockQ8a};
use tensorsharp_models::arch::{Activation, RopeStyle};

use crate::arena::{Arena, MemoryPlan, Slot};
use crate::error::{Result, RuntimeError};
use crate::kv::{store_row, KvType};
use crate::model::{Model, Weight};
use crate::ops;
use crate::plan::{detect_ram_budget, Budget, LockMode, SessionPlan, WORKER_STACK};
use crate::pool::{check_cpus, split, PoolOptions, ThreadPool};
use crate::tokenizer::Token;

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Context length (positions in the KV cache). 0 = the model's training context, capped at 4096.
    pub n_ctx: usize,
    /// Tokens per prefill chunk.
    pub n_batch: usize,
    /// Threads, the caller included. 0 = one per available CPU.
    pub n_threads: usize,
    /// KV cache element type.
    pub kv_type: KvType,
    /// How long idle workers spin before parking.
    pub spin: Duration,
    /// Multiply every weight with f32 activations instead of 8-bit quantized ones: slower, a
    /// little closer to exact arithmetic; for accuracy studies (llama.cpp quantizes, so the
    /// default matches it better).
    pub f32_activations: bool,
    /// RAM budget in bytes for the whole plan; `None`: the cgroup limit or `MemAvailable`.
    pub ram_budget: Option<u64>,
    /// Lock the arena and the weights in RAM.
    pub mlock: LockMode,
    /// CPUs to pin the threads to (thread `i` on `cpus[i % len]`); empty: unpinned.
    pub cpus: Vec<usize>,
    /// `SCHED_FIFO` priority (1..=99) for the threads; 0: normal scheduling.
    pub rt_priority: i32,
    /// Back the arena with transparent huge pages (2 MiB aligned, `MADV_HUGEPAGE`).
    pub huge_pages: bool,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            n_ctx: 0,
            n_batch: 64,
            n_threads: 0,
            kv_type: KvType::F16,
            spin: Duration::from_micros(500),
            f32_activations: false,
            ram_budget: None,
            mlock: LockMode::Off,
            cpus: Vec::new(),
            rt_priority: 0,
            huge_pages: false,
        }
    }
}

#[derive(Clone, Copy)]
struct P<T>(*mut T);
// SAFETY: used only to hand disjoint output ranges and read-only inputs to pool workers inside
// one `ThreadPool::run`, which joins before the pointers' owner is touched again.
unsafe impl<T> Send for P<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for P<T> {}

impl<T> P<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}

struct Slots {
    x: Slot<f32>,
    xn: Slot<f32>,
    xq: Slot<BlockQ8a>,
    xqk: Slot<BlockQ8a>,
    q: Slot<f32>,
    k: Slot<f32>,
    v: Slot<f32>,
    att: Slot<f32>,
    o: Slot<f32>,
    gate: Slot<f32>,
    up: Slot<f32>,
    scores: Slot<f32>,
    vtmp: Slot<f32>,
    rope: Slot<(f32, f32)>,
    logits: Slot<f32>,
    kv: Slot<u8>,
}

/// From this many activation columns a parallel matrix product hands out its rows in chunks
/// from a shared counter (see `project`); fewer take a fixed share per thread.
const DYNAMIC_MIN_COLS: usize = 8;

const STATE_MAGIC: u64 = u64::from_le_bytes(*b"TSSTATE1");
const STATE_HEADER: usize = 48;

/// Operation kinds the profiler times (see [`Session::set_profiling`]).
pub const PROFILE_OPS: [&str; 10] = [
    "embedding + rope tables",
    "norms + residual adds",
    "q/k/v projections",
    "bias, qk-norm, rope, kv store",
    "attention",
    "attention output projection",
    "ffn gate/up projections",
    "ffn activation",
    "ffn down projection",
    "output norm + logits",
];

/// One matrix product of a parallel region.
struct MmJob {
    w: Weight,
    out: P<f32>,
    /// Elements between the outputs of consecutive activation columns.
    stride: usize,
}

/// A conversation over a model.
pub struct Session {
    model: Arc<Model>,
    params: SessionParams,
    pool: ThreadPool,
    plan: MemoryPlan,
    arena: Arena,
    s: Slots,
    /// Distinct (rope base, scale) pairs and each layer's index into them.
    ropes: Vec<(f32, f32)>,
    layer_rope: Vec<usize>,
    kv_row_k: usize,
    kv_row_v: usize,
    kv_layer: usize,
    n_past: usize,
    cancel: Arc<AtomicBool>,
    warnings: Vec<String>,
    full_plan: SessionPlan,
    prof_on: bool,
    prof: [AtomicU64; PROFILE_OPS.len()],
}

/// The resolved layout of a session, computed without allocating anything large.
struct Layout {
    params: SessionParams,
    plan: MemoryPlan,
    s: Slots,
    ropes: Vec<(f32, f32)>,
    layer_rope: Vec<usize>,
    kv_row_k: usize,
    kv_row_v: usize,
    kv_layer: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_ctx", &self.params.n_ctx)
            .field("n_past", &self.n_past)
            .finish()
    }
}

impl Session {
    /// The memory plan a session with these parameters would have (its budget resolved but not
    /// enforced; see [`SessionPlan::check_budget`]). Allocates nothing large.
    pub fn plan_for(model: &Model, params: &SessionParams) -> Result<SessionPlan> {
        let l = Self::layout(model, params.clone())?;
        Ok(Self::make_plan(model, &l))
    }

    fn make_plan(model: &Model, l: &Layout) -> SessionPlan {
        let p = &l.params;
        let budget = match p.ram_budget {
            Some(b) => Some(Budget {
                bytes: b,
                source: "--ram-budget".into(),
            }),
            None => detect_ram_budget(),
        };
        SessionPlan {
            n_ctx: p.n_ctx,
            n_batch: p.n_batch,
            n_threads: p.n_threads,
            kv_type: p.kv_type,
            weights: model.file.bytes().len() as u64,
            lock: p.mlock,
            arena: l.plan.clone(),
            arena_bytes: if p.huge_pages {
                Arena::size_for(&l.plan).next_multiple_of(2 << 20)
            } else {
                Arena::size_for(&l.plan)
            } as u64,
            kv_bytes_per_pos: (l.kv_layer / p.n_ctx * model.spec.n_layers) as u64,
            model_tables: model.heap_bytes().0 as u64,
            tokenizer: model.heap_bytes().1 as u64,
            sampler: crate::sampler::Sampler::planned_bytes(model.spec.n_vocab, 1 << 10) as u64,
            thread_stacks: ((p.n_threads - 1) * WORKER_STACK) as u64,
            budget,
        }
    }

    /// Plans a session, checks the plan against the budget, allocates the arena (the only
    /// allocation of its lifetime), locks memory if asked, and starts its threads.
    pub fn new(model: Arc<Model>, params: SessionParams) -> Result<Session> {
        let l = Self::layout(&model, params)?;
        let full_plan = Self::make_plan(&model, &l);
        full_plan.check_budget()?;
        let Layout {
            params,
            plan,
            s,
            ropes,
            layer_rope,
            kv_row_k,
            kv_row_v,
            kv_layer,
        } = l;
        if !params.cpus.is_empty() {
            check_cpus(&params.cpus).map_err(|problem| RuntimeError::InvalidParameter { name: "cpus", problem })?;
        }
        if !(0..=99).contains(&params.rt_priority) {
            return Err(RuntimeError::InvalidParameter {
                name: "rt_priority",
                problem: format!("{} (1..=99, or 0 for normal scheduling)", params.rt_priority),
            });
        }
        let arena = Arena::with_huge_pages(&plan, params.huge_pages)?;
        let mut warnings = Vec::new();
        if params.mlock != LockMode::Off {
            let weights = model.file.bytes();
            let locked = crate::arena::lock(arena.base(), arena.len(), "the arena")
                .and_then(|_| crate::arena::lock(weights.as_ptr(), weights.len(), "the weights"));
            if let Err(e) = locked {
                if params.mlock == LockMode::Required {
                    return Err(e);
                }
                warnings.push(format!("{e}; continuing without locked memory"));
            }
        }
        let (pool, pool_warnings) = ThreadPool::with_options(
            params.n_threads,
            &PoolOptions {
                spin: params.spin,
                cpus: params.cpus.clone(),
                rt_priority: params.rt_priority,
            },
        )?;
        warnings.extend(pool_warnings);
        for w in &warnings {
            log::warn!("{w}");
        }
        Ok(Session {
            model,
            params,
            pool,
            plan,
            arena,
            s,
            ropes,
            layer_rope,
            kv_row_k,
            kv_row_v,
            kv_layer,
            n_past: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            warnings,
            full_plan,
            prof_on: false,
            prof: Default::default(),
        })
    }

    /// Turns the per-operation profiler on or off (off by default; on, each forward pass reads
    /// the clock between operations) and clears its totals.
    pub fn set_profiling(&mut self, on: bool) {
        self.prof_on = on;
        self.prof.iter().for_each(|p| p.store(0, Ordering::Relaxed));
    }

    /// Nanoseconds spent per operation kind ([`PROFILE_OPS`]) since profiling was turned on.
    pub fn profile(&self) -> [u64; PROFILE_OPS.len()] {
        std::array::from_fn(|i| self.prof[i].load(Ordering::Relaxed))
    }

    fn lap(&self, op: usize, clock: &mut Option<std::time::Instant>) {
        if let Some(t0) = clock {
            let now = std::time::Instant::now();
            self.prof[op].fetch_add((now - *t0).as_nanos() as u64, Ordering::Relaxed);
            *clock = Some(now);
        }
    }

    /// Warnings from setting the session up (memory that could not be locked, a real-time
    /// priority that was not permitted).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The session's full memory plan (weights, arena, tokenizer, sampler, stacks).
    pub fn full_plan(&self) -> &SessionPlan {
        &self.full_plan
    }

    fn layout(model: &Model, mut params: SessionParams) -> Result<Layout> {
        let sp = model.spec.clone();
        if params.n_ctx == 0 {
            params.n_ctx = sp.n_ctx_train.clamp(1, 4096);
        }
        if params.n_ctx > 1 << 20 {
            return Err(RuntimeError::InvalidParameter {
                name: "n_ctx",
                problem: format!("{} is more than 1M positions", params.n_ctx),
            });
        }
        if params.n_batch == 0 || params.n_batch > 4096 {
            return Err(RuntimeError::InvalidParameter {
                name: "n_batch",
                problem: format!("{} (1..=4096)", params.n_batch),
            });
        }
        params.n_batch = params.n_batch.min(params.n_ctx);
        if params.n_threads == 0 {
            params.n_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        }
        if params.n_threads > 256 {
            return Err(RuntimeError::InvalidParameter {
                name: "n_threads",
                problem: format!("{} (1..=256)", params.n_threads),
            });
        }
        let kv_row_k = params
            .kv_type
            .row_bytes(sp.head_dim)
            .ok_or_else(|| RuntimeError::InvalidParameter {
                name: "kv type",
                problem: format!(
                    "{:?} needs head dimensions divisible by 32, this model has {}",
                    params.kv_type, sp.head_dim
                ),
            })?;
        let kv_row_v = params
            .kv_type
            .row_bytes(sp.head_dim_v)
            .ok_or_else(|| RuntimeError::InvalidParameter {
                name: "kv type",
                problem: format!(
                    "{:?} needs head dimensions divisible by 32, this model has {}",
                    params.kv_type, sp.head_dim_v
                ),
            })?;
        let (t, e, nt) = (params.n_batch, sp.n_embd, params.n_threads);
        let q_dim = sp.n_head * sp.head_dim;
        let kv_dim = sp.n_head_kv * sp.head_dim;
        let v_dim = sp.n_head_kv * sp.head_dim_v;
        let att_dim = sp.n_head * sp.head_dim_v;
        let max_in = e.max(sp.n_ff).max(att_dim);
        let mut ropes: Vec<(f32, f32)> = Vec::new();
        let layer_rope = sp
            .layers
            .iter()
            .map(|l| {
                let key = (l.rope_base, l.rope_scale);
                ropes.iter().position(|r| *r == key).unwrap_or_else(|| {
                    ropes.push(key);
                    ropes.len() - 1
                })
            })
            .collect();
        let kv_layer = params.n_ctx * sp.n_head_kv * (kv_row_k + kv_row_v);
        let mut plan = MemoryPlan::default();
        let s = Slots {
            x: plan.add("activations: residual", t * e)?,
            xn: plan.add("activations: normed", t * e)?,
            xq: plan.add("activations: 8-bit, per-32 scales", t * max_in / 32)?,
            xqk: plan.add("activations: 8-bit, per-256 scales", t * max_in / 32)?,
            q: plan.add("activations: q", t * q_dim)?,
            k: plan.add("activations: k", t * kv_dim)?,
            v: plan.add("activations: v", t * v_dim)?,
            att: plan.add("activations: attention out", t * att_dim)?,
            o: plan.add("activations: projection out", t * e)?,
            gate: plan.add("activations: ffn gate", t * sp.n_ff)?,
            up: plan.add("activations: ffn up", t * sp.n_ff)?,
            scores: plan.add("scratch: attention scores (per thread)", nt * params.n_ctx)?,
            vtmp: plan.add("scratch: value row (per thread)", nt * sp.head_dim_v)?,
            rope: plan.add("scratch: rope tables", ropes.len() * t * sp.rope_dim / 2)?,
            logits: plan.add("logits", sp.n_vocab)?,
            kv: plan.add(
                "kv cache",
                sp.n_layers
                    .checked_mul(kv_layer)
                    .ok_or_else(|| RuntimeError::InvalidParameter {
                        name: "n_ctx",
                        problem: "KV cache size overflows".into(),
                    })?,
            )?,
        };
        Ok(Layout {
            params,
            plan,
            s,
            ropes,
            layer_rope,
            kv_row_k,
            kv_row_v,
            kv_layer,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The settings in force (zeros resolved).
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// The session's memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Positions already in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx
    }

    /// Bytes [`save_state`](Self::save_state) writes for the current conversation: a 48-byte
    /// header, the last logits, and the K and V rows of the `n_past` cached positions of every
    /// layer.
    pub fn state_size(&self) -> usize {
        STATE_HEADER
            + 4 * self.model.spec.n_vocab
            + self.model.spec.n_layers * self.n_past * self.model.spec.n_head_kv * (self.kv_row_k + self.kv_row_v)
    }

    fn state_header(&self) -> [u64; 6] {
        let sp = &self.model.spec;
        [
            STATE_MAGIC,
            sp.n_layers as u64 | (sp.n_embd as u64) << 32,
            sp.n_vocab as u64 | (sp.n_head_kv as u64) << 32,
            self.kv_row_k as u64 | (self.kv_row_v as u64) << 32,
            self.params.kv_type as u64,
            self.n_past as u64,
        ]
    }

    /// Writes the conversation state (the cached positions) to `buf` and returns the bytes
    /// written, or `InvalidParameter` naming the size needed when `buf` is too small. Allocates
    /// nothing.
    pub fn save_state(&self, buf: &mut [u8]) -> Result<usize> {
        let need = self.state_size();
        if buf.len() < need {
            return Err(RuntimeError::InvalidParameter {
                name: "state buffer",
                problem: format!("{} bytes, {need} needed", buf.len()),
            });
        }
        for (i, v) in self.state_header().iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let mut at = STATE_HEADER;
        for &l in self.logits() {
            buf[at..at + 4].copy_from_slice(&l.to_le_bytes());
            at += 4;
        }
        // SAFETY: shared borrow of self: no forward pass runs; the kv slot is only read.
        let kv = unsafe { self.arena.slice(self.s.kv) };
        let nkv = self.model.spec.n_head_kv;
        let (k_len, v_len) = (self.n_past * nkv * self.kv_row_k, self.n_past * nkv * self.kv_row_v);
        for il in 0..self.model.spec.n_layers {
            let layer = &kv[il * self.kv_layer..(il + 1) * self.kv_layer];
            let v0 = self.params.n_ctx * nkv * self.kv_row_k;
            buf[at..at + k_len].copy_from_slice(&layer[..k_len]);
            at += k_len;
            buf[at..at + v_len].copy_from_slice(&layer[v0..v0 + v_len]);
            at += v_len;
        }
        Ok(at)
    }

    /// Restores a state written by [`save_state`](Self::save_state) for the same model and KV
    /// type into this session (its context must hold the saved positions). On error the session
    /// is unchanged. Allocates nothing.
    pub fn load_state(&mut self, buf: &[u8]) -> Result<()> {
        let bad = |problem: String| RuntimeError::InvalidParameter { name: "state", problem };
        if buf.len() < STATE_HEADER {
            return Err(bad(format!(
                "{} bytes is shorter than the {STATE_HEADER}-byte header",
                buf.len()
            )));
        }
        let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let mine = self.state_header();
        if word(0) != STATE_MAGIC {
            return Err(bad("not a TensorSharp session state".into()));
        }
        if (1..5).any(|i| word(i) != mine[i]) {
            return Err(bad("saved for another model or KV cache type".into()));
        }
        let n_past = word(5) as usize;
        if n_past > self.params.n_ctx {
            return Err(bad(format!(
                "{n_past} positions do not fit in a context of {}",
                self.params.n_ctx
            )));
        }
        let nkv = self.model.spec.n_head_kv;
        let (k_len, v_len) = (n_past * nkv * self.kv_row_k, n_past * nkv * self.kv_row_v);
        let need = STATE_HEADER + 4 * self.model.spec.n_vocab + self.model.spec.n_layers * (k_len + v_len);
        if buf.len() != need {
            return Err(bad(format!(
                "{} bytes, {need} expected for {n_past} positions",
                buf.len()
            )));
        }
        let mut at = STATE_HEADER;
        // SAFETY: &mut self: no other user of the arena; the logits and kv slots are disjoint.
        let (logits, kv) = unsafe { (self.arena.slice(self.s.logits), self.arena.slice(self.s.kv)) };
        for l in logits.iter_mut() {
            *l = f32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            at += 4;
        }
        for il in 0..self.model.spec.n_layers {
            let layer = &mut kv[il * self.kv_layer..(il + 1) * self.kv_layer];
            let v0 = self.params.n_ctx * nkv * self.kv_row_k;
            layer[..k_len].copy_from_slice(&buf[at..at + k_len]);
            at += k_len;
            layer[v0..v0 + v_len].copy_from_slice(&buf[at..at + v_len]);
            at += v_len;
        }
        self.n_past = n_past;
        self.clear_cancel();
        Ok(())
    }

    /// Forgets the conversation (the KV cache is overwritten from position 0) and clears the
    /// cancel flag.
    pub fn reset(&mut self) {
        self.n_past = 0;
        self.clear_cancel();
    }

    /// Clears the cancel flag.
    pub fn clear_cancel(&self) {
        self.cancel.store(false, Ordering::SeqCst);
    }

    /// A flag that, when set from any thread, makes the running forward pass return
    /// [`RuntimeError::Cancelled`] at the next layer boundary. It stays set (every call returns
    /// `Cancelled`) until [`clear_cancel`](Self::clear_cancel) or [`reset`](Self::reset). After a
    /// cancelled call the cache holds the tokens of the chunks that completed ([`n_past`](Self::n_past)).
    /// Setting it is async-signal-safe.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// The logits of the last token processed.
    pub fn logits(&self) -> &[f32] {
        // SAFETY: shared borrow of self: no forward pass is running.
        unsafe { self.arena.slice(self.s.logits) }
    }

    /// Processes `tokens` after what is already in the cache, in chunks of `n_batch`, and
    /// returns the logits of the last one.
    pub fn prefill(&mut self, tokens: &[Token]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(RuntimeError::InvalidParameter {
                name: "tokens",
                problem: "empty prompt".into(),
            });
        }
        self.check(tokens)?;
        for (i, chunk) in tokens.chunks(self.params.n_batch).enumerate() {
            let last = (i + 1) * self.params.n_batch >= tokens.len();
            self.forward(chunk, last)?;
        }
        Ok(self.logits())
    }

    /// Processes one token and returns the logits of the next.
    pub fn decode(&mut self, token: Token) -> Result<&[f32]> {
        self.check(&[token])?;
        self.forward(&[token], true)?;
        Ok(self.logits())
    }

    fn check(&self, tokens: &[Token]) -> Result<()> {
        let n_vocab = self.model.spec.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(RuntimeError::BadToken { id: bad, n_vocab });
        }
        if self.n_past + tokens.len() > self.params.n_ctx {
            return Err(RuntimeError::ContextFull {
                needed: self.n_past + tokens.len(),
                n_ctx: self.params.n_ctx,
            });
        }
        Ok(())
    }

    /// Runs matrix products in one parallel region, each split by rows over the threads.
    /// `input` holds `ncols` activation vectors of `n` floats; it is quantized to 8 bits first
    /// when any weight takes 8-bit activations.
    fn project(&self, jobs: &[MmJob], input: *const f32, n: usize, ncols: usize) {
        let k = self.model.kernels;
        let f32_only = self.params.f32_activations;
        let (xq, xqk) = (self.arena.ptr(self.s.xq), self.arena.ptr(self.s.xqk));
        for (how, dst) in [(ActQuant::PerBlock, xq), (ActQuant::PerSuperBlock, xqk)] {
            if f32_only
                || !jobs
                    .iter()
                    .any(|j| j.w.wtype.uses_q8a() && j.w.wtype.act_quant() == how)
            {
                continue;
            }
            // Columns [c0, c1) of the input into their 8-bit blocks.
            let (src_p, dst_p) = (P(input as *mut f32), P(dst));
            let quantize = |c0: usize, c1: usize| {
                // SAFETY: `input` holds ncols*n floats and each 8-bit slot has room for
                // ncols*n/32 blocks (plan); the slots are disjoint from the input, and callers
                // give disjoint column ranges.
                let (src, dst) = unsafe {
                    (
                        std::slice::from_raw_parts(src_p.get().add(c0 * n), (c1 - c0) * n),
                        std::slice::from_raw_parts_mut(dst_p.get().add(c0 * n / 32), (c1 - c0) * n / 32),
                    )
                };
                // Sizes come from the plan and the validated weights; a mismatch would be a
                // bug, and it is caught by the kernel's length check rather than becoming UB.
                let quantized = k.quantize(how, src, dst);
                debug_assert!(quantized.is_ok(), "activation quantization sizes");
            };
            // A prefill batch is split by columns over the threads (one more wake-up, worth it
            // from a few columns on); a decode step's one column is quantized here.
            if ncols >= 4 {
                self.pool.run(&|i, nt| {
                    let (c0, c1) = split(ncols, i, nt, 1);
                    if c0 < c1 {
                        quantize(c0, c1);
                    }
                });
            } else {
                quantize(0, ncols);
            }
        }
        let base = P(self.model.file.bytes().as_ptr() as *mut u8);
        let (xq, xqk, input) = (P(xq), P(xqk), P(input as *mut f32));
        // Rows [r0, r1) of one job.
        let rows = |j: &MmJob, r0: usize, r1: usize| {
            // SAFETY: the weight lies inside the mapping (checked at load); rows [r0, r1) are
            // this thread's alone; outputs y[c*stride + r] for r in [r0, r1) are disjoint
            // between threads; inputs are read-only during the region.
            unsafe {
                let w = base.get().add(j.w.offset + r0 * j.w.row_bytes);
                if !f32_only && j.w.wtype.uses_q8a() {
                    let a = if j.w.wtype.act_quant() == ActQuant::PerBlock {
                        xq.get()
                    } else {
                        xqk.get()
                    };
                    k.matmul_q8a_raw(
                        j.w.wtype,
                        w,
                        j.w.row_bytes,
                        r1 - r0,
                        a,
                        n / 32 * std::mem::size_of::<BlockQ8a>(),
                        ncols,
                        j.out.get().add(r0),
                        j.stride,
                        n,
                    );
                } else {
                    k.matmul_f32_raw(
                        j.w.wtype,
                        w,
                        j.w.row_bytes,
                        r1 - r0,
                        input.get(),
                        n,
                        ncols,
                        j.out.get().add(r0),
                        j.stride,
                        n,
                    );
                }
            }
        };
        // A decode step streams its weights: one fixed share of rows per thread. A prefill batch
        // is compute-bound: its rows go in chunks (multiples of 16, about four per thread and
        // job) taken from a shared counter, so a thread that gets less of the CPU (a busy board,
        // a shared VM) takes fewer chunks instead of holding the others at the barrier. Every
        // row's result is the same whichever thread computes it.
        let next = AtomicUsize::new(0);
        self.pool.run(&|i, nt| {
            if ncols < DYNAMIC_MIN_COLS || nt == 1 {
                for j in jobs {
                    let (r0, r1) = split(j.w.rows, i, nt, 16);
                    if r0 < r1 {
                        rows(j, r0, r1);
                    }
                }
                return;
            }
            let chunk_rows = |j: &MmJob| j.w.rows.div_ceil(4 * nt).next_multiple_of(16);
            loop {
                let mut c = next.fetch_add(1, Ordering::Relaxed);
                let mut found = None;
                for j in jobs {
                    let cr = chunk_rows(j);
                    let nch = j.w.rows.div_ceil(cr);
                    if c < nch {
                        found = Some((j, c * cr, ((c + 1) * cr).min(j.w.rows)));
                        break;
                    }
                    c -= nch;
                }
                match found {
                    Some((j, r0, r1)) => rows(j, r0, r1),
                    None => break,
                }
            }
        });
    }

    fn forward(&mut self, tokens: &[Token], want_logits: bool) -> Result<()> {
        let model = Arc::clone(&self.model);
        let sp = &model.spec;
        let (t_n, e) = (tokens.len(), sp.n_embd);
        let (hd, hdv, nh, nkv) = (sp.head_dim, sp.head_dim_v, sp.n_head, sp.n_head_kv);
        let (q_dim, kv_dim, v_dim, att_dim, ff) = (nh * hd, nkv * hd, nkv * hdv, nh * hdv, sp.n_ff);
        let pos0 = self.n_past;
        let a = &self.arena;
        let s = &self.s;
        let eps = sp.rms_eps;
        // SAFETY: the slots are disjoint parts of the arena and `&mut self` excludes any other
        // user; parallel regions below only write disjoint ranges through raw pointers.
        let (x, xn, q, k, v, att, o, gate, up, rope) = unsafe {
            (
                a.slice(s.x),
                a.slice(s.xn),
                a.slice(s.q),
                a.slice(s.k),
                a.slice(s.v),
                a.slice(s.att),
                a.slice(s.o),
                a.slice(s.gate),
                a.slice(s.up),
                a.slice(s.rope),
            )
        };

        let mut clk = self.prof_on.then(std::time::Instant::now);
        // Embeddings.
        for (t, &tok) in tokens.iter().enumerate() {
            let rb = model.embd.row_bytes;
            let row = &model.bytes(&model.embd)[tok as usize * rb..(tok as usize + 1) * rb];
            model
                .kernels
                .dequantize(model.embd.wtype, row, &mut x[t * e..(t + 1) * e])?;
            if let Some(sc) = sp.embed_scale {
                x[t * e..(t + 1) * e].iter_mut().for_each(|v| *v *= sc);
            }
        }
        // RoPE tables for each distinct (base, scale).
        let half = sp.rope_dim / 2;
        for (ri, &(base, scale)) in self.ropes.iter().enumerate() {
            for t in 0..t_n {
                let off = (ri * self.params.n_batch + t) * half;
                ops::rope_table(pos0 + t, sp.rope_dim, base, scale, &mut rope[off..off + half]);
            }
        }
        let neox = sp.rope_style == RopeStyle::Neox;
        self.lap(0, &mut clk);

        for (il, lw) in model.layers.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(RuntimeError::Cancelled);
            }
            for t in 0..t_n {
                ops::rms_norm(&x[t * e..(t + 1) * e], &lw.attn_norm, eps, &mut xn[t * e..(t + 1) * e]);
            }
            self.lap(1, &mut clk);
            let jobs = [
                MmJob {
                    w: lw.wq,
                    out: P(q.as_mut_ptr()),
                    stride: q_dim,
                },
                MmJob {
                    w: lw.wk,
                    out: P(k.as_mut_ptr()),
                    stride: kv_dim,
                },
                MmJob {
                    w: lw.wv,
                    out: P(v.as_mut_ptr()),
                    stride: v_dim,
                },
            ];
            self.project(&jobs, xn.as_ptr(), e, t_n);
            self.lap(2, &mut clk);
            // Per token: biases, QK-norm, RoPE, the K/V rows into the cache. Tokens are
            // independent, so a prompt's are split over the pool (decode stays on this thread).
            let (qp, kp, vp) = (P(q.as_mut_ptr()), P(k.as_mut_ptr()), P(v.as_mut_ptr()));
            // SAFETY: the kv slot is disjoint from the activation slots taken above.
            let kvp = P(unsafe { a.slice(s.kv) }[il * self.kv_layer..(il + 1) * self.kv_layer].as_mut_ptr());
            let kv_k_len = self.params.n_ctx * nkv * self.kv_row_k;
            let (row_k, row_v, kv_type) = (self.kv_row_k, self.kv_row_v, self.params.kv_type);
            let rope_base = self.layer_rope[il] * self.params.n_batch;
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
                let cs = &rope[(rope_base + t) * half..][..half];
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
                    let kr = ((pos0 + t) * nkv + g) * row_k;
                    let vr = kv_k_len + ((pos0 + t) * nkv + g) * row_v;
                    // SAFETY: rows kr and vr of this layer's K and V regions belong to position
                    // pos0 + t, which is this call's alone, and lie inside the layer.
                    let (kd, vd) = unsafe {
                        (
                            std::slice::from_raw_parts_mut(kvp.get().add(kr), row_k),
                            std::slice::from_raw_parts_mut(kvp.get().add(vr), row_v),
                        )
                    };
                    store_row(kv_type, &kt[g * hd..(g + 1) * hd], kd);
                    store_row(kv_type, &vt[g * hdv..(g + 1) * hdv], vd);
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
            self.lap(3, &mut clk);
            self.attention(il, t_n, pos0, q, att);
            self.lap(4, &mut clk);
            let jobs = [MmJob {
                w: lw.wo,
                out: P(o.as_mut_ptr()),
                stride: e,
            }];
            self.project(&jobs, att.as_ptr(), att_dim, t_n);
            self.lap(5, &mut clk);
            // After the last layer's attention only the last token's state is used (for the
            // logits), so the FFN runs for that token alone, as in llama.cpp's graph (which
            // also decides which of its matmul kernels, and so which summation order, runs):
            // tokens t0.. go on, their FFN rows counted from 0.
            let t0 = if il + 1 == model.layers.len() { t_n - 1 } else { 0 };
            let t_f = t_n - t0;
            for t in t0..t_n {
                let ot = &mut o[t * e..(t + 1) * e];
                if let Some(n) = &lw.post_attn_norm {
                    ops::rms_norm_inplace(ot, n, eps);
                }
                x[t * e..(t + 1) * e]
                    .iter_mut()
                    .zip(ot.iter())
                    .for_each(|(a, b)| *a += b);
                let r = (t - t0) * e;
                ops::rms_norm(&x[t * e..(t + 1) * e], &lw.ffn_norm, eps, &mut xn[r..r + e]);
            }
            let jobs = [
                MmJob {
                    w: lw.gate,
                    out: P(gate.as_mut_ptr()),
                    stride: ff,
                },
                MmJob {
                    w: lw.up,
                    out: P(up.as_mut_ptr()),
                    stride: ff,
                },
            ];
            self.lap(1, &mut clk);
            self.project(&jobs, xn.as_ptr(), e, t_f);
            self.lap(6, &mut clk);
            let (gp, upp, table) = (P(gate.as_mut_ptr()), P(up.as_mut_ptr()), &model.gelu_table[..]);
            let silu = sp.activation == Activation::Silu;
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
                        // The lengths are equal and n_vec <= b - a: this cannot fail.
                        let _ = model.kernels.swiglu(&mut g[a - lo..b - lo], &u[a - lo..b - lo], n_vec);
                        a = b;
                    }
                } else {
                    g.iter_mut()
                        .zip(u)
                        .for_each(|(g, u)| *g = ops::gelu_lookup(table, *g) * u);
                }
            });
            let jobs = [MmJob {
                w: lw.down,
                out: P(o.as_mut_ptr()),
                stride: e,
            }];
            self.lap(7, &mut clk);
            self.project(&jobs, gate.as_ptr(), ff, t_f);
            self.lap(8, &mut clk);
            for t in t0..t_n {
                let ot = &mut o[(t - t0) * e..(t - t0 + 1) * e];
                if let Some(n) = &lw.post_ffw_norm {
                    ops::rms_norm_inplace(ot, n, eps);
                }
                x[t * e..(t + 1) * e]
                    .iter_mut()
                    .zip(ot.iter())
                    .for_each(|(a, b)| *a += b);
            }
            self.lap(1, &mut clk);
        }
        self.n_past += t_n;
        if want_logits {
            let last = t_n - 1;
            ops::rms_norm(&x[last * e..(last + 1) * e], &model.output_norm, eps, &mut xn[..e]);
            // SAFETY: the logits slot is disjoint from the others.
            let logits = unsafe { a.slice(s.logits) };
            let jobs = [MmJob {
                w: model.output,
                out: P(logits.as_mut_ptr()),
                stride: sp.n_vocab,
            }];
            self.project(&jobs, xn.as_ptr(), e, 1);
            if let Some(cap) = sp.final_logit_softcap {
                logits.iter_mut().for_each(|l| *l = cap * (*l / cap).tanh());
            }
            self.lap(9, &mut clk);
        }
        Ok(())
    }

    /// Causal (optionally sliding-window) grouped-query attention for the chunk, parallel over
    /// (token, head) pairs. K·q runs through the kernels' f32-activation GEMV over cache rows.
    fn attention(&self, il: usize, t_n: usize, pos0: usize, q: &mut [f32], att: &mut [f32]) {
        let model = &*self.model;
        let sp = &model.spec;
        let (hd, hdv, nh, nkv) = (sp.head_dim, sp.head_dim_v, sp.n_head, sp.n_head_kv);
        let group = nh / nkv;
        let window = sp.layers[il].sliding_window;
        let kvt = self.params.kv_type;
        let wt = kvt.wtype();
        let n_ctx = self.params.n_ctx;
        let kbase = P(unsafe {
            // SAFETY: the layer's region lies inside the kv slot.
            self.arena.ptr(self.s.kv).add(il * self.kv_layer)
        });
        let (row_k, row_v) = (self.kv_row_k, self.kv_row_v);
        let vbase_off = n_ctx * nkv * row_k;
        let scores = P(self.arena.ptr(self.s.scores));
        let vtmp = P(self.arena.ptr(self.s.vtmp));
        let (qp, attp) = (P(q.as_mut_ptr()), P(att.as_mut_ptr()));
        let kernels = model.kernels;
        let scale = sp.attn_scale;
        // A decode step's heads cost the same: a fixed share per thread. A prefill chunk's tokens
        // cost more the later they stand (causal): threads take whole tokens from a shared
        // counter, the last (longest) first, so the work evens out.
        let next_token = AtomicUsize::new(0);
        self.pool.run(&|i, nt| {
            let (w0, w1) = split(t_n * nh, i, nt, 1);
            let dynamic = t_n > 1 && nt > 1;
            let (mut fixed, mut taken) = (w0..w1, 0..0);
            // SAFETY: thread i owns scores[i*n_ctx..] and vtmp[i*hdv..] (plan sizes them per thread).
            let sc = unsafe { std::slice::from_raw_parts_mut(scores.get().add(i * n_ctx), n_ctx) };
            let vt = unsafe { std::slice::from_raw_parts_mut(vtmp.get().add(i * hdv), hdv) };
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
                let p = pos0 + t;
                let lo = window.map_or(0, |w| (p + 1).saturating_sub(w));
                let npos = p + 1 - lo;
                // SAFETY: rows lo..=p of kv head g were written (this chunk or earlier) and lie in
                // the layer region; q[t][h] and out[t][h] are this work item's alone.
                unsafe {
                    let qh = qp.get().add(t * nh * hd + h * hd);
                    if kvt == KvType::F16 {
                        let k0 = kbase.get().add((lo * nkv + g) * row_k) as *const u16;
                        let v0 = kbase.get().add(vbase_off + (lo * nkv + g) * row_v) as *const u16;
                        let out = attp.get().add(t * nh * hdv + h * hdv);
                        kernels.attention_f16_raw(
                            qh,
                            k0,
                            nkv * hd,
                            v0,
                            nkv * hdv,
                            lo,
                            npos,
                            hd,
                            hdv,
                            scale,
                            t_n > 1,
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
                    kernels.matmul_f32_raw(
                        wt,
                        kbase.get().add((lo * nkv + g) * row_k),
                        nkv * row_k,
                        npos,
                        qh,
                        hd,
                        1,
                        sc.as_mut_ptr(),
                        npos,
                        hd,
                    );
                    let s = &mut sc[..npos];
                    s.iter_mut().for_each(|v| *v *= scale);
                    let out = std::slice::from_raw_parts_mut(attp.get().add(t * nh * hdv + h * hdv), hdv);
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
                        let vrow = std::slice::from_raw_parts(
                            kbase.get().add(vbase_off + ((lo + j) * nkv + g) * row_v),
                            row_v,
                        );
                        if kernels.dequantize(wt, vrow, vt).is_ok() {
                            out.iter_mut().zip(vt.iter()).for_each(|(o, v)| *o = r16(*o + v * vs));
                        }
                        ssum = ssum * ms + vs;
                    }
                    let inv = if ssum == 0.0 { 0.0 } else { 1.0 / ssum };
                    out.iter_mut().for_each(|o| *o *= inv);
                }
            }
        });
    }
}
