//! Model files that change under a mapping (`--mmap`, or a model too large to copy).
//!
//! Reading a page of a file mapping that another process truncated away raises SIGBUS, which
//! kills the process without a word. A mapped model registers its range here; the first
//! registration installs a SIGBUS handler that, for a fault inside a registered range, maps
//! zero-filled anonymous pages over the rest of the range (so the faulting load and every later
//! one read zeros instead of faulting again), marks the range faulted and returns. The call in
//! flight finishes on zeros and then reports [`RuntimeError::ModelFileChanged`], as does every
//! later call on that model: a daemon refuses the request and reloads the model instead of
//! dying. A fault anywhere else goes to the handler that was installed before ours (or the
//! default action, a core dump), unchanged.
//!
//! The handler only reads atomics and calls `mmap`, a plain system call on Linux.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::libc;

/// How many mappings can be watched at once (models loaded mapped in one process).
const SLOTS: usize = 64;

struct Slot {
    /// Claimed by a [`MappingWatch`].
    used: AtomicBool,
    start: AtomicUsize,
    /// 0 while the slot is free or being filled.
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};
static WATCHED: [Slot; SLOTS] = [FREE; SLOTS];

/// The SIGBUS disposition before ours (chained for faults outside the watched ranges).
#[derive(Clone, Copy)]
struct Previous {
    handler: usize,
    flags: libc::c_int,
}
static PREVIOUS: OnceLock<Option<Previous>> = OnceLock::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// A registered file mapping; unregistered on drop (which must happen before the mapping is
/// unmapped: declare the watch before the mapping's owner in a struct).
#[derive(Debug)]
pub struct MappingWatch {
    slot: usize,
}

impl MappingWatch {
    /// Watches `bytes` (a file mapping). `None` when the handler could not be installed or
    /// every slot is taken (the mapping then works unwatched, as before).
    pub fn register(bytes: &[u8]) -> Option<MappingWatch> {
        if bytes.is_empty() || install().is_none() {
            return None;
        }
        let slot = WATCHED.iter().position(|s| {
            s.used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        let s = &WATCHED[slot];
        s.faulted.store(false, Ordering::Relaxed);
        s.start.store(bytes.as_ptr() as usize, Ordering::Relaxed);
        s.len.store(bytes.len(), Ordering::Release);
        Some(MappingWatch { slot })
    }

    /// Whether a read of the mapping faulted (the file shrank or was replaced in place); the
    /// range reads as zeros since.
    pub fn faulted(&self) -> bool {
        WATCHED[self.slot].faulted.load(Ordering::Acquire)
    }
}

impl Drop for MappingWatch {
    fn drop(&mut self) {
        let s = &WATCHED[self.slot];
        s.len.store(0, Ordering::Release);
        s.start.store(0, Ordering::Relaxed);
        s.used.store(false, Ordering::Release);
    }
}

/// Installs the handler once; `None` when `sigaction` failed.
fn install() -> Option<()> {
    PREVIOUS
        .get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            // SAFETY: a zeroed sigaction is a valid value to fill; `on_sigbus` has the
            // SA_SIGINFO signature; `old` receives the previous disposition.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_sigbus as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut act.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &act, &mut old) != 0 {
                    return None;
                }
                Some(Previous {
                    handler: old.sa_sigaction,
                    flags: old.sa_flags,
                })
            }
        })
        .map(|_| ())
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for s in &WATCHED {
        let len = s.len.load(Ordering::Acquire);
        let start = s.start.load(Ordering::Relaxed);
        if len == 0 || addr < start || addr >= start + len {
            continue;
        }
        let from = addr & !(page - 1);
        let end = (start + len).next_multiple_of(page);
        // SAFETY: [from, end) lies inside the registered file mapping, which stays mapped while
        // it is registered; replacing its pages with zero pages changes only what it reads.
        let p = unsafe {
            libc::mmap(
                from as *mut c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            s.faulted.store(true, Ordering::Release);
            return;
        }
        break;
    }
    chain(sig, info, ctx);
}

/// Hands a fault we do not own to the previous disposition.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let prev = PREVIOUS.get().copied().flatten();
    match prev {
        Some(p) if p.handler != libc::SIG_DFL && p.handler != libc::SIG_IGN => {
            if p.flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO and this signature.
                let f = unsafe {
                    std::mem::transmute::<usize, extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void)>(
                        p.handler,
                    )
                };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler takes the signal number.
                let f = unsafe { std::mem::transmute::<usize, extern "C" fn(libc::c_int)>(p.handler) };
                f(sig);
            }
        }
        _ => {
            // The default action: restore it and return; the faulting instruction runs again
            // and the fault kills the process as it would have without us.
            // SAFETY: resetting a disposition to SIG_DFL is always valid.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_truncated_mapping_reads_zeros_and_reports_the_fault() {
        let path = std::env::temp_dir().join(format!("tsharp-fault-{}", std::process::id()));
        let page = 4096 * 4;
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&vec![7u8; page * 4])
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a read-only mapping of our own scratch file.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let watch = MappingWatch::register(&map).expect("handler installed");
        assert_eq!(map[page * 3], 7);
        assert!(!watch.faulted());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        // SAFETY: reading the mapping; the fault becomes zeros (volatile: the read happens).
        let v = unsafe { std::ptr::read_volatile(map.as_ptr().add(page * 2 + 5)) };
        assert_eq!(v, 0);
        assert!(watch.faulted());
        drop(watch);
        drop(map);
        std::fs::remove_file(&path).ok();
    }
}
