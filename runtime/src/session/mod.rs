//! A session: one conversation's KV cache and scratch buffers over a shared [`Model`], and the
//! forward pass (chunked prefill with GEMM tiles, decode with GEMV).
//!
//! Every buffer is a slot of one arena sized by the session's [`MemoryPlan`]; after
//! [`Session::new`] the forward pass allocates nothing. Where things live:
//!
//! - [`params`]: the settings and their validation;
//! - [`layout`]: the arena's slots and the session's memory plan;
//! - [`kv`]: the KV cache (element types, addresses, sequence operations);
//! - [`forward`]: embeddings, the attention and FFN blocks, the logits;
//! - [`attention`]: attention over the cache;
//! - [`matmul`]: matrix-product dispatch over the thread pool;
//! - [`state`]: the saved-state format;
//! - [`profile`]: the per-operation profiler.

mod attention;
mod forward;
pub mod kv;
mod layout;
mod matmul;
pub mod params;
pub mod profile;
pub mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tensorsharp_kernels::{KernelOp, WType};

use crate::arena::{Arena, MemoryPlan};
use crate::error::{Result, RuntimeError};
use crate::gpu::DecodeBackend;
use crate::model::Model;
use crate::plan::{LockMode, SessionPlan};
use crate::pool::{PoolOptions, ThreadPool};
use crate::stream::Streamer;
use crate::tokenizer::Token;

pub use forward::BatchRow;
use forward::Rows;
pub use kv::{KvCache, KvType};
use layout::{Buffers, Layout, RopeTables};
pub use params::{DirectIo, SessionParams};
pub use profile::ProfileOp;
use profile::Profiler;

/// A conversation over a model.
pub struct Session {
    /// The weight streamer (a model under a RAM budget that streams); declared before the arena,
    /// whose staging ring its thread fills: dropped (and joined) first.
    streamer: Option<Streamer>,
    model: Arc<Model>,
    params: SessionParams,
    pool: ThreadPool,
    plan: MemoryPlan,
    arena: Arena,
    buffers: Buffers,
    kv: KvCache,
    ropes: RopeTables,
    /// Positions in the KV cache, per sequence (sequence 0 is the one-conversation API's).
    seq_len: Vec<usize>,
    /// Per sequence: its rows in the current pass.
    seq_rows: Vec<u32>,
    /// Per sequence: its row of the logits slot after the last pass, or `u32::MAX`.
    seq_logits_row: Vec<u32>,
    cancel: Arc<AtomicBool>,
    warnings: Vec<String>,
    full_plan: SessionPlan,
    profiler: Profiler,
    /// The device that runs the forward pass instead of the CPU kernels, when one is set
    /// ([`set_backend`](Self::set_backend)).
    backend: Option<Box<dyn DecodeBackend>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_ctx", &self.params.n_ctx)
            .field("seq_len", &self.seq_len)
            .finish()
    }
}

/// Checks once, before anything is allocated, that the kernel tier implements every operation
/// the forward pass will call with these settings, so the pass itself cannot meet a missing or
/// mis-sized kernel.
fn check_kernels(model: &Model, params: &SessionParams) -> Result<()> {
    let k = model.kernels;
    let mut weights = vec![model.output];
    for l in &model.layers {
        weights.extend([l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down]);
    }
    for w in weights {
        if !params.f32_activations && w.wtype.uses_q8a() {
            k.require(KernelOp::Quantize, w.wtype)?;
            k.require(KernelOp::MatmulQ8a, w.wtype)?;
        } else {
            k.require(KernelOp::MatmulF32, w.wtype)?;
        }
    }
    k.require(KernelOp::Dequantize, model.embd.wtype)?;
    match params.kv_type {
        KvType::F16 => k.require(KernelOp::AttentionF16, WType::F16)?,
        other => {
            k.require(KernelOp::MatmulF32, other.wtype())?;
            k.require(KernelOp::Dequantize, other.wtype())?;
        }
    }
    if model.spec.activation == tensorsharp_models::arch::Activation::Silu {
        k.require(KernelOp::SwiGlu, WType::F32)?;
    }
    Ok(())
}

impl Session {
    /// The memory plan a session with these parameters would have (its budget resolved but not
    /// enforced; see [`SessionPlan::check_budget`]). Allocates nothing large.
    pub fn plan_for(model: &Model, params: &SessionParams) -> Result<SessionPlan> {
        Ok(Layout::new(model, params.clone())?.session_plan(model))
    }

