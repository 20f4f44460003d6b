//! The two-stream layer scheduler: runs the forward pass's steps on a [`Device`] under a
//! [`ResidencyPlan`] computed against the GPU budget. Matrices the plan keeps "in RAM" are
//! resident on the device (copied once); streamed units are copied, in forward order, into a
//! ring of device slots on the copy stream while the compute stream runs the steps before them:
//!
//! - the compute stream waits for the copy of a slot (`copy_done`) before the step that reads it;
//! - the copy stream waits until the compute stream has finished with a slot (`slot_free`) before
//!   overwriting it with the unit `ring` fills later.
//!
//! With two slots the copy of unit `i + 1` runs while unit `i` computes. [`Mutation`] removes one
//! of the two waits, for the tests that show the simulated device catches the hazard.

use super::device::{BufId, Device, EventId, Read, Stream};
use crate::error::Result;
use crate::residency::{Placement, ResidencyPlan, Step};

/// A wait the scheduler leaves out (tests only: each makes a hazard possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// The compute stream does not wait for a slot's copy.
    NoCopyWait,
    /// The copy stream does not wait for the compute stream to finish with a slot.
    NoSlotFreeWait,
}

/// The tag of the resident weights' upload.
pub const RESIDENT_TAG: u64 = u64::MAX;

/// Runs forward passes on a device under a GPU residency plan.
pub struct LayerScheduler {
    plan: ResidencyPlan,
    /// The forward pass's steps in order, each with its streamed unit, if any, and whether it
    /// reads resident matrices.
    steps: Vec<(Step, Option<usize>, bool)>,
    resident: Option<BufId>,
    resident_ready: Option<EventId>,
    slots: Vec<BufId>,
    /// Per slot: the event after the last step that read it.
    slot_free: Vec<Option<EventId>>,
    /// Per fill in flight (index fill % ring): the event after its copy.
    copy_done: Vec<Option<EventId>>,
    /// Fills issued and consumed (fill `f` holds unit `f % units` in slot `f % ring`).
    issued: u64,
    consumed: u64,
    mutation: Option<Mutation>,
}

impl LayerScheduler {
    /// Allocates the resident weights and the slots on `dev`, queues the resident upload and the
    /// first `ring` fills. `steps` are the forward pass's steps in order (every layer, every
    /// output chunk); those with a streamed unit in `plan` are read from the slots.
    pub fn new<D: Device>(
        dev: &mut D,
        plan: ResidencyPlan,
        steps: &[Step],
        mutation: Option<Mutation>,
    ) -> Result<Self> {
        let resident = if plan.resident_bytes > 0 {
            let b = dev.alloc(plan.resident_bytes, "resident weights")?;
            dev.copy_in(b, plan.resident_bytes, RESIDENT_TAG);
            Some(b)
        } else {
            None
        };
        let resident_ready = resident.map(|_| dev.record(Stream::Copy));
        let mut slots = Vec::new();
        for _ in 0..plan.ring {
            slots.push(dev.alloc(plan.slot_bytes, "weight slot")?);
        }
        let steps = steps
            .iter()
            .map(|&s| {
                let resident = plan
                    .matrices
                    .iter()
                    .zip(&plan.placements)
                    .any(|(m, p)| m.step == s && matches!(p, Placement::Ram { .. }));
                (s, plan.units.iter().position(|u| u.step == s), resident)
            })
            .collect();
        let mut s = LayerScheduler {
            slot_free: vec![None; plan.ring],
            copy_done: vec![None; plan.ring],
            plan,
            steps,
            resident,
            resident_ready,
            slots,
            issued: 0,
            consumed: 0,
            mutation,
        };
        if let Some(e) = s.resident_ready {
            dev.wait(Stream::Compute, e);
        }
        for _ in 0..s.plan.ring {
            s.issue(dev);
        }
        Ok(s)
    }

