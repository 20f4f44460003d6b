//! Weight residency: which weight matrices stay in RAM and which are streamed from storage, so
//! that a model larger than its RAM budget still runs.
//!
//! Decode reads every matrix once per token, so any matrix left on storage costs its size in
//! bytes read per token, whichever it is; what the order decides is how the streamed bytes are
//! grouped. The planner keeps, in this order of preference:
//! 1. the output matrix (also read by no prefill chunk but the last, so streaming it would read it
//!    for nothing on every other chunk); it is planned in row chunks of at most a layer's size,
//!    so that even streamed it needs no staging slot larger than a layer's;
//! 2. the layers from the first on, so that what streams is the model's last layers: a few
//!    whole units read in order, one `pread` per matrix, with a staging ring of two slots the
//!    size of one layer;
//! 3. and gives up first the token-embedding matrix when it is not the output matrix: a token
//!    reads one row of it, so its rows are read from storage at lookup ([`Placement::Rows`]).
//!
//! Streamed matrices move in [`StreamUnit`]s (one per layer, and the output matrix) through a
//! ring of staging slots that a prefetch thread fills ahead of the layer that needs them
//! (`crate::stream`). The plan's RAM is the resident matrices plus the ring.

use crate::error::{Result, RuntimeError};

/// Alignment of every matrix in the resident region and in a staging slot (a cache line; the
/// kernels read rows at any 32-byte-aligned offset, and GGUF aligns tensor data to 32).
pub const MATRIX_ALIGN: u64 = 64;

/// Alignment of every streamed matrix's read in a model's plans ([`ResidencyPlan::with_io_align`]):
/// an `O_DIRECT` read needs its file offset, length and buffer aligned to the device's logical
/// block size, and 4 KiB covers the common ones (512-byte and 4 KiB sectors, 4 KiB pages).
pub const DIRECT_ALIGN: u64 = 4096;

/// Staging slots in the ring by default: one layer computes while the next is read.
pub const DEFAULT_RING: usize = 2;

/// The forward-pass step that reads a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The token-embedding lookup (one row per token), when the embedding is not also the
    /// output matrix.
    Embedding,
    /// Transformer block `i`.
    Layer(usize),
    /// The logits: the output matrix's rows in chunks (each at most a layer's size, so that
    /// a streamed output matrix needs no larger staging slot), chunk `k` (with tied embeddings
    /// the output matrix is also the embedding).
    Output(usize),
}

/// A weight matrix as the planner sees it.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Tensor name (for `tsharp plan`).
    pub name: String,
    /// The step that reads it.
    pub step: Step,
    /// Offset of its data in the file.
    pub file_offset: u64,
    /// Bytes.
    pub bytes: u64,
    /// Bytes of one row (what an embedding lookup reads).
    pub row_bytes: u64,
}

/// Where a matrix lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the resident region at this offset.
    Ram {
        /// Offset in the resident region.
        at: u64,
    },
    /// Streamed: read into a staging slot with its unit, at this offset of the slot.
    Stream {
        /// Index into [`ResidencyPlan::units`].
        unit: usize,
        /// Offset in the slot.
        at: u64,
    },
    /// The embedding's rows read from storage at lookup.
    Rows,
}

/// One read of a streamed unit: `len` bytes at `file_offset` into the slot at `slot_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub file_offset: u64,
    /// Bytes.
    pub len: u64,
    /// Offset in the staging slot.
    pub slot_at: u64,
}

impl Extent {
    /// The read of the whole `align`-byte blocks that cover the extent, landing it at `slot_at`:
    /// (file offset, slot offset, length). In a plan laid out with that alignment
    /// ([`ResidencyPlan::io_align`]) the blocks of different extents do not overlap in the slot.
    pub fn aligned(&self, align: u64) -> (u64, u64, u64) {
        let head = self.file_offset % align;
        (
            self.file_offset - head,
            self.slot_at - head,
            (head + self.len).next_multiple_of(align),
        )
    }
}

/// The streamed matrices of one step, read together into one staging slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUnit {
    /// The step that reads them.
    pub step: Step,
    /// The reads, in file order.
    pub extents: Vec<Extent>,
    /// Bytes the unit takes in a slot (alignment included).
    pub bytes: u64,
}