    /// Plans a session, checks the plan against the budget and the kernels against the model,
    /// allocates the arena (the only allocation of its lifetime), locks memory if asked, and
    /// starts its threads.
    pub fn new(model: Arc<Model>, params: SessionParams) -> Result<Session> {
        if model.residency().is_some() && model.stream_file().is_none() {
            return Err(RuntimeError::InvalidParameter {
                name: "model",
                problem:
                    "the model was planned for streaming (Model::planned_for), not loaded for it (WeightsMode::Budget)"
                        .into(),
            });
        }
        let layout = Layout::new(&model, params)?;
        let full_plan = layout.session_plan(&model);
        full_plan.check_budget()?;
        check_kernels(&model, &layout.params)?;
        let Layout {
            params,
            plan,
            buffers,
            kv,
            ropes,
        } = layout;
        let arena = Arena::with_huge_pages(&plan, params.huge_pages)?;
        let mut warnings = Vec::new();
        if params.mlock != LockMode::Off {
            let weights = model.ram();
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
        let streamer = match (buffers.staging, model.stream_file(), model.residency()) {
            (Some(slot), Some(file), Some(plan)) => {
                let direct = match params.direct_io {
                    DirectIo::On => true,
                    DirectIo::Off => false,
                    // The page cache keeps the streamed bytes between tokens only where the RAM
                    // left beside this session's plan holds them with room to spare.
                    DirectIo::Auto => crate::plan::detect_ram_budget().is_some_and(|b| {
                        b.bytes.saturating_sub(full_plan.total()) < 2 * plan.streamed_bytes_per_token()
                    }),
                };
                // SAFETY: the staging slot holds the plan's ring (layout) at an io_align-aligned
                // address (the arena is page-aligned, the slot's offset aligned by the plan),
                // only the streamer uses it, and the streamer is dropped before the arena.
                let st = unsafe { Streamer::start(plan, Arc::clone(file), arena.ptr(slot), direct)? };
                if direct && !st.direct() {
                    let w = "O_DIRECT is not supported for the model file here; streaming through the page cache"
                        .to_string();
                    log::warn!("{w}");
                    warnings.push(w);
                }
                Some(st)
            }
            _ => None,
        };
        let n_seq = params.n_seq;
        Ok(Session {
            streamer,
            model,
            params,
            pool,
            plan,
            arena,
            buffers,
            kv,
            ropes,
            seq_len: vec![0; n_seq],
            seq_rows: vec![0; n_seq],
            seq_logits_row: vec![u32::MAX; n_seq],
            cancel: Arc::new(AtomicBool::new(false)),
            warnings,
            full_plan,
            profiler: Profiler::default(),
            backend: None,
        })
    }

    /// Runs this session's forward passes on `backend` (a GPU) instead of the CPU kernels, from
    /// an empty conversation on: tokens go to it one at a time (prefill too), its KV cache holds
    /// the conversation, and the session keeps the token ids and the logits. One sequence only
    /// (`n_seq` 1), and the backend's cache must hold the session's context; saving the state
    /// and copying a prefix between sessions are refused while it is set (the KV cache is on
    /// the device).
    pub fn set_backend(&mut self, backend: Box<dyn DecodeBackend>) -> Result<()> {
        if self.params.n_seq != 1 {
            return Err(RuntimeError::InvalidParameter {
                name: "n_seq",
                problem: format!("a GPU session decodes one sequence ({} asked)", self.params.n_seq),
            });
        }
        if backend.n_ctx() < self.params.n_ctx {
            return Err(RuntimeError::InvalidParameter {
                name: "n_ctx",
                problem: format!(
                    "the {} holds {} positions, the session {}",
                    backend.name(),
                    backend.n_ctx(),
                    self.params.n_ctx
                ),
            });
        }
        self.reset();
        self.backend = Some(backend);
        Ok(())
    }

    /// How streamed weights are read: `Some(true)` with `O_DIRECT`, `Some(false)` through the
    /// page cache, `None` when nothing streams.
    pub fn streams_direct(&self) -> Option<bool> {
        self.streamer.as_ref().map(|s| s.direct())
    }

    /// What runs the forward pass: the backend's name, or `None` for the CPU kernels.
    pub fn backend_name(&self) -> Option<&'static str> {
        self.backend.as_ref().map(|b| b.name())
    }

    /// Refuses an operation on the CPU KV cache while a backend holds the conversation.
    pub(crate) fn cpu_cache_only(&self, what: &'static str) -> Result<()> {
        match &self.backend {
            Some(b) => Err(RuntimeError::InvalidParameter {
                name: what,
                problem: format!("the KV cache is on the {} (not in this session's memory)", b.name()),
            }),
            None => Ok(()),
        }
    }

