//! The session memory plan: everything a session will hold in RAM, itemised and totalled before
//! anything large is allocated, and checked against a budget (`--ram-budget`, else the board
//! profile's share of the cgroup memory limit or `MemAvailable`, whichever is smaller).
//!
//! Items: the weights (the mapped model file; pinned with `--mlock`), the arena (KV cache,
//! activations, scratch, per-thread buffers, logits — see [`MemoryPlan`]), the tokenizer tables,
//! the sampler's buffers and the worker threads' stacks.

use std::fmt::Write as _;

use crate::arena::MemoryPlan;
use crate::error::{Result, RuntimeError};
use crate::session::KvType;

/// Stack size of each worker thread (the forward pass keeps its buffers in the arena, so workers
/// need little stack); planned and set explicitly so the plan is exact.
pub const WORKER_STACK: usize = 256 * 1024;

/// Whether the arena and the weights are locked in RAM (`mlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// No locking: weights are paged in on first use and may be evicted under pressure.
    #[default]
    Off,
    /// Lock; if the limit (`RLIMIT_MEMLOCK`) forbids it, warn and continue unlocked.
    Try,
    /// Lock or fail to load.
    Required,
}

impl LockMode {
    /// Parses `off`, `on`/`try`, `required`.
    pub fn from_name(s: &str) -> Result<LockMode> {
        match s {
            "off" | "no" | "false" => Ok(LockMode::Off),
            "on" | "try" | "yes" | "true" => Ok(LockMode::Try),
            "required" => Ok(LockMode::Required),
            _ => Err(RuntimeError::InvalidParameter {
                name: "mlock",
                problem: format!("{s:?} (expected off, on or required)"),
            }),
        }
    }
}

/// A RAM budget and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// `--ram-budget`, `cgroup memory.max`, `MemAvailable`, ...
    pub source: String,
}

