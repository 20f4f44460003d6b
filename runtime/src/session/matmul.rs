//! Matrix-product dispatch: one parallel region runs one or more weight × activation products,
//! quantizing the activations first when a weight takes 8-bit ones, and hands the weight rows
//! to the threads (a fixed share per thread for a decode step, chunks from a shared counter for
//! a prefill batch).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tensorsharp_kernels::{ActQuant, BlockQ8a, MatmulForm};

use super::Session;
use crate::error::{Result, RuntimeError};
use crate::model::Weight;
use crate::pool::split;
use crate::residency::Placement;
use crate::stream::Held;

/// A raw pointer the pool's workers may share: each worker writes a disjoint range of what it
/// points to, or only reads.
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr<T>(pub *mut T);
// SAFETY: used only to hand disjoint output ranges and read-only inputs to pool workers inside
// one `ThreadPool::run`, which joins before the pointers' owner is touched again.
unsafe impl<T> Send for SharedPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// The first error raised by any worker of a parallel region; the region's caller returns it.
/// Sizes are validated when the session is created, so this stays empty unless there is a bug;
/// it makes such a bug an error instead of a silently skipped kernel call.
#[derive(Default)]
pub(crate) struct FirstError(Mutex<Option<RuntimeError>>);

impl FirstError {
    /// Keeps `r`'s error if it is the first.
    pub(crate) fn record<E: Into<RuntimeError>>(&self, r: std::result::Result<(), E>) {
        if let Err(e) = r {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e.into());
        }
    }

    /// `Err` with the first recorded error, if any.
    pub(crate) fn into_result(self) -> Result<()> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// From this many activation columns a parallel matrix product hands out its rows in chunks
/// from a shared counter (see [`Session::project`]); fewer take a fixed share per thread.
const DYNAMIC_MIN_COLS: usize = 8;

/// One matrix product of a parallel region: `out[c * stride + r] = row_r(weight) · input_c`.
pub(crate) struct MatmulJob {
    /// The weight matrix.
    pub weight: Weight,
    /// Where the products go.
    pub out: SharedPtr<f32>,
    /// Elements between the outputs of consecutive activation columns.
    pub stride: usize,
}