    /// Queues the next fill: the copy stream waits for its slot to be free, copies the unit.
    fn issue<D: Device>(&mut self, dev: &mut D) {
        let n_units = self.plan.units.len() as u64;
        if n_units == 0 {
            return;
        }
        let f = self.issued;
        let slot = (f % self.plan.ring as u64) as usize;
        if let Some(e) = self.slot_free[slot] {
            if self.mutation != Some(Mutation::NoSlotFreeWait) {
                dev.wait(Stream::Copy, e);
            }
        }
        let unit = &self.plan.units[(f % n_units) as usize];
        dev.copy_in(self.slots[slot], unit.bytes, f);
        self.copy_done[slot] = Some(dev.record(Stream::Copy));
        self.issued += 1;
    }

    /// Queues one forward pass: for each step, the waits for its weights, then `step_fn`, which
    /// queues the step's kernels on the compute stream (given the buffers it reads and the copy
    /// each expects there: the step's slot, then the resident weights), then the record that
    /// frees its slot and the next fill. Stops at the first error of `step_fn`.
    pub fn run_pass<D: Device>(
        &mut self,
        dev: &mut D,
        mut step_fn: impl FnMut(&mut D, Step, &[Read]) -> Result<()>,
    ) -> Result<()> {
        for i in 0..self.steps.len() {
            let (step, unit, resident_used) = self.steps[i];
            // At most two reads: the step's slot, then the resident weights (no allocation).
            let mut reads = [Read { buf: BufId(0), tag: 0 }; 2];
            let mut n_reads = 0;
            let mut slot = None;
            if unit.is_some() {
                let f = self.consumed;
                let s = (f % self.plan.ring as u64) as usize;
                if let Some(e) = self.copy_done[s] {
                    if self.mutation != Some(Mutation::NoCopyWait) {
                        dev.wait(Stream::Compute, e);
                    }
                }
                reads[n_reads] = Read {
                    buf: self.slots[s],
                    tag: f,
                };
                n_reads += 1;
                slot = Some(s);
            }
            if let (true, Some(b)) = (resident_used, self.resident) {
                reads[n_reads] = Read {
                    buf: b,
                    tag: RESIDENT_TAG,
                };
                n_reads += 1;
            }
            step_fn(dev, step, &reads[..n_reads])?;
            if let Some(s) = slot {
                self.slot_free[s] = Some(dev.record(Stream::Compute));
                self.consumed += 1;
                self.issue(dev);
            }
        }
        Ok(())
    }

    /// The resident weights' buffer, if any.
    pub fn resident(&self) -> Option<BufId> {
        self.resident
    }