/// The full plan of a session.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Context length (positions).
    pub n_ctx: usize,
    /// Prefill chunk (tokens).
    pub n_batch: usize,
    /// Sequences held at once (each `n_ctx` positions of KV cache and a sampler).
    pub n_seq: usize,
    /// Threads, the caller included.
    pub n_threads: usize,
    /// KV cache type.
    pub kv_type: KvType,
    /// Bytes of the mapped model file (all weights are read every token, so all are resident).
    pub weights: u64,
    /// Whether the weights (and the arena) are locked in RAM.
    pub lock: LockMode,
    /// The arena's slots.
    pub arena: MemoryPlan,
    /// The arena allocation (the slots rounded up to whole pages).
    pub arena_bytes: u64,
    /// KV cache bytes per context position (all layers), for advice.
    pub kv_bytes_per_pos: u64,
    /// The parsed GGUF header (metadata, tensor infos) and the norms copied out at load.
    pub model_tables: u64,
    /// Tokenizer tables.
    pub tokenizer: u64,
    /// Sampler buffers.
    pub sampler: u64,
    /// Worker thread stacks.
    pub thread_stacks: u64,
    /// The budget the plan is checked against (none found: unchecked).
    pub budget: Option<Budget>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl SessionPlan {
    /// Total bytes the session is planned to hold.
    pub fn total(&self) -> u64 {
        self.weights + self.arena_bytes + self.model_tables + self.tokenizer + self.sampler + self.thread_stacks
    }

    /// KV cache bytes.
    pub fn kv_bytes(&self) -> u64 {
        self.kv_bytes_per_pos * (self.n_ctx * self.n_seq) as u64
    }

    /// `Err(OverBudget)` with the numbers and what to change when the plan exceeds its budget.
    pub fn check_budget(&self) -> Result<()> {
        let Some(b) = &self.budget else { return Ok(()) };
        let total = self.total();
        if total <= b.bytes {
            return Ok(());
        }
        let over = total - b.bytes;
        let mut advice = String::new();
        let fixed = total - self.kv_bytes();
        if self.kv_bytes_per_pos > 0 && fixed < b.bytes {
            let ctx_fit = (b.bytes - fixed) / self.kv_bytes_per_pos / self.n_seq.max(1) as u64;
            // Whole multiples of 256 positions are the useful sizes.
            let ctx_fit = ctx_fit / 256 * 256;
            if ctx_fit >= 256 {
                let _ = write!(
                    advice,
                    "; the KV cache takes {:.1} MiB at --ctx {}: --ctx {ctx_fit} fits",
                    mib(self.kv_bytes()),
                    self.n_ctx
                );
            }
            if self.kv_type != KvType::Q8_0 {
                let q8 =
                    KvType::Q8_0.row_bytes(32).unwrap_or(34) as f64 / self.kv_type.row_bytes(32).unwrap_or(64) as f64;
                let saved = (self.kv_bytes() as f64 * (1.0 - q8)) as u64;
                let _ = write!(advice, "; --kv-type q8_0 saves {:.1} MiB", mib(saved));
            }
        } else {
            let _ = write!(
                advice,
                "; the weights alone take {:.1} MiB: use a smaller or more strongly quantized model, or raise the budget",
                mib(self.weights)
            );
        }
        Err(RuntimeError::OverBudget {
            needed: total,
            budget: b.bytes,
            message: format!(
                "the memory plan needs {:.1} MiB but the budget ({}) is {:.1} MiB: over by {:.1} MiB{advice}",
                mib(total),
                b.source,
                mib(b.bytes),
                mib(over)
            ),
        })
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let pinned = if self.lock == LockMode::Off {
            "mapped"
        } else {
            "pinned (mlock)"
        };
        let _ = writeln!(
            s,
            "memory plan: n_ctx {}, n_batch {}, {} threads, kv {}{}",
            self.n_ctx,
            self.n_batch,
            self.n_threads,
            self.kv_type.name(),
            if self.n_seq > 1 {
                format!(", {} sequences", self.n_seq)
            } else {
                String::new()
            }
        );
        let mut row = |name: &str, b: u64| {
            let _ = writeln!(s, "  {name:<44} {:>12} B {:>10.2} MiB", b, mib(b));
        };
        row(&format!("weights ({pinned})"), self.weights);
        for it in self.arena.items() {
            row(&format!("arena: {}", it.name), it.bytes as u64);
        }
        let slots: u64 = self.arena.items().iter().map(|i| i.bytes as u64).sum();
        row("arena: alignment and page rounding", self.arena_bytes - slots);
        row("model header, norms and biases", self.model_tables);
        row("tokenizer tables", self.tokenizer);
        row("sampler buffers", self.sampler);
        row("worker thread stacks", self.thread_stacks);
        row("total", self.total());
        match &self.budget {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "budget: {:.2} MiB ({}), {}",
                    mib(b.bytes),
                    b.source,
                    if self.total() <= b.bytes { "fits" } else { "OVER" }
                );
            }
            None => {
                let _ = writeln!(s, "budget: none found (unchecked)");
            }
        }
        s
    }
}

/// Parses a size: `512M`, `1.5G`, `2GiB`, `1048576` (bytes), `64k`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => 0,
    };
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    if mult == 0 || !v.is_finite() || v < 0.0 || v * mult as f64 > u64::MAX as f64 / 2.0 {
        return Err(RuntimeError::InvalidParameter {
            name: "size",
            problem: format!("{s:?} (expected a number with an optional unit: 512M, 1.5G, 2GiB)"),
        });
    }
    Ok((v * mult as f64) as u64)
}

/// Parses a RAM budget: a size ([`parse_size`]) or a percentage of the RAM available to this
/// process now (`60%`: of the smaller of `MemAvailable` and the cgroup limit).
pub fn parse_budget(s: &str) -> Result<u64> {
    parse_share(s, "ram budget", "the RAM available", || {
        crate::board::host().usable_now().map(|(avail, _)| avail)
    })
}