impl Session {
    /// Runs matrix products in one parallel region, each split by rows over the threads.
    /// `input` holds `ncols` activation vectors of `n` floats; it is quantized to 8 bits first
    /// when any weight takes 8-bit activations. `form` says how the 8-bit products sum their
    /// columns: a batched decode step takes [`MatmulForm::Gemv`], so each column gets the bits
    /// of a one-column product whatever the batch size. Streamed weights are read from `held`,
    /// the staging slot of their unit.
    pub(crate) fn project(
        &self,
        jobs: &[MatmulJob],
        held: Option<Held>,
        input: *const f32,
        n: usize,
        ncols: usize,
        form: MatmulForm,
    ) -> Result<()> {
        let k = self.model.kernels;
        let f32_only = self.params.f32_activations;
        let (xq, xqk) = (
            self.arena.ptr(self.buffers.input_q8),
            self.arena.ptr(self.buffers.input_q8k),
        );
        for (how, dst) in [(ActQuant::PerBlock, xq), (ActQuant::PerSuperBlock, xqk)] {
            if f32_only
                || !jobs
                    .iter()
                    .any(|j| j.weight.wtype.uses_q8a() && j.weight.wtype.act_quant() == how)
            {
                continue;
            }
            let failed = FirstError::default();
            // Columns [c0, c1) of the input into their 8-bit blocks.
            let (src_p, dst_p) = (SharedPtr(input as *mut f32), SharedPtr(dst));
            let quantize = |c0: usize, c1: usize| {
                // SAFETY: `input` holds ncols*n floats and each 8-bit slot has room for
                // ncols*n/32 blocks (plan); the slots are disjoint from the input, and callers
                // give disjoint column ranges.
                let (src, dst) = unsafe {
                    (
                        std::slice::from_raw_parts(src_p.get().add(c0 * n), (c1 - c0) * n),
                        std::slice::from_raw_parts_mut(dst_p.get().add(c0 * n / 32), (c1 - c0) * n / 32),
                    )
                };
                failed.record(k.quantize(how, src, dst));
            };
            // A prefill batch is split by columns over the threads (one more wake-up, worth it
            // from a few columns on); a decode step's one column is quantized here.
            if ncols >= 4 {
                self.pool.run(&|i, nt| {
                    let (c0, c1) = split(ncols, i, nt, 1);
                    if c0 < c1 {
                        quantize(c0, c1);
                    }
                });
            } else {
                quantize(0, ncols);
            }
            failed.into_result()?;
        }
        // Where each weight's bytes are: RAM, or the held staging slot of its unit.
        for j in jobs {
            let ok = match j.weight.placement {
                Placement::Ram { .. } => true,
                Placement::Stream { unit, .. } => held.is_some_and(|h| h.unit == unit),
                Placement::Rows => false,
            };
            if !ok {
                return Err(RuntimeError::InvalidParameter {
                    name: "weight streaming",
                    problem: format!("a matrix placed at {:?} without its staging slot", j.weight.placement),
                });
            }
        }
        let ram = SharedPtr(self.model.ram().as_ptr() as *mut u8);
        let slot = SharedPtr(held.map_or(std::ptr::null_mut(), |h| h.base as *mut u8));
        let (xq, xqk, input) = (SharedPtr(xq), SharedPtr(xqk), SharedPtr(input as *mut f32));
        // Rows [r0, r1) of one job.
        let rows = |j: &MatmulJob, r0: usize, r1: usize| {
            let w = &j.weight;
            // SAFETY: the weight lies inside the RAM region (checked at load) or inside its unit's
            // staging slot, which is held for this region (checked above); its shape and
            // kernels were checked when the session was created; rows [r0, r1) are this thread's
            // alone; outputs y[c*stride + r] for r in [r0, r1) are disjoint between threads;
            // inputs are read-only during the region.
            unsafe {
                let at = match w.placement {
                    Placement::Stream { at, .. } => slot.get().add(at as usize),
                    Placement::Ram { at } => ram.get().add(at as usize),
                    // Refused above: the embedding's file rows are never a matmul operand.
                    Placement::Rows => std::ptr::null_mut(),
                };
                let wp = at.add(r0 * w.row_bytes);
                if !f32_only && w.wtype.uses_q8a() {
                    let a = if w.wtype.act_quant() == ActQuant::PerBlock {
                        xq.get()
                    } else {
                        xqk.get()
                    };
                    k.matmul_q8a_raw(
                        form,
                        w.wtype,
                        wp,
                        w.row_bytes,
                        r1 - r0,
                        a,
                        n / 32 * std::mem::size_of::<BlockQ8a>(),
                        ncols,
                        j.out.get().add(r0),
                        j.stride,
                        n,
                    );
                } else {
                    k.matmul_f32_raw(
                        w.wtype,
                        wp,
                        w.row_bytes,
                        r1 - r0,
                        input.get(),
                        n,
                        ncols,
                        j.out.get().add(r0),
                        j.stride,
                        n,
                    );
                }
            }
        };
        // A decode step streams its weights: one fixed share of rows per thread. A prefill batch
        // is compute-bound: its rows go in chunks (multiples of 16, about four per thread and
        // job) taken from a shared counter, so a thread that gets less of the CPU (a busy board,
        // a shared VM) takes fewer chunks instead of holding the others at the barrier. Every
        // row's result is the same whichever thread computes it.
        let next = AtomicUsize::new(0);
        self.pool.run(&|i, nt| {
            if ncols < DYNAMIC_MIN_COLS || nt == 1 {
                for j in jobs {
                    let (r0, r1) = split(j.weight.rows, i, nt, 16);
                    if r0 < r1 {
                        rows(j, r0, r1);
                    }
                }
                return;
            }
            let chunk_rows = |j: &MatmulJob| j.weight.rows.div_ceil(4 * nt).next_multiple_of(16);
            loop {
                let mut c = next.fetch_add(1, Ordering::Relaxed);
                let mut found = None;
                for j in jobs {
                    let cr = chunk_rows(j);
                    let nch = j.weight.rows.div_ceil(cr);
                    if c < nch {
                        found = Some((j, c * cr, ((c + 1) * cr).min(j.weight.rows)));
                        break;
                    }
                    c -= nch;
                }
                match found {
                    Some((j, r0, r1)) => rows(j, r0, r1),
                    None => break,
                }
            }
        });
        Ok(())
    }
}
