//! The per-operation profiler of the forward pass: off by default; on, the pass reads the clock
//! between operations and adds the time to the operation's total.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// An operation kind the profiler times (see [`Session::set_profiling`](super::Session::set_profiling)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileOp {
    /// Token embeddings and the RoPE tables of the chunk.
    Embedding,
    /// RMS norms and residual adds.
    Norms,
    /// The q, k and v projections.
    QkvProjection,
    /// Biases, QK-norm, RoPE and the K/V rows into the cache.
    QkvPrepare,
    /// Attention over the cache.
    Attention,
    /// The attention output projection.
    AttentionOutput,
    /// The FFN gate and up projections.
    FfnGateUp,
    /// The FFN activation (SwiGLU / GeGLU).
    FfnActivation,
    /// The FFN down projection.
    FfnDown,
    /// The output norm and the logits.
    Logits,
}

impl ProfileOp {
    /// Number of operation kinds.
    pub const COUNT: usize = 10;

    /// Every kind, in the order of [`ProfileOp::index`].
    pub const ALL: [ProfileOp; Self::COUNT] = [
        ProfileOp::Embedding,
        ProfileOp::Norms,
        ProfileOp::QkvProjection,
        ProfileOp::QkvPrepare,
        ProfileOp::Attention,
        ProfileOp::AttentionOutput,
        ProfileOp::FfnGateUp,
        ProfileOp::FfnActivation,
        ProfileOp::FfnDown,
        ProfileOp::Logits,
    ];

    /// Position in [`ProfileOp::ALL`] and in [`Session::profile`](super::Session::profile)'s totals.
    pub fn index(self) -> usize {
        self as usize
    }

    /// What the operation covers, for reports.
    pub fn name(self) -> &'static str {
        match self {
            ProfileOp::Embedding => "embedding + rope tables",
            ProfileOp::Norms => "norms + residual adds",
            ProfileOp::QkvProjection => "q/k/v projections",
            ProfileOp::QkvPrepare => "bias, qk-norm, rope, kv store",
            ProfileOp::Attention => "attention",
            ProfileOp::AttentionOutput => "attention output projection",
            ProfileOp::FfnGateUp => "ffn gate/up projections",
            ProfileOp::FfnActivation => "ffn activation",
            ProfileOp::FfnDown => "ffn down projection",
            ProfileOp::Logits => "output norm + logits",
        }
    }
}

/// Nanoseconds per operation kind, summed over the forward passes since profiling was turned on.
#[derive(Debug, Default)]
pub(crate) struct Profiler {
    on: bool,
    totals: [AtomicU64; ProfileOp::COUNT],
}

impl Profiler {
    /// Turns timing on or off and clears the totals.
    pub(crate) fn set(&mut self, on: bool) {
        self.on = on;
        self.totals.iter().for_each(|t| t.store(0, Ordering::Relaxed));
    }

    /// The clock of one forward pass: `None` when profiling is off (laps then cost a branch).
    pub(crate) fn start(&self) -> Option<Instant> {
        self.on.then(Instant::now)
    }

    /// Adds the time since the last lap to `op` and restarts the clock.
    pub(crate) fn lap(&self, op: ProfileOp, clock: &mut Option<Instant>) {
        if let Some(t0) = clock {
            let now = Instant::now();
            self.totals[op.index()].fetch_add((now - *t0).as_nanos() as u64, Ordering::Relaxed);
            *clock = Some(now);
        }
    }

    /// The totals, indexed by [`ProfileOp::index`].
    pub(crate) fn totals(&self) -> [u64; ProfileOp::COUNT] {
        std::array::from_fn(|i| self.totals[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::ProfileOp;

    #[test]
    fn every_op_sits_at_its_index() {
        for (i, op) in ProfileOp::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "{op:?}");
        }
    }
}