    /// Turns the per-operation profiler on or off (off by default; on, each forward pass reads
    /// the clock between operations) and clears its totals.
    pub fn set_profiling(&mut self, on: bool) {
        self.profiler.set(on);
    }

    /// Nanoseconds spent per operation kind (indexed by [`ProfileOp::index`]) since profiling
    /// was turned on.
    pub fn profile(&self) -> [u64; ProfileOp::COUNT] {
        self.profiler.totals()
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

    /// The KV cache's geometry.
    pub fn kv_cache(&self) -> &KvCache {
        &self.kv
    }

    /// Positions already in the KV cache (of sequence 0).
    pub fn n_past(&self) -> usize {
        self.seq_len[0]
    }

    /// Context length (per sequence).
    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx
    }

    /// Sequences the session holds.
    pub fn n_seq(&self) -> usize {
        self.params.n_seq
    }

    /// Positions cached for sequence `seq` (0 for a sequence that does not exist).
    pub fn seq_len(&self, seq: usize) -> usize {
        self.seq_len.get(seq).copied().unwrap_or(0)
    }

    /// The token ids of the cached positions (of sequence 0), oldest first.
    pub fn cached_tokens(&self) -> &[Token] {
        self.seq_tokens(0)
    }

    /// The token ids of sequence `seq`'s cached positions, oldest first (empty for a sequence
    /// that does not exist).
    pub fn seq_tokens(&self, seq: usize) -> &[Token] {
        if seq >= self.params.n_seq {
            return &[];
        }
        // SAFETY: shared borrow of self: no forward pass runs; the sequence exists and its
        // seq_len <= n_ctx ids are written.
        unsafe { std::slice::from_raw_parts(self.kv.tokens_ptr(&self.arena, seq), self.seq_len[seq]) }
    }

    /// Forgets the conversation (the KV cache is overwritten from position 0) and clears the
    /// cancel flag. Every sequence is emptied.
    pub fn reset(&mut self) {
        self.seq_len.iter_mut().for_each(|n| *n = 0);
        self.seq_logits_row.iter_mut().for_each(|r| *r = u32::MAX);
        self.clear_cancel();
    }

    /// Keeps the first `n` cached positions (of sequence 0; no-op when `n >= n_past`); the next
    /// prefill or decode continues after them. The logits stay those of the last token processed
    /// until then: prefill at least one token before sampling.
    pub fn truncate(&mut self, n: usize) {
        self.truncate_seq(0, n);
    }

    /// Keeps the first `n` cached positions of sequence `seq` (no-op when `n` is not shorter or
    /// the sequence does not exist); its logits are forgotten.
    pub fn truncate_seq(&mut self, seq: usize, n: usize) {
        if let Some(len) = self.seq_len.get_mut(seq) {
            if n < *len {
                *len = n;
                self.seq_logits_row[seq] = u32::MAX;
            }
        }
    }

    /// Prompt caching: keeps the longest prefix of the cache (sequence 0) that equals the start
    /// of `tokens`, short of `tokens`' last token (so at least one token is left to prefill for
    /// fresh logits), and returns its length. The caller prefills `tokens[returned..]`.
    pub fn keep_common_prefix(&mut self, tokens: &[Token]) -> usize {
        self.keep_common_prefix_seq(0, tokens)
    }

    /// [`keep_common_prefix`](Self::keep_common_prefix) for sequence `seq`.
    pub fn keep_common_prefix_seq(&mut self, seq: usize, tokens: &[Token]) -> usize {
        let common = self.common_prefix_seq(seq, tokens);
        self.truncate_seq(seq, common);
        common
    }

