//! A persistent thread pool for the executor: the caller is worker 0, `n - 1` threads wait for
//! work, spinning for a configurable time and then parking. One call to [`ThreadPool::run`] is
//! one parallel region with a barrier at its end. Dispatching work allocates nothing.
//!
//! Oversubscription: sessions of one process each have a pool, and while more of their threads
//! compute at once than the process has CPUs (8 sessions x 2 threads on 2 cores), spinning
//! workers and barrier waits only steal time from the threads doing the work (measured: 8 x 2
//! took 12x as long as 8 x 1). A session marks itself computing ([`ThreadPool::computing`]);
//! while the computing threads of the process exceed its CPUs, every parallel region runs on
//! its caller alone (the workers stay parked). The jobs split their work by the thread count
//! they are given and every result is the same whatever that count, so only the speed changes.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

type Job = dyn Fn(usize, usize) + Sync;

/// Threads of this process's pools whose sessions are computing now (see [`Computing`]).
static COMPUTING_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The CPUs this process may use (affinity and cgroup quota), asked once.
pub(crate) fn process_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| thread::available_parallelism().map_or(1, usize::from))
}

/// Whether the computing threads of the process exceed its CPUs.
fn oversubscribed() -> bool {
    COMPUTING_THREADS.load(Ordering::Relaxed) > process_cpus()
}

/// A session's compute call in progress: its pool's threads count as computing until dropped.
#[derive(Debug)]
pub struct Computing {
    n: usize,
}

impl Drop for Computing {
    fn drop(&mut self) {
        COMPUTING_THREADS.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// Spins between two reads of the clock while an idle worker waits for work.
const SPIN_CHECK: u32 = 64;

/// How the pool's threads are set up.
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    /// How long an idle worker spins before parking.
    pub spin: Duration,
    /// CPUs to pin to: thread `i` (the caller is 0) runs on `cpus[i % len]`. Empty: unpinned.
    pub cpus: Vec<usize>,
    /// `SCHED_FIFO` priority for every thread (1..=99); 0 keeps the normal scheduler.
    pub rt_priority: i32,
}

/// Pins the calling thread to `cpu` and applies the real-time priority; returns a warning when
/// the priority is not permitted (the thread keeps running with the normal scheduler).
fn setup_thread(opts: &PoolOptions, i: usize) -> std::result::Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    if !opts.cpus.is_empty() {
        let cpu = opts.cpus[i % opts.cpus.len()];
        let mut set = CpuSet::new();
        set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
        sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("pinning thread {i} to cpu {cpu}: {e}"))?;
    }
    if opts.rt_priority > 0 {
        let param = nix::libc::sched_param {
            sched_priority: opts.rt_priority,
        };
        // SAFETY: pthread_self() is the calling thread; `param` is a valid sched_param.
        let rc = unsafe { nix::libc::pthread_setschedparam(nix::libc::pthread_self(), nix::libc::SCHED_FIFO, &param) };
        if rc != 0 {
            return Err(format!(
                "SCHED_FIFO priority {} not permitted ({}); running with the normal scheduler (needs CAP_SYS_NICE or an rtprio limit)",
                opts.rt_priority,
                nix::errno::Errno::from_raw(rc)
            ));
        }
    }
    Ok(())
}

/// Checks `cpus` against the CPUs this process may run on.
pub fn check_cpus(cpus: &[usize]) -> std::result::Result<(), String> {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(|e| e.to_string())?;
    for &c in cpus {
        if !allowed.is_set(c).unwrap_or(false) {
            return Err(format!("cpu {c} is not available to this process"));
        }
    }
    Ok(())
}

/// Parses a CPU list like `2-5,7`.
pub fn parse_cpus(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{s:?}: expected a CPU list like 2-5,7");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad())?,
                b.trim().parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let a = part.parse::<usize>().map_err(|_| bad())?;
                (a, a)
            }
        };
        if a > b || b >= nix::sched::CpuSet::count() {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err(format!("{s:?}: empty CPU list"));
    }
    Ok(out)
}

