//! Weight streaming: a prefetch thread reads the streamed units of a [`ResidencyPlan`] from the
//! model file into a ring of staging slots in the session's arena, ahead of the layer that needs
//! them, and the forward pass takes each unit from its slot.
//!
//! The forward pass reads the units in the same order every pass (layers ascending, then the
//! output matrix), so the prefetcher cycles through them without being told what comes next:
//! fill number `f` holds unit `f % units` in slot `f % ring`, and it may run at most `ring`
//! fills ahead of the consumer. While the pass computes layer `i`, the next slots are filled with
//! the units after it; the last layers of one token and the first streamed layers of the next
//! overlap the same way. The decode thread waits only when a read is late. Nothing here
//! allocates after the thread has started: the reads go straight into the arena (`pread`), and
//! the hand-over is a mutex and two condition variables.
//!
//! With `O_DIRECT` ([`DirectIo`](crate::session::DirectIo)) the reads bypass the page cache:
//! each matrix's whole 4 KiB blocks are read straight into the slot, which the plan lays out for
//! it ([`ResidencyPlan::io_align`], [`Extent::aligned`]).

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Result, RuntimeError};
use crate::residency::{Extent, ResidencyPlan, Step};

/// The state shared by the prefetch thread and the consumer.
#[derive(Default)]
struct State {
    /// Fills completed (fill `f` is in slot `f % ring`).
    filled: u64,
    /// Units the consumer has released (the next one it takes is number `released`).
    released: u64,
    /// Whether the consumer holds unit number `released` right now.
    holding: bool,
    /// The first read error (the prefetcher stops at it).
    error: Option<std::io::ErrorKind>,
    /// Set when the session goes away.
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a fill completes (or on error).
    filled: Condvar,
    /// Signalled when a slot is released (or on stop).
    released: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A staging ring's base address, handed to the prefetch thread.
struct RingPtr(*mut u8);
// SAFETY: the prefetch thread writes only slot `f % ring` of fill `f`, which the consumer has
// released (fill `f` starts only when `f - released < ring`), and the consumer reads a slot only
// after its fill completed and before releasing it; the mutex orders the two sides. The arena
// outlives the thread (joined in `Streamer::drop`, which runs before the arena is freed).
unsafe impl Send for RingPtr {}

/// The weight streamer of one session.
pub(crate) struct Streamer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    ring: *const u8,
    slot_bytes: usize,
    n_slots: u64,
    /// Each unit's step, in cycle order.
    steps: Vec<Step>,
    /// Whether the reads bypass the page cache (`O_DIRECT`).
    direct: bool,
}

// SAFETY: `ring` points into the owning session's arena, which moves with the session; every
// access to the slots it addresses follows the fill/release protocol under the mutex (see
// `RingPtr`), whichever thread the session runs on.
unsafe impl Send for Streamer {}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer")
            .field("units", &self.steps.len())
            .field("slots", &self.n_slots)
            .field("slot_bytes", &self.slot_bytes)
            .finish()
    }
}

/// A unit the consumer holds: its slot's bytes stay valid until [`Streamer::release`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    /// The unit's index in the plan.
    pub unit: usize,
    /// The slot's base address.
    pub base: *const u8,
}