/// The placement of every matrix of a model under a RAM budget.
#[derive(Debug, Clone)]
pub struct ResidencyPlan {
    /// The matrices, in the order given to [`ResidencyPlan::new`].
    pub matrices: Vec<Matrix>,
    /// Each matrix's placement (same order).
    pub placements: Vec<Placement>,
    /// Bytes of the resident region.
    pub resident_bytes: u64,
    /// Streamed units in forward-pass order (layers ascending, then the output).
    pub units: Vec<StreamUnit>,
    /// Bytes of one staging slot (the largest unit).
    pub slot_bytes: u64,
    /// Slots in the ring (0 when nothing streams).
    pub ring: usize,
    /// Each streamed matrix sits in its slot at the offset its file offset has in `io_align`-byte
    /// blocks, with room for the whole blocks around it, and slots are multiples of `io_align`:
    /// so every extent can be read with aligned (`O_DIRECT`) reads straight into the slot
    /// ([`Extent::aligned`]). 1: packed at [`MATRIX_ALIGN`] (toy plans in tests).
    pub io_align: u64,
}

impl ResidencyPlan {
    /// Everything resident (the plan without a budget).
    pub fn all_resident(matrices: Vec<Matrix>) -> ResidencyPlan {
        let streamed = vec![false; matrices.len()];
        Self::build(matrices, &streamed, 0, 1)
    }

    /// Places `matrices` so that the resident ones and a ring of `ring` staging slots take at
    /// most `budget` bytes, keeping as much resident as fits (see the module's order).
    /// `Err(OverBudget)` when even streaming every matrix needs more than `budget`.
    pub fn new(matrices: Vec<Matrix>, budget: u64, ring: usize) -> Result<ResidencyPlan> {
        Self::with_io_align(matrices, budget, ring, 1)
    }

    /// [`new`](Self::new) with the streamed matrices laid out for reads aligned to `io_align`
    /// bytes (a power of two: [`DIRECT_ALIGN`] for a model's plans, so that the streamer may
    /// read with `O_DIRECT`); the padding counts against the budget.
    pub fn with_io_align(matrices: Vec<Matrix>, budget: u64, ring: usize, io_align: u64) -> Result<ResidencyPlan> {
        let ring = ring.max(1);
        let mut streamed = vec![false; matrices.len()];
        let mut plan = Self::build(matrices.clone(), &streamed, ring, io_align);
        if plan.ram_bytes() <= budget {
            return Ok(plan);
        }
        for i in eviction_order(&matrices) {
            streamed[i] = true;
            plan = Self::build(matrices.clone(), &streamed, ring, io_align);
            if plan.ram_bytes() <= budget {
                return Ok(plan);
            }
        }
        let mib = |b: u64| b as f64 / 1048576.0;
        Err(RuntimeError::OverBudget {
            needed: plan.ram_bytes(),
            budget,
            message: format!(
                "the weights need at least {:.1} MiB of RAM even with every matrix streamed from storage ({} staging slots of {:.1} MiB, the largest layer or output matrix) but {:.1} MiB are left for them: raise the budget, or use a smaller or more strongly quantized model",
                mib(plan.ram_bytes()),
                ring,
                mib(plan.slot_bytes),
                mib(budget)
            ),
        })
    }

