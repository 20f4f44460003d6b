//! Session settings and their validation: every value is checked and every "0 = automatic" is
//! resolved once, when a session is planned, so nothing later has to re-check them.

use std::time::Duration;

use tensorsharp_models::ModelSpec;

use super::kv::KvType;
use crate::error::{Result, RuntimeError};
use crate::plan::LockMode;
use crate::pool::check_cpus;

/// Largest context a session accepts (positions).
pub const MAX_CTX: usize = 1 << 20;
/// Largest prefill chunk (tokens).
pub const MAX_BATCH: usize = 4096;
/// Most threads a session runs.
pub const MAX_THREADS: usize = 256;
/// Most sequences a session holds at once.
pub const MAX_SEQ: usize = 256;
/// The largest context a session gets by default (the board profile's may be smaller) when the
/// model's training context is larger.
pub const DEFAULT_MAX_CTX: usize = 4096;

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Context length (positions in the KV cache). 0 = the model's training context, capped at
    /// the board profile's context (4096 on most boards, 2048 on 4 GB ones; `tsharp board`).
    pub n_ctx: usize,
    /// Tokens per prefill chunk (at least `n_seq`: a batched decode step is one row per sequence).
    pub n_batch: usize,
    /// Sequences held at once, each with its own `n_ctx` positions of KV cache, decoded together
    /// by [`Session::forward_batch`](super::Session::forward_batch) (a daemon's clients); 1 for
    /// one conversation.
    pub n_seq: usize,
    /// Threads, the caller included. 0 = the board profile's: one per big core this process may
    /// use (all cores on a homogeneous CPU), pinned to the big cores on a big.LITTLE one unless
    /// [`cpus`](Self::cpus) is set.
    pub n_threads: usize,
    /// KV cache element type.
    pub kv_type: KvType,
    /// How long idle workers spin before parking.
    pub spin: Duration,
    /// Multiply every weight with f32 activations instead of 8-bit quantized ones: slower, a
    /// little closer to exact arithmetic; for accuracy studies (llama.cpp quantizes, so the
    /// default matches it better).
    pub f32_activations: bool,
    /// RAM budget in bytes for the whole plan; `None`: the board profile's share of the cgroup
    /// limit or `MemAvailable`, whichever is smaller.
    pub ram_budget: Option<u64>,
    /// Lock the arena and the weights in RAM.
    pub mlock: LockMode,
    /// CPUs to pin the threads to (thread `i` on `cpus[i % len]`); empty: unpinned.
    pub cpus: Vec<usize>,
    /// `SCHED_FIFO` priority (1..=99) for the threads; 0: normal scheduling.
    pub rt_priority: i32,
    /// Back the arena with transparent huge pages (2 MiB aligned, `MADV_HUGEPAGE`).
    pub huge_pages: bool,
    /// How streamed weights are read (a model under a RAM budget that streams).
    pub direct_io: DirectIo,
}

/// How the prefetch thread reads streamed weights from the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectIo {
    /// `O_DIRECT` when the page cache cannot keep the streamed bytes between tokens (the RAM
    /// available now, cgroup limit included, less the session's plan, is under twice the bytes
    /// streamed per token):
    /// every token reads from storage then, and going around the page cache spares the copy
    /// into it, the memory (charged to the cgroup) and the eviction of other processes' pages.
    /// Otherwise through the page cache, which keeps the file after the first token.
    #[default]
    Auto,
    /// Always `O_DIRECT` (where the file system supports it; otherwise the page cache, with a
    /// warning).
    On,
    /// Always through the page cache.
    Off,
}

impl DirectIo {
    /// `auto`, `on` or `off`.
    pub fn from_name(s: &str) -> crate::error::Result<DirectIo> {
        match s {
            "auto" => Ok(DirectIo::Auto),
            "on" | "true" | "yes" => Ok(DirectIo::On),
            "off" | "false" | "no" => Ok(DirectIo::Off),
            _ => Err(crate::error::RuntimeError::InvalidParameter {
                name: "direct-io",
                problem: format!("{s:?} (expected auto, on or off)"),
            }),
        }
    }
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            n_ctx: 0,
            n_batch: 64,
            n_seq: 1,
            n_threads: 0,
            kv_type: KvType::F16,
            spin: Duration::from_micros(500),
            f32_activations: false,
            ram_budget: None,
            mlock: LockMode::Off,
            cpus: Vec::new(),
            rt_priority: 0,
            huge_pages: false,
            direct_io: DirectIo::Auto,
        }
    }
}

fn invalid(name: &'static str, problem: String) -> RuntimeError {
    RuntimeError::InvalidParameter { name, problem }
}

impl SessionParams {
    /// These settings checked against their ranges and the model, with the automatic values
    /// (zeros) resolved: the context from the model and the board profile, the threads (and
    /// their pinning on a big.LITTLE board) from the board profile and the CPUs this process may
    /// use, the prefill chunk capped at the context.
    pub(crate) fn resolve(mut self, spec: &ModelSpec) -> Result<SessionParams> {
        let board = &crate::board::host().defaults;
        if self.n_ctx == 0 {
            self.n_ctx = spec.n_ctx_train.clamp(1, board.n_ctx.clamp(1, DEFAULT_MAX_CTX));
        }
        if self.n_ctx > MAX_CTX {
            return Err(invalid("n_ctx", format!("{} is more than 1M positions", self.n_ctx)));
        }
        if self.n_batch == 0 || self.n_batch > MAX_BATCH {
            return Err(invalid("n_batch", format!("{} (1..={MAX_BATCH})", self.n_batch)));
        }
        if self.n_seq == 0 || self.n_seq > MAX_SEQ {
            return Err(invalid("n_seq", format!("{} (1..={MAX_SEQ})", self.n_seq)));
        }
        self.n_batch = self.n_batch.min(self.n_ctx).max(self.n_seq);
        if self.n_threads == 0 {
            // The profile counts the big cores in this process's affinity mask; a cgroup CPU
            // quota can allow fewer.
            self.n_threads = board.threads.clamp(1, crate::pool::process_cpus());
            if self.cpus.is_empty() && !board.cpus.is_empty() {
                self.cpus = board.cpus.iter().copied().take(self.n_threads).collect();
            }
        }
        if self.n_threads > MAX_THREADS {
            return Err(invalid("n_threads", format!("{} (1..={MAX_THREADS})", self.n_threads)));
        }
        for (what, dim) in [("key", spec.head_dim), ("value", spec.head_dim_v)] {
            if self.kv_type.row_bytes(dim).is_none() {
                return Err(invalid(
                    "kv type",
                    format!(
                        "{:?} needs head dimensions divisible by 32, this model's {what} heads have {dim}",
                        self.kv_type
                    ),
                ));
            }
        }
        if !self.cpus.is_empty() {
            check_cpus(&self.cpus).map_err(|problem| invalid("cpus", problem))?;
        }
        if !(0..=99).contains(&self.rt_priority) {
            return Err(invalid(
                "rt_priority",
                format!("{} (1..=99, or 0 for normal scheduling)", self.rt_priority),
            ));
        }
        Ok(self)
    }
}
