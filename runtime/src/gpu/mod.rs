//! GPU placement and scheduling, independent of a GPU API: the [`device::Device`] operations the
//! scheduler needs (device memory, a copy stream and a compute stream, events), the two-stream
//! layer scheduler ([`schedule`]) that runs a [`ResidencyPlan`](crate::residency::ResidencyPlan)
//! computed against the GPU budget (resident on the device, or copied into double-buffered
//! device slots ahead of the layer that reads them), and a simulated device ([`sim`]) with its
//! own memory budget, a copy engine with a bandwidth, byte counters, injected delays and a
//! hazard checker, which the scheduler is tested against on machines without a GPU. The CUDA
//! backend implements the same trait (not built yet: issue 23).

pub mod device;
pub mod schedule;
pub mod sim;
