//! One call at a time on a handle: a session or sampler used by a second thread while a call
//! runs gets `TS_ERR_BUSY` instead of a data race (the header's rule, now checked). An atomic
//! flag taken with one compare-exchange per call and released when the call returns: no lock, no
//! wait, nothing in the decode loop.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::status::{fail, ts_status, TS_ERR_BUSY};

/// A value that one call at a time may use.
pub(crate) struct Exclusive<T> {
    value: UnsafeCell<T>,
    busy: AtomicBool,
}

// SAFETY: the value is reached only through an `ExclusiveGuard`, of which at most one exists at
// a time (the `busy` flag, taken with Acquire and released with Release, orders the accesses of
// consecutive holders), so sharing the handle between threads never shares the value.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    /// Wraps `value`, free.
    pub(crate) fn new(value: T) -> Self {
        Exclusive {
            value: UnsafeCell::new(value),
            busy: AtomicBool::new(false),
        }
    }

    /// Takes the value for the calling function, or fails with `TS_ERR_BUSY` (and a last-error
    /// message naming `what`) while another call holds it.
    pub(crate) fn take(&self, what: &str) -> Result<ExclusiveGuard<'_, T>, ts_status> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(fail(
                TS_ERR_BUSY,
                format!(
                    "the {what} is in use by another call (another thread): a {what} serves one \
                     call at a time; give each thread its own, or wait for the call to return"
                ),
            ));
        }
        Ok(ExclusiveGuard { cell: self })
    }

    /// Whether a call holds the value now.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
}

/// The value, held by one call; released on drop (also when the call unwinds).
pub(crate) struct ExclusiveGuard<'a, T> {
    cell: &'a Exclusive<T>,
}

impl<T> Deref for ExclusiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (the busy flag), so no other reference exists.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T> DerefMut for ExclusiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` keeps this guard's own borrows apart.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T> Drop for ExclusiveGuard<'_, T> {
    fn drop(&mut self) {
        self.cell.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_until_the_first_returns() {
        let e = Exclusive::new(5);
        let mut g = e.take("session").unwrap();
        *g += 1;
        assert!(e.is_busy());
        assert_eq!(e.take("session").err(), Some(TS_ERR_BUSY));
        drop(g);
        assert_eq!(*e.take("session").unwrap(), 6);
    }
}