struct Shared {
    /// The current job; valid while a `run` call is in progress.
    job: UnsafeCell<Option<*const Job>>,
    generation: AtomicU64,
    remaining: AtomicUsize,
    stop: AtomicBool,
    panicked: AtomicBool,
    parked: Vec<AtomicBool>,
    spin: Duration,
    n_threads: usize,
}

// SAFETY: `job` is written only by the thread inside `run` before the generation is published
// (Release) and read by workers after they observe that generation (Acquire); `run` does not
// return (and so does not write `job` again) until every worker has finished with it.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A fixed set of worker threads.
pub struct ThreadPool {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.shared.n_threads)
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `n_threads` (the caller counts as one), whose idle workers spin for `spin`
    /// before parking.
    pub fn new(n_threads: usize, spin: Duration) -> std::io::Result<ThreadPool> {
        Self::with_options(
            n_threads,
            &PoolOptions {
                spin,
                ..Default::default()
            },
        )
        .map(|(p, _)| p)
    }

    /// A pool set up as `opts` says: the workers and the calling thread are pinned and given the
    /// real-time priority. Returns the pool and warnings (a priority that was not permitted).
    pub fn with_options(n_threads: usize, opts: &PoolOptions) -> std::io::Result<(ThreadPool, Vec<String>)> {
        let spin = opts.spin;
        let n_threads = n_threads.max(1);
        let mut warnings = Vec::new();
        if let Err(w) = setup_thread(opts, 0) {
            warnings.push(w);
        }
        // The workers' set-up warnings, reported before the pool is used. A mutex and a condition
        // variable rather than a channel: a channel's receiver that has to wait sets up a
        // thread-local context on the heap, so the process's allocations would depend on whether
        // the workers were quicker than the caller (seen as a flaky heap-call count).
        // One entry per worker that has set itself up.
        let setup = Arc::new((
            Mutex::new(Vec::<Option<String>>::with_capacity(n_threads)),
            Condvar::new(),
        ));
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            parked: (0..n_threads).map(|_| AtomicBool::new(false)).collect(),
            spin,
            n_threads,
        });
        let mut handles = Vec::new();
        for i in 1..n_threads {
            let s = Arc::clone(&shared);
            let (opts, setup) = (opts.clone(), Arc::clone(&setup));
            handles.push(
                thread::Builder::new()
                    .name(format!("tsharp-worker-{i}"))
                    .stack_size(crate::plan::WORKER_STACK)
                    .spawn(move || {
                        let warning = setup_thread(&opts, i).err();
                        {
                            let (reports, ready) = &*setup;
                            reports.lock().unwrap_or_else(|p| p.into_inner()).push(warning);
                            ready.notify_one();
                        }
                        drop((opts, setup));
                        worker(&s, i)
                    })?,
            );
        }
        {
            let (reports, ready) = &*setup;
            let mut r = reports.lock().unwrap_or_else(|p| p.into_inner());
            while r.len() < n_threads - 1 {
                r = ready.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            for w in r.drain(..).flatten() {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        Ok((
            ThreadPool {
                shared,
                threads,
                handles,
            },
            warnings,
        ))
    }

    /// Number of threads, the caller included.
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// OS thread ids are not needed; the handles allow pinning later.
    pub fn threads(&self) -> &[Thread] {
        &self.threads
    }

    /// Marks a compute call (a prefill or decode) of this pool's session as running until the
    /// returned guard drops; see the module notes on oversubscription.
    pub fn computing(&self) -> Computing {
        let n = self.shared.n_threads;
        COMPUTING_THREADS.fetch_add(n, Ordering::Relaxed);
        Computing { n }
    }

    /// Runs `f(i, n)` on every thread `i < n` (the caller is `i = 0`) and returns when all are done.
    /// While the process is oversubscribed the caller runs `f(0, 1)` alone.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        let s = &*self.shared;
        let n = s.n_threads;
        if n == 1 || oversubscribed() {
            f(0, 1);
            return;
        }
        // SAFETY: no worker reads `job` until the generation below is published, and every worker
        // finished with the previous job before the previous `run` returned.
        let short: *const (dyn Fn(usize, usize) + Sync + '_) = f;
        unsafe {
            *s.job.get() = Some(std::mem::transmute::<
                *const (dyn Fn(usize, usize) + Sync + '_),
                *const Job,
            >(short));
        }
        s.remaining.store(n - 1, Ordering::Relaxed);
        // A read-modify-write: a full barrier on every target and under qemu, so the new
        // generation is visible before `parked` is read (the worker's side needs its fence).
        s.generation.fetch_add(1, Ordering::SeqCst);
        for (i, t) in self.threads.iter().enumerate() {
            if s.parked[i + 1].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        f(0, n);
        // Wait for the workers: spin, and every SPIN_CHECK spins offer the core to anything else
        // runnable on it (a worker of ours that was preempted, another process): sched_yield
        // returns at once on an idle core.
        let mut spins = 0u32;
        while s.remaining.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPIN_CHECK) {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: all workers are done with the job.
        unsafe { *s.job.get() = None };
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a tsharp worker thread panicked");
        }
    }
}

fn worker(s: &Shared, i: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin, then park.
        let start = Instant::now();
        let mut gen = s.generation.load(Ordering::Acquire);
        let mut spins = 0u32;
        while gen == seen && !s.stop.load(Ordering::Relaxed) {
            // The clock is read once per SPIN_CHECK spins: a spinning worker executes a few
            // instructions per spin instead of a clock read each (it shares the core's issue
            // slots with a sibling thread, and on a busy board with other work).
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(SPIN_CHECK) {
                std::hint::spin_loop();
            } else if start.elapsed() < s.spin {
                // Still spinning: offer the core to other runnable threads (other processes on
                // an oversubscribed board) between clock reads; free on an idle core.
                thread::yield_now();
            } else {
                s.parked[i].store(true, Ordering::SeqCst);
                // The store above must be visible before the generation is read again (else
                // `run` may read `parked` false after we read the old generation, and nobody
                // unparks us). SeqCst store + load order that on real ARMv8 (STLR, LDAR), but
                // qemu-user's translation for x86 hosts does not (it left a worker parked and
                // the caller spinning forever under qemu-aarch64); a full fence orders it
                // everywhere, and costs nothing here: the worker is about to park. `run`'s
                // side is the generation's fetch_add, already a full barrier.
                std::sync::atomic::fence(Ordering::SeqCst);
                if s.generation.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                    thread::park();
                }
                s.parked[i].store(false, Ordering::SeqCst);
            }
            gen = s.generation.load(Ordering::Acquire);
        }
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = gen;
        // SAFETY: the job was published before the generation we just observed and stays valid
        // until we decrement `remaining`.
        let job = unsafe { (*s.job.get()).map(|p| &*p) };
        if let Some(job) = job {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(i, s.n_threads))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.remaining.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in &self.threads {
            t.unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The `[start, end)` share of `total` items for worker `i` of `n`, in multiples of `align`.
pub fn split(total: usize, i: usize, n: usize, align: usize) -> (usize, usize) {
    let units = total.div_ceil(align);
    let per = units / n;
    let extra = units % n;
    let start = (i * per + i.min(extra)) * align;
    let end = (start + (per + usize::from(i < extra)) * align).min(total);
    (start.min(total), end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_thread_runs_each_job_once() {
        for n in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n, Duration::from_micros(50)).unwrap();
            let hits = AtomicUsize::new(0);
            for round in 0..200 {
                pool.run(&|i, m| {
                    assert_eq!(m, n);
                    hits.fetch_add(i + 1, Ordering::Relaxed);
                });
                assert_eq!(hits.load(Ordering::Relaxed), (round + 1) * n * (n + 1) / 2);
                if round == 100 {
                    thread::sleep(Duration::from_millis(5)); // let workers park
                }
            }
        }
    }

    #[test]
    fn split_covers_everything_once() {
        for total in [0, 1, 7, 64, 1000] {
            for n in 1..5 {
                let mut covered = 0;
                for i in 0..n {
                    let (s, e) = split(total, i, n, 4);
                    assert!(s <= e && e <= total);
                    assert_eq!(s, covered.min(total));
                    covered = e;
                }
                assert_eq!(covered, total);
            }
        }
    }
}