/// A size, or `N%` of `total()` (asked only then; `None`: unknown, an error naming `of`): the
/// parser of `--ram-budget` and `--gpu-budget`. `name` names the parameter in errors.
pub fn parse_share(s: &str, name: &'static str, of: &str, total: impl FnOnce() -> Option<u64>) -> Result<u64> {
    let Some(pct) = s.trim().strip_suffix('%') else {
        return parse_size(s);
    };
    let bad = |problem: String| RuntimeError::InvalidParameter { name, problem };
    let p: f64 = pct.trim().parse().map_err(|_| {
        bad(format!(
            "{s:?} (expected a size such as 512M or a percentage such as 60%)"
        ))
    })?;
    if !(p > 0.0 && p <= 100.0) {
        return Err(bad(format!("{s:?} (a percentage must be above 0 and at most 100)")));
    }
    let total = total().ok_or_else(|| bad(format!("{s:?}: {of} is unknown here; give a size (512M, 2G)")))?;
    Ok((total as f64 * p / 100.0) as u64)
}

/// Address space kept free under `RLIMIT_AS` for what the plan does not itemise (allocator
/// bookkeeping, the C library's own mappings, a few small buffers).
pub const ADDRESS_SPACE_MARGIN: u64 = 16 << 20;

/// Bytes of address space this process may still map under `RLIMIT_AS` (`ulimit -v`): the soft
/// limit minus the current `VmSize`. `None` when unlimited or unknown. Every allocation counts
/// against this limit, and one that does not fit ends a Rust program with an abort, so the
/// model load and the session plan check it first.
pub fn address_space_room() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let (soft, _) = getrlimit(Resource::RLIMIT_AS).ok()?;
    if soft == RLIM_INFINITY {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?;
    Some(soft.saturating_sub(kb * 1024))
}

/// Bytes of this process's program image: every file-backed mapping except `exclude` (the model
/// file), i.e. the executable and its shared libraries, read from `/proc/self/maps`. The memory
/// plan covers the session; the image belongs to the process (a debug build's is ~20 MiB, a
/// stripped release build's ~3 MiB), and `mlockall` makes all of it resident.
pub fn program_image_bytes(exclude: &std::path::Path) -> u64 {
    let exclude = std::fs::canonicalize(exclude).unwrap_or_else(|_| exclude.to_path_buf());
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let path = f.nth(4)?;
            if !path.starts_with('/') || std::path::Path::new(path) == exclude {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            Some(u64::from_str_radix(hi, 16).ok()? - u64::from_str_radix(lo, 16).ok()?)
        })
        .sum()
}

/// What a process needs besides its memory plan and its program image (the C library's heap,
/// the main thread's stack, small buffers): kept free when the weights are fitted to a budget.
pub const PROCESS_MARGIN: u64 = 8 << 20;

/// The RAM budget when none is given: the board profile's share (100 % on a generic machine,
/// less on boards whose GPU and media engines share the DRAM) of the smaller of this process's
/// cgroup memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`) and `MemAvailable`, read
/// now (`tensorsharp_boards::Board::ram_budget_now`).
pub fn detect_ram_budget() -> Option<Budget> {
    crate::board::host()
        .ram_budget_now()
        .map(|(bytes, source)| Budget { bytes, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        for bad in ["", "abc", "12Q", "-1G", "1e400G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_modes_parse() {
        assert_eq!(LockMode::from_name("required").unwrap(), LockMode::Required);
        assert_eq!(LockMode::from_name("on").unwrap(), LockMode::Try);
        assert!(LockMode::from_name("maybe").is_err());
    }

    #[test]
    fn detected_budget_is_positive() {
        // Linux always has /proc/meminfo.
        let b = detect_ram_budget().unwrap();
        assert!(b.bytes > 0, "{b:?}");
    }
}
