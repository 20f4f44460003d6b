//! GPU placement, scheduling and execution:
//!
//! - [`device`]: the operations the scheduler needs from a GPU, independent of a GPU API
//!   (device memory, a copy stream and a compute stream, events);
//! - [`schedule`]: the two-stream layer scheduler that runs a
//!   [`ResidencyPlan`](crate::residency::ResidencyPlan) computed against the GPU budget
//!   (resident on the device, or copied into double-buffered device slots ahead of the layer
//!   that reads them);
//! - [`sim`]: a simulated device (its own memory budget, a copy engine with a bandwidth, byte
//!   counters, injected delays, a hazard checker) the scheduler is tested against on machines
//!   without a GPU;
//! - [`program`]: the decode step as a fixed list of device operations built from the model;
//! - [`host`]: that program run on the CPU with the device kernels' arithmetic (the reference);
//! - `cuda` (feature `cuda`): the program on an NVIDIA GPU through the CUDA driver API, loaded
//!   at run time (a binary built with the feature still runs where no driver is installed).

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod host;
pub mod program;
pub mod schedule;
pub mod sim;

use crate::error::Result;

/// Something that runs a model's decode step for one sequence: the session hands it each token
/// (prefill token by token) when a GPU runs the model ([`crate::session::Session::set_backend`]).
/// Its KV cache is its own; positions at or after `pos` are overwritten by later steps, so
/// truncating a conversation needs nothing from it.
pub trait DecodeBackend: Send {
    /// What runs the steps (for logs and `tsharp` notices).
    fn name(&self) -> &'static str;
    /// Positions its KV cache holds.
    fn n_ctx(&self) -> usize;
    /// Runs `token` at position `pos` (every position before it already run), and writes the
    /// next token's logits (`n_vocab` values) into `logits` when given.
    fn step(&mut self, token: u32, pos: usize, logits: Option<&mut [f32]>) -> Result<()>;
}
