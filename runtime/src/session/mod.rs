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
use crate::model::Model;
use crate::plan::{LockMode, SessionPlan};
use crate::pool::{PoolOptions, ThreadPool};
use crate::tokenizer::Token;

pub use kv::{KvCache, KvType};
use layout::{Buffers, Layout, RopeTables};
pub use params::SessionParams;
pub use profile::ProfileOp;
use profile::Profiler;

/// A conversation over a model.
pub struct Session {
    model: Arc<Model>,
    params: SessionParams,
    pool: ThreadPool,
    plan: MemoryPlan,
    arena: Arena,
    buffers: Buffers,
    kv: KvCache,
    ropes: RopeTables,
    /// Positions in the KV cache.
    n_past: usize,
    cancel: Arc<AtomicBool>,
    warnings: Vec<String>,
    full_plan: SessionPlan,
    profiler: Profiler,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_ctx", &self.params.n_ctx)
            .field("n_past", &self.n_past)
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
            buffers,
            kv,
            ropes,
            n_past: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            warnings,
            full_plan,
            profiler: Profiler::default(),
        })
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

    /// Positions already in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx
    }

    /// The token ids of the cached positions, oldest first.
    pub fn cached_tokens(&self) -> &[Token] {
        // SAFETY: shared borrow of self: no forward pass runs; n_past <= n_ctx ids are written.
        unsafe { std::slice::from_raw_parts(self.kv.tokens_ptr(&self.arena), self.n_past) }
    }

    /// Forgets the conversation (the KV cache is overwritten from position 0) and clears the
    /// cancel flag.
    pub fn reset(&mut self) {
        self.n_past = 0;
        self.clear_cancel();
    }

    /// Keeps the first `n` cached positions (no-op when `n >= n_past`); the next prefill or
    /// decode continues after them. The logits stay those of the last token processed until
    /// then: prefill at least one token before sampling.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Prompt caching: keeps the longest prefix of the cache that equals the start of `tokens`,
    /// short of `tokens`' last token (so at least one token is left to prefill for fresh logits),
    /// and returns its length. The caller prefills `tokens[returned..]`.
    pub fn keep_common_prefix(&mut self, tokens: &[Token]) -> usize {
        let limit = tokens.len().saturating_sub(1);
        let common = self
            .cached_tokens()
            .iter()
            .zip(&tokens[..limit])
            .take_while(|(a, b)| a == b)
            .count();
        self.truncate(common);
        common
    }

    /// Replaces this session's conversation with the first `n` positions of `other`'s (another
    /// session over the same model with the same KV type; the contexts may differ). Returns
    /// [`RuntimeError::StateMismatch`] or [`RuntimeError::ContextFull`] and changes nothing when
    /// it cannot. The logits are not copied: prefill at least one token before sampling.
    pub fn copy_prefix_from(&mut self, other: &Session, n: usize) -> Result<()> {
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
        if n > other.n_past {
            return Err(RuntimeError::InvalidParameter {
                name: "n",
                problem: format!("{n} positions asked, the other session holds {}", other.n_past),
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
        unsafe { self.kv.copy_prefix_from(&self.arena, &other.kv, &other.arena, n) };
        self.n_past = n;
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

    /// The logits of the last token processed.
    pub fn logits(&self) -> &[f32] {
        // SAFETY: shared borrow of self: no forward pass is running.
        unsafe { self.arena.slice(self.buffers.logits) }
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
        let _computing = self.pool.computing();
        for (i, chunk) in tokens.chunks(self.params.n_batch).enumerate() {
            let last = (i + 1) * self.params.n_batch >= tokens.len();
            self.forward(chunk, last)?;
        }
        self.model.check_file()?; // the weights read were the file's, not zeros
        Ok(self.logits())
    }

    /// Processes one token and returns the logits of the next.
    pub fn decode(&mut self, token: Token) -> Result<&[f32]> {
        self.check(&[token])?;
        let _computing = self.pool.computing();
        self.forward(&[token], true)?;
        self.model.check_file()?;
        Ok(self.logits())
    }

    /// What every prefill/decode checks first: the model file, the caller's stack, the tokens
    /// and the room in the context.
    fn check(&self, tokens: &[Token]) -> Result<()> {
        self.model.check_file()?;
        crate::stack::check_stack()?;
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
}