    fn build(matrices: Vec<Matrix>, streamed: &[bool], ring: usize, io_align: u64) -> ResidencyPlan {
        let mut placements = vec![Placement::Ram { at: 0 }; matrices.len()];
        let mut resident = 0u64;
        for (i, m) in matrices.iter().enumerate() {
            if streamed[i] {
                continue;
            }
            placements[i] = Placement::Ram { at: resident };
            resident = (resident + m.bytes).next_multiple_of(MATRIX_ALIGN);
        }
        // Units in forward order; within a unit, the matrices in file order.
        let mut order: Vec<usize> = (0..matrices.len()).filter(|&i| streamed[i]).collect();
        order.sort_by_key(|&i| (matrices[i].step, matrices[i].file_offset));
        let mut units: Vec<StreamUnit> = Vec::new();
        for i in order {
            let m = &matrices[i];
            if m.step == Step::Embedding {
                placements[i] = Placement::Rows;
                continue;
            }
            if units.last().is_none_or(|u| u.step != m.step) {
                units.push(StreamUnit {
                    step: m.step,
                    extents: Vec::new(),
                    bytes: 0,
                });
            }
            let unit = units.len() - 1;
            let u = &mut units[unit];
            let (at, end) = if io_align > 1 {
                // The matrix's whole io_align blocks get a region of their own.
                let head = m.file_offset % io_align;
                let region = u.bytes.next_multiple_of(io_align);
                (region + head, region + (head + m.bytes).next_multiple_of(io_align))
            } else {
                (u.bytes, (u.bytes + m.bytes).next_multiple_of(MATRIX_ALIGN))
            };
            placements[i] = Placement::Stream { unit, at };
            u.extents.push(Extent {
                file_offset: m.file_offset,
                len: m.bytes,
                slot_at: at,
            });
            u.bytes = end;
        }
        let slot_bytes = units.iter().map(|u| u.bytes).max().unwrap_or(0);
        ResidencyPlan {
            matrices,
            placements,
            resident_bytes: resident,
            ring: if units.is_empty() { 0 } else { ring },
            units,
            slot_bytes,
            io_align,
        }
    }

    /// Bytes of the staging ring.
    pub fn staging_bytes(&self) -> u64 {
        self.slot_bytes * self.ring as u64
    }

    /// RAM the weights take: the resident region and the staging ring.
    pub fn ram_bytes(&self) -> u64 {
        self.resident_bytes + self.staging_bytes()
    }

    /// Whether any matrix is read from storage while decoding.
    pub fn streams(&self) -> bool {
        self.placements.iter().any(|p| !matches!(p, Placement::Ram { .. }))
    }

    /// Bytes read from storage per decoded token: every streamed unit, and one embedding row
    /// when the embedding's rows are on storage.
    pub fn streamed_bytes_per_token(&self) -> u64 {
        self.matrices
            .iter()
            .zip(&self.placements)
            .map(|(m, p)| match p {
                Placement::Ram { .. } => 0,
                Placement::Stream { .. } => m.bytes,
                Placement::Rows => m.row_bytes,
            })
            .sum()
    }
}