impl Streamer {
    /// Starts the prefetch thread over `plan`'s units, reading `file` into the ring at `ring`
    /// (`plan.ring` slots of `plan.slot_bytes`, in the arena).
    ///
    /// # Safety
    /// `ring` must point to `plan.staging_bytes()` writable bytes that nothing else touches and
    /// that outlive the returned streamer.
    ///
    /// `direct`: read with `O_DIRECT` when the plan is laid out for it and the file system
    /// takes it (the file reopened through `/proc/self/fd`); otherwise through the page cache
    /// ([`direct`](Self::direct) says which).
    pub(crate) unsafe fn start(
        plan: &ResidencyPlan,
        file: Arc<std::fs::File>,
        ring: *mut u8,
        direct: bool,
    ) -> Result<Streamer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            filled: Condvar::new(),
            released: Condvar::new(),
        });
        let units: Vec<Vec<Extent>> = plan.units.iter().map(|u| u.extents.clone()).collect();
        let (slot_bytes, n_slots) = (plan.slot_bytes as usize, plan.ring as u64);
        let align = plan.io_align;
        let direct_file = if direct && align >= 512 && (ring as usize).is_multiple_of(align as usize) {
            open_direct(&file)
        } else {
            None
        };
        let is_direct = direct_file.is_some();
        let reader = match direct_file {
            Some(f) => Reader::Direct(f, align),
            None => {
                advise_sequential(&file);
                Reader::Cached(file)
            }
        };
        let (sh, base) = (Arc::clone(&shared), RingPtr(ring));
        let thread = std::thread::Builder::new()
            .name("tsharp-prefetch".into())
            .stack_size(crate::plan::WORKER_STACK)
            .spawn(move || prefetch(&sh, &reader, &units, base, slot_bytes, n_slots))
            .map_err(|e| RuntimeError::System {
                what: "starting the weight prefetch thread".into(),
                errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                hint: "the process may be at its thread limit",
            })?;
        Ok(Streamer {
            shared,
            thread: Some(thread),
            ring,
            slot_bytes,
            n_slots,
            steps: plan.units.iter().map(|u| u.step).collect(),
            direct: is_direct,
        })
    }

    /// Whether the reads bypass the page cache (`O_DIRECT`).
    pub(crate) fn direct(&self) -> bool {
        self.direct
    }

    /// Number of units in the cycle.
    fn n_units(&self) -> u64 {
        self.steps.len() as u64
    }

    /// Waits until the unit of `step` is in its slot and holds it. The pass must take the units
    /// in cycle order (after [`Streamer::begin_pass`]); a step without a streamed unit gives
    /// `None`.
    pub(crate) fn acquire(&self, step: Step) -> Result<Option<Held>> {
        let Some(unit) = self.steps.iter().position(|s| *s == step) else {
            return Ok(None);
        };
        let mut st = self.shared.lock();
        let n = st.released;
        if n % self.n_units() != unit as u64 || st.holding {
            return Err(RuntimeError::InvalidParameter {
                name: "weight streaming",
                problem: format!(
                    "the forward pass asked for {step:?} but the stream is at {:?}{}",
                    self.steps[(n % self.n_units()) as usize],
                    if st.holding { " (still held)" } else { "" }
                ),
            });
        }
        while st.filled <= n {
            if let Some(kind) = st.error {
                return Err(read_error(kind));
            }
            st = self.shared.filled.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.holding = true;
        let slot = (n % self.n_slots) as usize;
        // SAFETY: slot < n_slots, and the ring holds n_slots slots of slot_bytes (`start`).
        let base = unsafe { self.ring.add(slot * self.slot_bytes) };
        Ok(Some(Held { unit, base }))
    }

    /// Gives the held unit's slot back to the prefetcher.
    pub(crate) fn release(&self, held: Held) {
        let mut st = self.shared.lock();
        if st.holding && (st.released % self.n_units()) as usize == held.unit {
            st.holding = false;
            st.released += 1;
            drop(st);
            self.shared.released.notify_one();
        }
    }

    /// Brings the cycle back to its first unit when the previous pass stopped part-way (an
    /// error or a cancellation): the units it skipped are taken and released in order (their
    /// reads were already under way).
    pub(crate) fn begin_pass(&self) -> Result<()> {
        {
            // A unit still held by the broken pass: given back.
            let mut st = self.shared.lock();
            if st.holding {
                st.holding = false;
                st.released += 1;
                drop(st);
                self.shared.released.notify_one();
            }
        }
        loop {
            let pos = self.shared.lock().released % self.n_units();
            if pos == 0 {
                return Ok(());
            }
            self.skip(self.steps[pos as usize])?;
        }
    }

    /// Takes and releases the unit of `step` without using it (a pass that skips the step,
    /// such as a prefill chunk without logits skipping the output matrix).
    pub(crate) fn skip(&self, step: Step) -> Result<()> {
        if let Some(h) = self.acquire(step)? {
            self.release(h);
        }
        Ok(())
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.released.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_error(kind: std::io::ErrorKind) -> RuntimeError {
    RuntimeError::Io(std::io::Error::new(
        kind,
        "reading streamed weights from the model file failed (was it truncated or replaced?)",
    ))
}

/// Tells the kernel the file is read in order (larger read-ahead).
fn advise_sequential(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // Advice only: a kernel that ignores it reads the same bytes.
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
    );
}

/// The model file reopened with `O_DIRECT` (through `/proc/self/fd`, so the same file even if
/// its path changed), when the file system takes it.
fn open_direct(file: &std::fs::File) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

/// How the prefetch thread reads.
enum Reader {
    /// `pread` through the page cache.
    Cached(Arc<std::fs::File>),
    /// `pread` with `O_DIRECT`, in whole blocks of this many bytes.
    Direct(std::fs::File, u64),
}

impl Reader {
    /// Reads extent `e` into `slot` (the slot's bytes).
    fn read(&self, e: &Extent, slot: &mut [u8]) -> std::io::Result<()> {
        match self {
            Reader::Cached(f) => f.read_exact_at(&mut slot[e.slot_at as usize..][..e.len as usize], e.file_offset),
            Reader::Direct(f, align) => {
                let (fo, so, len) = e.aligned(*align);
                let need = (e.file_offset - fo + e.len) as usize;
                let buf = &mut slot[so as usize..][..len as usize];
                // Whole blocks; the file's end may cut the last one short (0: truncated).
                let mut got = 0;
                while got < need {
                    match f.read_at(&mut buf[got..], fo + got as u64) {
                        Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                    // A short read leaves `got` unaligned only at the end of the file.
                    if got < need && got % *align as usize != 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Ok(())
            }
        }
    }
}

/// The prefetch thread: fills the slots in cycle order, never more than `n_slots` ahead of the
/// consumer, until stopped or a read fails.
fn prefetch(sh: &Shared, reader: &Reader, units: &[Vec<Extent>], ring: RingPtr, slot_bytes: usize, n_slots: u64) {
    let n_units = units.len() as u64;
    loop {
        let f = {
            let mut st = sh.lock();
            while !st.stop && st.filled - st.released >= n_slots {
                st = sh.released.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.stop {
                return;
            }
            st.filled
        };
        let slot = (f % n_slots) as usize;
        let mut failed = None;
        // SAFETY: the slot is free (fill f starts only when f - released < n_slots, so the
        // consumer released fill f - n_slots, the last user of this slot); every extent, and
        // with O_DIRECT its whole blocks, lies inside the slot (the plan's layout).
        let dst = unsafe { std::slice::from_raw_parts_mut(ring.0.add(slot * slot_bytes), slot_bytes) };
        for e in &units[(f % n_units) as usize] {
            if let Err(err) = reader.read(e, dst) {
                failed = Some(err.kind());
                break;
            }
        }
        let mut st = sh.lock();
        match failed {
            Some(kind) => {
                st.error = Some(kind);
                drop(st);
                sh.filled.notify_all();
                return;
            }
            None => {
                st.filled += 1;
                drop(st);
                sh.filled.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::residency::{Matrix, DIRECT_ALIGN};

    /// A file whose byte i is `i * 7 % 251`, and a plan streaming all of it: three layers of two
    /// matrices (1000 and 3000 bytes) and an output matrix (2000 bytes), four units; laid out
    /// for O_DIRECT reads when `direct`.
    /// (With O_DIRECT's 4 KiB blocks every size ten times larger: streaming matrices smaller
    /// than a block would take more RAM than keeping them.)
    fn setup(name: &str, direct: bool) -> (std::path::PathBuf, ResidencyPlan, Vec<u8>) {
        let x = if direct { 10 } else { 1 };
        let bytes: Vec<u8> = (0..20_000 * x as u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("tsharp-stream-{name}-{direct}-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let mut m = Vec::new();
        let mut off = 0;
        for l in 0..3 {
            for len in [1000 * x, 3000 * x] {
                m.push(Matrix {
                    name: format!("blk.{l}.{len}"),
                    step: Step::Layer(l),
                    file_offset: off,
                    bytes: len,
                    row_bytes: 100,
                });
                off += len;
            }
        }
        m.push(Matrix {
            name: "output".into(),
            step: Step::Output(0),
            file_offset: off,
            bytes: 2000 * x,
            row_bytes: 100,
        });
        let plan = if direct {
            ResidencyPlan::with_io_align(m, 100_000, 2, DIRECT_ALIGN).unwrap()
        } else {
            ResidencyPlan::new(m, 2000 + 2 * 4032, 2).unwrap()
        };
        assert_eq!(plan.units.len(), 4, "direct {direct}: {plan:?}");
        (path, plan, bytes)
    }

    /// A staging ring aligned for O_DIRECT: (the allocation, the ring's start in it).
    fn ring_for(plan: &ResidencyPlan) -> (Vec<u8>, usize) {
        let v = vec![0u8; plan.staging_bytes() as usize + DIRECT_ALIGN as usize];
        let at = (v.as_ptr() as usize).next_multiple_of(DIRECT_ALIGN as usize) - v.as_ptr() as usize;
        (v, at)
    }

    /// Whether the file system under `path` takes O_DIRECT (tmpfs does not).
    fn direct_supported(path: &std::path::Path) -> bool {
        open_direct(&std::fs::File::open(path).unwrap()).is_some()
    }

    /// The held slot holds each extent of the unit's matrices as in the file.
    fn check(plan: &ResidencyPlan, h: Held, file: &[u8]) {
        for e in &plan.units[h.unit].extents {
            // SAFETY: the slot is held; the extent lies inside it.
            let got = unsafe { std::slice::from_raw_parts(h.base.add(e.slot_at as usize), e.len as usize) };
            assert_eq!(got, &file[e.file_offset as usize..(e.file_offset + e.len) as usize]);
        }
    }

    #[test]
    fn units_arrive_in_order_with_the_file_bytes_and_a_broken_pass_resyncs() {
        for direct in [false, true] {
            let (path, plan, file) = setup("order", direct);
            let (mut ring, at) = ring_for(&plan);
            let f = Arc::new(std::fs::File::open(&path).unwrap());
            // SAFETY: `ring` outlives the streamer (dropped at the end of the test, after it).
            let st = unsafe { Streamer::start(&plan, f, ring.as_mut_ptr().add(at), direct).unwrap() };
            assert_eq!(st.direct(), direct && direct_supported(&path), "direct {direct}");
            let steps: Vec<Step> = plan.units.iter().map(|u| u.step).collect();
            for _pass in 0..5 {
                st.begin_pass().unwrap();
                for &s in &steps {
                    let h = st.acquire(s).unwrap().unwrap();
                    check(&plan, h, &file);
                    st.release(h);
                }
                // A step without a streamed unit: nothing to wait for.
                assert!(st.acquire(Step::Layer(7)).unwrap().is_none());
            }
            // Out of order: an error, not a hang or a wrong slot.
            st.begin_pass().unwrap();
            let e = st.acquire(steps[1]).unwrap_err();
            assert!(e.to_string().contains("weight streaming"), "{e}");
            // A pass broken off after its first unit (held, not released), then a new pass.
            let _h = st.acquire(steps[0]).unwrap().unwrap();
            st.begin_pass().unwrap();
            for &s in &steps {
                let h = st.acquire(s).unwrap().unwrap();
                check(&plan, h, &file);
                st.release(h);
            }
            // Skipping a unit reads it and moves on.
            st.begin_pass().unwrap();
            st.skip(steps[0]).unwrap();
            let h = st.acquire(steps[1]).unwrap().unwrap();
            check(&plan, h, &file);
            st.release(h);
            drop(st);
            drop(ring);
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn a_truncated_file_is_an_io_error() {
        for direct in [false, true] {
            let (path, plan, _) = setup("trunc", direct);
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(if direct { 45_000 } else { 4500 }).unwrap(); // the second layer's matrices are gone
            let (mut ring, at) = ring_for(&plan);
            let f = Arc::new(std::fs::File::open(&path).unwrap());
            // SAFETY: as above.
            let st = unsafe { Streamer::start(&plan, f, ring.as_mut_ptr().add(at), direct).unwrap() };
            let steps: Vec<Step> = plan.units.iter().map(|u| u.step).collect();
            let mut err = None;
            for &s in &steps {
                match st.acquire(s) {
                    Ok(Some(h)) => st.release(h),
                    Ok(None) => unreachable!(),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let e = err.expect("a read past the end fails");
            assert!(matches!(e, RuntimeError::Io(_)), "{e:?}");
            assert!(e.to_string().contains("truncated"), "{e}");
            drop(st);
            drop(ring);
            let _ = std::fs::remove_file(&path);
        }
    }
}
