//! A simulated GPU for testing the scheduler where there is none: a memory budget, one thread per
//! stream (the copy engine moves bytes at a set bandwidth, the compute stream "runs" a kernel by
//! sleeping its time), events, byte counters, injected delays, a timeline of every operation, and
//! a hazard checker: a kernel that reads a buffer while a copy writes it, or before the copy it
//! expects has finished, and a copy that overwrites a buffer a kernel is reading, are recorded.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::device::{BufId, Device, EventId, Read, Stream};
use crate::error::{Result, RuntimeError};

/// Settings of a simulated device.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Device memory.
    pub memory: u64,
    /// Copy-engine bandwidth, bytes per second.
    pub bandwidth: f64,
    /// Added to every copy (injected latency).
    pub copy_delay: Duration,
    /// Added to every kernel.
    pub kernel_delay: Duration,
}

/// One operation as it ran.
#[derive(Debug, Clone)]
pub struct Span {
    /// The stream it ran on.
    pub stream: Stream,
    /// `copy` or the kernel's name.
    pub what: &'static str,
    /// The copy's tag, or the first tag the kernel read.
    pub tag: u64,
    /// Start, from the device's creation.
    pub start: Duration,
    /// End.
    pub end: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct BufState {
    /// The tag of the last completed copy.
    tag: Option<u64>,
    /// A copy is writing it.
    writing: bool,
    /// Kernels reading it.
    readers: usize,
}

#[derive(Default)]
struct Shared {
    bufs: Mutex<Vec<BufState>>,
    events: Mutex<Vec<bool>>,
    event_done: Condvar,
    hazards: Mutex<Vec<String>>,
    timeline: Mutex<Vec<Span>>,
    bytes_copied: Mutex<u64>,
}

enum Op {
    Copy {
        buf: BufId,
        len: u64,
        tag: u64,
    },
    Kernel {
        name: &'static str,
        reads: Vec<Read>,
        ns: u64,
    },
    Record(EventId),
    Wait(EventId),
}

/// The simulated device.
pub struct SimDevice {
    cfg: SimConfig,
    allocated: u64,
    shared: Arc<Shared>,
    compute: Option<Sender<Op>>,
    copy: Option<Sender<Op>>,
    threads: Vec<JoinHandle<()>>,
}

impl SimDevice {
    /// Queues on the compute stream a kernel `name` reading `reads`, taking `ns`.
    pub fn launch(&mut self, name: &'static str, reads: &[Read], ns: u64) {
        self.queue(
            Stream::Compute,
            Op::Kernel {
                name,
                reads: reads.to_vec(),
                ns,
            },
        );
    }

    /// A device with `cfg`'s memory and bandwidth, its two stream threads started.
    pub fn new(cfg: SimConfig) -> SimDevice {
        let shared = Arc::new(Shared::default());
        let t0 = Instant::now();
        let mut threads = Vec::new();
        let mut start = |stream: Stream| {
            let (tx, rx) = channel::<Op>();
            let sh = Arc::clone(&shared);
            let cfg = cfg.clone();
            threads.push(std::thread::spawn(move || {
                for op in rx {
                    run_op(&sh, &cfg, stream, t0, op);
                }
            }));
            tx
        };
        let compute = start(Stream::Compute);
        let copy = start(Stream::Copy);
        SimDevice {
            cfg,
            allocated: 0,
            shared,
            compute: Some(compute),
            copy: Some(copy),
            threads,
        }
    }

    fn queue(&self, stream: Stream, op: Op) {
        let tx = match stream {
            Stream::Compute => &self.compute,
            Stream::Copy => &self.copy,
        };
        if let Some(tx) = tx {
            let _ = tx.send(op);
        }
    }

