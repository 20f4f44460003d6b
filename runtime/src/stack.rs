//! The calling thread's stack. The kernels keep tiles and tables of up to ~50 KiB on the stack
//! of every thread that computes (the caller of prefill/decode is one of them); a thread with
//! less left would run past its guard page. Each call checks what is left below its frame
//! against [`STACK_NEEDED`] and refuses with a typed error instead (the C kernels are also built
//! with `-fstack-clash-protection`, so an overflow can never skip the guard page silently).

use std::cell::Cell;

use nix::libc;

use crate::error::{Result, RuntimeError};

/// Stack a thread needs free below the caller's frame when it enters prefill or decode: the
/// deepest kernel frame (the tile GEMMs: ~50 KiB) plus the Rust frames above it, with margin.
pub const STACK_NEEDED: usize = 128 << 10;

thread_local! {
    /// The lowest usable address of this thread's stack; 0: not asked yet, `usize::MAX`:
    /// unknown (the check is skipped).
    static STACK_LOW: Cell<usize> = const { Cell::new(0) };
}

/// The lowest usable stack address of the calling thread, from `pthread_getattr_np` (for the
/// main thread glibc derives it from `RLIMIT_STACK`); asked once per thread.
fn stack_low() -> usize {
    STACK_LOW.with(|low| {
        if low.get() == 0 {
            low.set(query_stack_low().unwrap_or(usize::MAX));
        }
        low.get()
    })
}

fn query_stack_low() -> Option<usize> {
    // SAFETY: the attribute object is initialised by pthread_getattr_np before it is read and
    // destroyed once; the out-pointers are valid locals.
    unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (rc == 0 && !addr.is_null()).then_some(addr as usize)
    }
}

/// Bytes of stack left below the caller's frame (`None`: unknown).
#[inline(never)]
pub fn stack_left() -> Option<usize> {
    let low = stack_low();
    if low == usize::MAX {
        return None;
    }
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    Some(here.saturating_sub(low))
}

/// `Err(StackTooSmall)` when the calling thread has less than [`STACK_NEEDED`] left.
pub fn check_stack() -> Result<()> {
    match stack_left() {
        Some(available) if available < STACK_NEEDED => Err(RuntimeError::StackTooSmall {
            available,
            needed: STACK_NEEDED,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recurses in 16 KiB frames until less than `left` bytes of stack remain, then checks.
    #[inline(never)]
    fn check_with_less_than(left: usize) -> (Result<()>, Option<usize>) {
        let frame = std::hint::black_box([0u8; 16 << 10]);
        match stack_left() {
            Some(l) if l >= left => {
                let r = check_with_less_than(left);
                std::hint::black_box(&frame);
                r
            }
            l => (check_stack(), l),
        }
    }

    #[test]
    fn a_small_thread_stack_is_refused_and_a_large_one_passes() {
        // Below the need (whatever minimum stack the C library rounds a small request up to:
        // 128 KiB and more on aarch64): refused.
        let small = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| check_with_less_than(STACK_NEEDED - (8 << 10)))
            .unwrap()
            .join()
            .unwrap();
        assert!(small.1.is_some_and(|l| l < STACK_NEEDED), "{small:?}");
        assert!(matches!(small.0, Err(RuntimeError::StackTooSmall { .. })), "{small:?}");
        let large = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| (check_stack(), stack_left()))
            .unwrap()
            .join()
            .unwrap();
        assert!(large.0.is_ok(), "{large:?}");
        let left = large.1.unwrap();
        assert!(left > 900 << 10 && left < 2 << 20, "{left}");
    }
}
