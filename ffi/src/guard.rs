//! The panic guard every exported function runs under: no panic crosses the C boundary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::{clear_error, fail, ts_status, TS_ERR_INTERNAL, TS_OK};

const PANIC_MESSAGE: &str = "internal error (a panic was caught at the C boundary)";

/// Runs a status-returning entry point: a panic becomes `TS_ERR_INTERNAL` with a last-error
/// message; success clears the calling thread's last error.
pub(crate) fn guard(f: impl FnOnce() -> ts_status) -> ts_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(s) => {
            if s == TS_OK {
                clear_error();
            }
            s
        }
        Err(_) => fail(TS_ERR_INTERNAL, PANIC_MESSAGE),
    }
}

/// Runs a value-returning entry point (a getter): a panic returns `fallback` and records the
/// last-error message.
pub(crate) fn guard_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        fail(TS_ERR_INTERNAL, PANIC_MESSAGE);
        fallback
    })
}

/// Runs an entry point without a result (`*_free`, setters).
pub(crate) fn guard_unit(f: impl FnOnce()) {
    guard_or((), f)
}