    /// How many positions [`keep_common_prefix_seq`](Self::keep_common_prefix_seq) would keep
    /// (changes nothing): a scheduler picks the sequence that holds most of a prompt with it.
    pub fn common_prefix_seq(&self, seq: usize, tokens: &[Token]) -> usize {
        let limit = tokens.len().saturating_sub(1);
        self.seq_tokens(seq)
            .iter()
            .zip(&tokens[..limit])
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Replaces this session's conversation (sequence 0) with the first `n` positions of
    /// `other`'s (another session over the same model with the same KV type; the contexts may
    /// differ). Returns [`RuntimeError::StateMismatch`] or [`RuntimeError::ContextFull`] and
    /// changes nothing when it cannot. The logits are not copied: prefill at least one token
    /// before sampling.
    pub fn copy_prefix_from(&mut self, other: &Session, n: usize) -> Result<()> {
        self.cpu_cache_only("copy_prefix_from")?;
        other.cpu_cache_only("copy_prefix_from")?;
        if self.model.fingerprint() != other.model.fingerprint() {
            return Err(RuntimeError::StateMismatch {
                what: "model",
                saved: format!("fingerprint {:016x}", other.model.fingerprint()),
                here: format!("fingerprint {:016x}", self.model.fingerprint()),
            });
        }
        if !self.kv.same_rows(&other.kv) {
            return Err(RuntimeError::StateMismatch {
                what: "KV cache type",
                saved: other.kv.kv_type().name().into(),
                here: self.kv.kv_type().name().into(),
            });
        }
        if n > other.n_past() {
            return Err(RuntimeError::InvalidParameter {
                name: "n",
                problem: format!("{n} positions asked, the other session holds {}", other.n_past()),
            });
        }
        if n > self.params.n_ctx {
            return Err(RuntimeError::ContextFull {
                needed: n,
                n_ctx: self.params.n_ctx,
            });
        }
        // SAFETY: &mut self and &other: ours is used by no one else, theirs is only read; two
        // sessions never share an arena; n is within both caches (checked above).
        unsafe { self.kv.copy_prefix_from(&self.arena, 0, &other.kv, &other.arena, 0, n) };
        self.seq_len[0] = n;
        self.seq_logits_row[0] = u32::MAX;
        Ok(())
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

    /// The logits of the last token processed by [`prefill`](Self::prefill) or
    /// [`decode`](Self::decode) (row 0 of the logits slot).
    pub fn logits(&self) -> &[f32] {
        // SAFETY: shared borrow of self: no forward pass is running; the slot holds n_seq >= 1
        // rows of n_vocab.
        unsafe { &self.arena.slice(self.buffers.logits)[..self.model.spec.n_vocab] }
    }

    /// The logits sequence `seq` got from the last forward pass, if that pass computed them
    /// (a [`forward_batch`](Self::forward_batch) row with `logits`, or the end of a
    /// [`prefill_seq`](Self::prefill_seq) / [`decode_seq`](Self::decode_seq)). A later pass
    /// replaces them.
    pub fn seq_logits(&self, seq: usize) -> Option<&[f32]> {
        let row = *self.seq_logits_row.get(seq)? as usize;
        if row == u32::MAX as usize {
            return None;
        }
        let n_vocab = self.model.spec.n_vocab;
        // SAFETY: shared borrow of self: no forward pass is running; row < n_seq rows of n_vocab.
        Some(unsafe { &self.arena.slice(self.buffers.logits)[row * n_vocab..(row + 1) * n_vocab] })
    }

    /// Processes `tokens` after what is already in the cache, in chunks of `n_batch`, and
    /// returns the logits of the last one.
    pub fn prefill(&mut self, tokens: &[Token]) -> Result<&[f32]> {
        self.prefill_seq(0, tokens)?;
        Ok(self.logits())
    }

    /// [`prefill`](Self::prefill) into sequence `seq`; its logits are then
    /// [`seq_logits`](Self::seq_logits)`(seq)`.
    pub fn prefill_seq(&mut self, seq: usize, tokens: &[Token]) -> Result<()> {
        if tokens.is_empty() {
            return Err(RuntimeError::InvalidParameter {
                name: "tokens",
                problem: "empty prompt".into(),
            });
        }
        self.check(seq, tokens)?;
        let _computing = self.pool.computing();
        for (i, chunk) in tokens.chunks(self.params.n_batch).enumerate() {
            let last = (i + 1) * self.params.n_batch >= tokens.len();
            self.forward(Rows::Chunk {
                seq,
                tokens: chunk,
                logits: last,
            })?;
        }
        self.model.check_file() // the weights read were the file's, not zeros
    }

    /// One prefill chunk (at most `n_batch` tokens) into sequence `seq`, with the last token's
    /// logits when `logits`: a scheduler interleaves a long prompt's chunks with other
    /// sequences' decode steps. The same chunks through [`prefill_seq`](Self::prefill_seq)
    /// compute the same bits.
    pub fn prefill_chunk(&mut self, seq: usize, tokens: &[Token], logits: bool) -> Result<()> {
        if tokens.is_empty() || tokens.len() > self.params.n_batch {
            return Err(RuntimeError::InvalidParameter {
                name: "tokens",
                problem: format!("{} tokens in a chunk (1..={})", tokens.len(), self.params.n_batch),
            });
        }
        self.check(seq, tokens)?;
        let _computing = self.pool.computing();
        self.forward(Rows::Chunk { seq, tokens, logits })?;
        self.model.check_file()
    }

    /// Processes one token and returns the logits of the next.
    pub fn decode(&mut self, token: Token) -> Result<&[f32]> {
        self.decode_seq(0, token)?;
        Ok(self.logits())
    }

    /// [`decode`](Self::decode) in sequence `seq`; the logits are then
    /// [`seq_logits`](Self::seq_logits)`(seq)`.
    pub fn decode_seq(&mut self, seq: usize, token: Token) -> Result<()> {
        self.check(seq, &[token])?;
        let _computing = self.pool.computing();
        self.forward(Rows::Chunk {
            seq,
            tokens: &[token],
            logits: true,
        })?;
        self.model.check_file()
    }

    /// One forward pass over rows of any sequences: a batched decode step (one row per active
    /// sequence: the weights are read once for all of them), prefill rows, or both. A sequence's
    /// rows continue after its cached positions in row order. Afterwards
    /// [`seq_logits`](Self::seq_logits) gives the logits of each row that asked for them.
    ///
    /// A decode step (every row a different sequence) gives each sequence the bits it would get
    /// decoded alone, whatever the number of rows: its matrix products keep each column in the
    /// one-column order (`WType::gemv_exact_cols` columns per kernel call at most). Rows of a
    /// sequence that has several in the pass are summed as a llama.cpp batch of them would be.
    ///
    /// Errors, before anything is computed: no rows or more than `n_batch`, a sequence that does
    /// not exist, a token outside the vocabulary, a sequence whose rows do not fit its context,
    /// two rows of one sequence asking for logits. Cancelled: no sequence advances.
    pub fn forward_batch(&mut self, rows: &[BatchRow]) -> Result<()> {
        if rows.is_empty() || rows.len() > self.params.n_batch {
            return Err(RuntimeError::InvalidParameter {
                name: "rows",
                problem: format!("{} rows (1..={} per pass)", rows.len(), self.params.n_batch),
            });
        }
        self.model.check_file()?;
        crate::stack::check_stack()?;
        self.seq_rows.iter_mut().for_each(|n| *n = 0);
        for (i, r) in rows.iter().enumerate() {
            let seq = r.seq as usize;
            self.check_seq(seq)?;
            self.check_tokens(&[r.token])?;
            if r.logits && rows[i + 1..].iter().any(|o| o.logits && o.seq == r.seq) {
                return Err(RuntimeError::InvalidParameter {
                    name: "logits",
                    problem: format!("two rows of sequence {seq} ask for logits (one per pass)"),
                });
            }
            self.seq_rows[seq] += 1;
        }
        for seq in 0..self.params.n_seq {
            self.check_room(seq, self.seq_rows[seq] as usize)?;
        }
        let _computing = self.pool.computing();
        self.forward(Rows::Batch(rows))?;
        self.model.check_file()
    }

    /// What every prefill/decode checks first: the model file, the caller's stack, the
    /// sequence, the tokens and the room in the context.
    fn check(&self, seq: usize, tokens: &[Token]) -> Result<()> {
        self.model.check_file()?;
        crate::stack::check_stack()?;
        self.check_seq(seq)?;
        self.check_tokens(tokens)?;
        self.check_room(seq, tokens.len())
    }

    /// Sequence `seq` exists.
    fn check_seq(&self, seq: usize) -> Result<()> {
        if seq >= self.params.n_seq {
            return Err(RuntimeError::InvalidParameter {
                name: "seq",
                problem: format!("sequence {seq} (this session holds {})", self.params.n_seq),
            });
        }
        Ok(())
    }

    /// Every token is in the vocabulary.
    fn check_tokens(&self, tokens: &[Token]) -> Result<()> {
        let n_vocab = self.model.spec.n_vocab;
        match tokens.iter().find(|&&t| t as usize >= n_vocab) {
            Some(&bad) => Err(RuntimeError::BadToken { id: bad, n_vocab }),
            None => Ok(()),
        }
    }

    /// `n` more positions fit sequence `seq`'s context.
    fn check_room(&self, seq: usize, n: usize) -> Result<()> {
        let needed = self.seq_len[seq] + n;
        if needed > self.params.n_ctx {
            return Err(RuntimeError::ContextFull {
                needed,
                n_ctx: self.params.n_ctx,
            });
        }
        Ok(())
    }
}