    /// The plan.
    pub fn plan(&self) -> &ResidencyPlan {
        &self.plan
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gpu::sim::{SimConfig, SimDevice, Span};
    use crate::residency::Matrix;

    /// Eight layers of 2 MiB and an output matrix of 2 MiB in two chunks.
    fn model() -> (Vec<Matrix>, Vec<Step>) {
        let mut m = Vec::new();
        let mut steps = Vec::new();
        let mut off = 0;
        for l in 0..8 {
            for (n, b) in [("attn", 1u64 << 20), ("ffn", 1 << 20)] {
                m.push(Matrix {
                    name: format!("blk.{l}.{n}"),
                    step: Step::Layer(l),
                    file_offset: off,
                    bytes: b,
                    row_bytes: 1024,
                });
                off += b;
            }
            steps.push(Step::Layer(l));
        }
        for k in 0..2 {
            m.push(Matrix {
                name: format!("output {k}"),
                step: Step::Output(k),
                file_offset: off,
                bytes: 1 << 20,
                row_bytes: 1024,
            });
            off += 1 << 20;
            steps.push(Step::Output(k));
        }
        (m, steps)
    }

    fn device(memory: u64) -> SimDevice {
        SimDevice::new(SimConfig {
            memory,
            // 2 MiB in 4 ms.
            bandwidth: 512.0 * 1048576.0,
            copy_delay: Duration::from_micros(200),
            kernel_delay: Duration::ZERO,
        })
    }

    /// Three passes with 3 ms per step; the device's hazards and timeline.
    fn run(gpu_budget: u64, mutation: Option<Mutation>) -> (SimDevice, ResidencyPlan, Vec<String>, Vec<Span>) {
        let (m, steps) = model();
        let plan = ResidencyPlan::new(m, gpu_budget, 2).unwrap();
        let mut dev = device(gpu_budget);
        let mut s = LayerScheduler::new(&mut dev, plan.clone(), &steps, mutation).unwrap();
        for _ in 0..3 {
            s.run_pass(&mut dev, |dev, _, reads| {
                let name = if reads.first().is_some_and(|r| r.tag != RESIDENT_TAG) {
                    "streamed step"
                } else {
                    "resident step"
                };
                dev.launch(name, reads, 3_000_000);
                Ok(())
            })
            .unwrap();
        }
        dev.synchronize().unwrap();
        let (h, t) = (dev.hazards(), dev.timeline());
        (dev, plan, h, t)
    }

    #[test]
    fn placement_fits_every_gpu_budget_and_the_device_refuses_more() {
        let total = 18u64 << 20;
        for (budget, want_streamed) in [(total, 0u64), (12 << 20, 1), (8 << 20, 1), (5 << 20, 1)] {
            let (m, _) = model();
            let plan = ResidencyPlan::new(m, budget, 2).unwrap();
            assert!(plan.ram_bytes() <= budget, "{budget}");
            assert_eq!(plan.streamed_bytes_per_token() > 0, want_streamed > 0, "{budget}");
            // Everything the plan allocates fits the device.
            let mut dev = device(budget);
            let (_, steps) = model();
            LayerScheduler::new(&mut dev, plan, &steps, None).unwrap();
            assert!(dev.allocated() <= budget);
        }
        // Under the minimum (two slots of the largest unit): refused with the numbers.
        let (m, _) = model();
        assert!(ResidencyPlan::new(m, 3 << 20, 2).is_err());
        let mut dev = device(1 << 20);
        assert!(dev.alloc(2 << 20, "a slot").is_err());
    }

    #[test]
    fn streamed_layers_run_without_hazards_and_copies_overlap_compute() {
        let (dev, plan, hazards, timeline) = run(8 << 20, None);
        assert!(hazards.is_empty(), "{hazards:#?}");
        assert!(!plan.units.is_empty());
        // The copy engine moved the resident weights once and the streamed units per pass
        // (plus the fills issued ahead for the next pass).
        let per_pass = plan.streamed_bytes_per_token();
        let copied = dev.bytes_copied() - plan.resident_bytes;
        assert!(
            copied >= 3 * per_pass && copied <= 3 * per_pass + 2 * plan.slot_bytes,
            "{copied}"
        );
        // Fill f + 1's copy runs while fill f's step computes.
        let copies: Vec<&Span> = timeline
            .iter()
            .filter(|s| s.what == "copy" && s.tag != u64::MAX)
            .collect();
        let steps: Vec<&Span> = timeline.iter().filter(|s| s.what == "streamed step").collect();
        let mut overlapping = 0;
        for k in &steps {
            if let Some(c) = copies.iter().find(|c| c.tag == k.tag + 1) {
                if c.start < k.end && k.start < c.end {
                    overlapping += 1;
                }
            }
        }
        eprintln!(
            "{} units streamed, {overlapping} of {} streamed steps overlapped the next copy",
            plan.units.len(),
            steps.len()
        );
        assert!(
            overlapping * 2 >= steps.len(),
            "only {overlapping} of {} streamed steps overlapped the next copy: {timeline:#?}",
            steps.len()
        );
        // Streaming costs less than copying and computing one after the other.
        let end = timeline.iter().map(|s| s.end).max().unwrap();
        let serial: Duration = timeline.iter().map(|s| s.end - s.start).sum();
        assert!(end < serial, "{end:?} vs {serial:?} serial");
    }

    #[test]
    fn each_removed_wait_is_caught_as_a_hazard() {
        for m in [Mutation::NoCopyWait, Mutation::NoSlotFreeWait] {
            let (_, _, hazards, _) = run(8 << 20, Some(m));
            eprintln!("{m:?}: {} hazards, e.g. {:?}", hazards.len(), hazards.first());
            assert!(!hazards.is_empty(), "{m:?}: no hazard detected");
        }
    }
}
