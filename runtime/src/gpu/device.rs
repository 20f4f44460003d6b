//! What the layer scheduler needs from a GPU: device buffers under a budget, host-to-device
//! copies on a copy stream, kernels on a compute stream, and events between the two.

use crate::error::Result;

/// A device buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufId(pub usize);

/// An event recorded on a stream: complete when everything queued on that stream before it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId(pub usize);

/// The two streams of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Kernels.
    Compute,
    /// Host-to-device weight copies.
    Copy,
}

/// A buffer a kernel reads and the copy whose bytes it expects to find there (the copy's tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The buffer.
    pub buf: BufId,
    /// The tag of the copy that must have filled it.
    pub tag: u64,
}

/// The operations the scheduler queues. Every call only queues: work runs in stream order,
/// and across streams only as ordered by events. The kernels of a step are queued by the
/// scheduler's caller, on the compute stream, between the waits and records the scheduler
/// places around it ([`LayerScheduler::run_pass`](super::schedule::LayerScheduler::run_pass)).
/// A real device reports a failed queued operation from [`synchronize`](Device::synchronize).
pub trait Device {
    /// Allocates `bytes` of device memory; `Err(OverBudget)` beyond the device budget.
    fn alloc(&mut self, bytes: u64, what: &'static str) -> Result<BufId>;
    /// Queues on the copy stream the copy of the bytes named `tag` (the resident weights, or
    /// fill `tag` of the streamed units: unit `tag % units`) into `buf`; `len` bytes.
    fn copy_in(&mut self, buf: BufId, len: u64, tag: u64);
    /// Records an event on `stream`.
    fn record(&mut self, stream: Stream) -> EventId;
    /// Makes `stream` wait for `event` before what is queued on it next.
    fn wait(&mut self, stream: Stream, event: EventId);
    /// Waits until both streams are idle; the first error of any queued operation.
    fn synchronize(&mut self) -> Result<()>;
}