    /// The hazards seen so far.
    pub fn hazards(&self) -> Vec<String> {
        self.shared.hazards.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every operation that has run, in order of completion.
    pub fn timeline(&self) -> Vec<Span> {
        self.shared.timeline.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Bytes the copy engine has moved.
    pub fn bytes_copied(&self) -> u64 {
        *self.shared.bytes_copied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Device memory allocated.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.compute = None;
        self.copy = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run_op(sh: &Shared, cfg: &SimConfig, stream: Stream, t0: Instant, op: Op) {
    let lock_bufs = || sh.bufs.lock().unwrap_or_else(|p| p.into_inner());
    let hazard = |h: String| sh.hazards.lock().unwrap_or_else(|p| p.into_inner()).push(h);
    match op {
        Op::Record(e) => {
            sh.events.lock().unwrap_or_else(|p| p.into_inner())[e.0] = true;
            sh.event_done.notify_all();
        }
        Op::Wait(e) => {
            let mut ev = sh.events.lock().unwrap_or_else(|p| p.into_inner());
            while !ev[e.0] {
                ev = sh.event_done.wait(ev).unwrap_or_else(|p| p.into_inner());
            }
        }
        Op::Copy { buf, len, tag } => {
            let start = t0.elapsed();
            {
                let mut b = lock_bufs();
                let s = &mut b[buf.0];
                if s.readers > 0 {
                    hazard(format!(
                        "copy {tag} overwrites buffer {} while {} kernel(s) read it",
                        buf.0, s.readers
                    ));
                }
                s.writing = true;
                s.tag = None;
            }
            std::thread::sleep(Duration::from_secs_f64(len as f64 / cfg.bandwidth) + cfg.copy_delay);
            {
                let mut b = lock_bufs();
                b[buf.0].writing = false;
                b[buf.0].tag = Some(tag);
            }
            *sh.bytes_copied.lock().unwrap_or_else(|p| p.into_inner()) += len;
            sh.timeline.lock().unwrap_or_else(|p| p.into_inner()).push(Span {
                stream,
                what: "copy",
                tag,
                start,
                end: t0.elapsed(),
            });
        }
        Op::Kernel { name, reads, ns } => {
            let start = t0.elapsed();
            {
                let mut b = lock_bufs();
                for r in &reads {
                    let s = &mut b[r.buf.0];
                    if s.writing {
                        hazard(format!("{name} reads buffer {} while a copy writes it", r.buf.0));
                    } else if s.tag != Some(r.tag) {
                        hazard(format!(
                            "{name} reads buffer {} expecting copy {} but it holds {:?}",
                            r.buf.0, r.tag, s.tag
                        ));
                    }
                    s.readers += 1;
                }
            }
            std::thread::sleep(Duration::from_nanos(ns) + cfg.kernel_delay);
            {
                let mut b = lock_bufs();
                for r in &reads {
                    b[r.buf.0].readers -= 1;
                }
            }
            sh.timeline.lock().unwrap_or_else(|p| p.into_inner()).push(Span {
                stream,
                what: name,
                tag: reads.first().map_or(0, |r| r.tag),
                start,
                end: t0.elapsed(),
            });
        }
    }
}

impl Device for SimDevice {
    fn alloc(&mut self, bytes: u64, what: &'static str) -> Result<BufId> {
        if self.allocated + bytes > self.cfg.memory {
            return Err(RuntimeError::OverBudget {
                needed: self.allocated + bytes,
                budget: self.cfg.memory,
                message: format!(
                    "device memory: {what} needs {bytes} bytes, {} of {} are in use",
                    self.allocated, self.cfg.memory
                ),
            });
        }
        self.allocated += bytes;
        let mut b = self.shared.bufs.lock().unwrap_or_else(|p| p.into_inner());
        b.push(BufState::default());
        Ok(BufId(b.len() - 1))
    }

    fn copy_in(&mut self, buf: BufId, len: u64, tag: u64) {
        self.queue(Stream::Copy, Op::Copy { buf, len, tag });
    }

    fn record(&mut self, stream: Stream) -> EventId {
        let id = {
            let mut ev = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
            ev.push(false);
            EventId(ev.len() - 1)
        };
        self.queue(stream, Op::Record(id));
        id
    }

    fn wait(&mut self, stream: Stream, event: EventId) {
        self.queue(stream, Op::Wait(event));
    }

    fn synchronize(&mut self) -> Result<()> {
        let a = self.record(Stream::Compute);
        let b = self.record(Stream::Copy);
        let mut ev = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        while !(ev[a.0] && ev[b.0]) {
            ev = self.shared.event_done.wait(ev).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}