/// The matrices in the order they leave RAM: the embedding's rows (when it is not the output
/// matrix), then the layers from the last to the first (in each, the largest matrix first), then
/// the output matrix's chunks from the last.
fn eviction_order(matrices: &[Matrix]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..matrices.len()).collect();
    order.sort_by_key(|&i| {
        let m = &matrices[i];
        let rank = match m.step {
            Step::Embedding => 0,
            Step::Layer(l) => 1 + (usize::MAX / 2 - l),
            Step::Output(k) => usize::MAX - k,
        };
        (rank, std::cmp::Reverse(m.bytes), m.file_offset)
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model: an untied embedding (10 rows of 100 bytes), eight layers of two matrices
    /// (320 and 128 bytes), an output matrix of 512 bytes; in file order.
    fn toy(tied: bool) -> Vec<Matrix> {
        let mut v = Vec::new();
        let mut off = 0;
        let mut add = |name: &str, step, bytes, row_bytes| {
            v.push(Matrix {
                name: name.into(),
                step,
                file_offset: off,
                bytes,
                row_bytes,
            });
            off += bytes;
        };
        if !tied {
            add("token_embd", Step::Embedding, 1000, 100);
        }
        for l in 0..8 {
            add(&format!("blk.{l}.a"), Step::Layer(l), 320, 32);
            add(&format!("blk.{l}.b"), Step::Layer(l), 128, 32);
        }
        add("output", Step::Output(0), 512, 64);
        v
    }

    fn homes(p: &ResidencyPlan) -> Vec<(&str, char)> {
        p.matrices
            .iter()
            .zip(&p.placements)
            .map(|(m, pl)| {
                (
                    m.name.as_str(),
                    match pl {
                        Placement::Ram { .. } => 'R',
                        Placement::Stream { .. } => 'S',
                        Placement::Rows => 'E',
                    },
                )
            })
            .collect()
    }

    #[test]
    fn everything_fits_everything_resident() {
        let p = ResidencyPlan::new(toy(false), 1 << 20, 2).unwrap();
        assert!(!p.streams());
        assert_eq!(p.ring, 0);
        assert_eq!(p.resident_bytes, 1024 + 8 * (320 + 128) + 512);
        assert_eq!(p.streamed_bytes_per_token(), 0);
    }

    #[test]
    fn the_embedding_goes_first_then_the_last_layers_then_the_output() {
        let all = ResidencyPlan::new(toy(false), 1 << 20, 2).unwrap().ram_bytes();
        // Just under everything: the embedding's rows move to storage (no ring needed).
        let p = ResidencyPlan::new(toy(false), all - 1, 2).unwrap();
        let h = homes(&p);
        assert_eq!(h[0], ("token_embd", 'E'));
        assert!(h[1..].iter().all(|h| h.1 == 'R'), "{h:?}");
        assert_eq!(p.streamed_bytes_per_token(), 100);
        assert_eq!(p.ring, 0);
        // Tighter and tighter: what streams is always a run of the last layers' matrices (in
        // a partly streamed layer the larger matrix first), the output only after them all.
        let mut seen_partial = false;
        for budget in (1024..all).rev().step_by(16) {
            let p = ResidencyPlan::new(toy(false), budget, 2).unwrap();
            assert!(p.ram_bytes() <= budget, "{budget}: {}", p.ram_bytes());
            let h = homes(&p);
            assert_eq!(h[0].1, 'E');
            let layers: String = h[1..17].iter().map(|h| h.1).collect();
            let first_s = layers.find('S').unwrap_or(16);
            let suffix = &layers[first_s..];
            let ok = suffix.chars().all(|c| c == 'S')
                || (first_s.is_multiple_of(2) && suffix.starts_with("SR") && suffix[2..].chars().all(|c| c == 'S'));
            assert!(ok, "budget {budget}: {layers}");
            seen_partial |= suffix.starts_with("SR");
            if h[17].1 == 'S' {
                assert!(
                    !layers.contains('R'),
                    "budget {budget}: the output streams before a layer"
                );
            }
            assert_eq!(p.ring, if layers.contains('S') || h[17].1 == 'S' { 2 } else { 0 });
        }
        assert!(seen_partial, "no budget streamed part of a layer");
    }

    #[test]
    fn units_follow_the_forward_order_and_hold_their_matrices_aligned() {
        let p = ResidencyPlan::new(toy(true), 2000, 2).unwrap();
        assert!(p.ram_bytes() <= 2000);
        assert!(p.units.len() >= 3, "{:?}", p.units);
        let steps: Vec<Step> = p.units.iter().map(|u| u.step).collect();
        let mut sorted = steps.clone();
        sorted.sort();
        assert_eq!(steps, sorted);
        for (m, pl) in p.matrices.iter().zip(&p.placements) {
            if let Placement::Stream { unit, at } = *pl {
                let u = &p.units[unit];
                assert_eq!(u.step, m.step);
                assert_eq!(at % MATRIX_ALIGN, 0);
                assert!(u
                    .extents
                    .iter()
                    .any(|e| e.file_offset == m.file_offset && e.slot_at == at));
                assert!(at + m.bytes <= p.slot_bytes);
            }
        }
        assert_eq!(p.slot_bytes, p.units.iter().map(|u| u.bytes).max().unwrap());
        assert_eq!(p.staging_bytes(), 2 * p.slot_bytes);
    }

    #[test]
    fn every_budget_from_large_to_the_minimum_is_met_or_refused_with_the_numbers() {
        for tied in [false, true] {
            let total: u64 = toy(tied).iter().map(|m| m.bytes).sum();
            let mut last_streamed = 0;
            for budget in (0..=total + 200).rev().step_by(7) {
                match ResidencyPlan::new(toy(tied), budget, 2) {
                    Ok(p) => {
                        assert!(p.ram_bytes() <= budget, "{budget}");
                        // Less RAM never streams less.
                        assert!(p.streamed_bytes_per_token() >= last_streamed, "{budget}");
                        last_streamed = p.streamed_bytes_per_token();
                    }
                    Err(RuntimeError::OverBudget { needed, message, .. }) => {
                        assert!(needed > budget);
                        assert!(message.contains("streamed from storage"), "{message}");
                        // The minimum: two slots of the largest unit (the output, 512).
                        assert!(budget < 2 * 512, "{budget} refused: {message}");
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
