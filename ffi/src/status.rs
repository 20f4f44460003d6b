//! Status codes, the calling thread's last error message, and the log callback.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use tensorsharp_models::ModelError;
use tensorsharp_runtime::RuntimeError;

use crate::guard::{guard_or, guard_unit};

/// ABI major version (the soname carries it).
pub const TS_ABI_VERSION: u32 = 1;

/// Status codes (see `tensorsharp.h`).
pub type ts_status = c_int;
/// Success.
pub const TS_OK: ts_status = 0;
/// A NULL handle, a bad size, an out-of-range parameter, or a saved state that does not belong
/// to the session (another model or shape) or is damaged.
pub const TS_ERR_INVALID_ARG: ts_status = 1;
/// A file could not be read or written (the model file, a state file), or a mapped model file
/// was truncated or rewritten while in use (load the model again).
pub const TS_ERR_IO: ts_status = 2;
/// The model file is malformed.
pub const TS_ERR_BAD_MODEL: ts_status = 3;
/// The model uses an architecture, tokenizer or type this build does not support.
pub const TS_ERR_UNSUPPORTED: ts_status = 4;
/// The memory plan exceeds the budget, or the system refused an allocation (nothing was kept).
pub const TS_ERR_OVER_BUDGET: ts_status = 5;
/// The tokens do not fit in the context.
pub const TS_ERR_CONTEXT_FULL: ts_status = 6;
/// The call was cancelled (`ts_session_cancel`).
pub const TS_ERR_CANCELLED: ts_status = 7;
/// A caller buffer is too small; the needed size was written to the size out-parameter.
pub const TS_ERR_BUFFER_TOO_SMALL: ts_status = 8;
/// A bug: a panic caught at the boundary. The handle should be freed.
pub const TS_ERR_INTERNAL: ts_status = 9;
/// A system call failed (memory locking, thread creation), or the calling thread's stack is too
/// small (see the header's Stack convention).
pub const TS_ERR_SYSTEM: ts_status = 10;
/// The session or sampler is in use by a call on another thread (one call at a time per handle);
/// nothing was done.
pub const TS_ERR_BUSY: ts_status = 11;

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The log callback's type.
pub type ts_log_cb = unsafe extern "C" fn(user: *mut c_void, level: c_int, msg: *const c_char);
static LOG_FN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static LOG_USER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Log level of errors.
pub(crate) const LOG_ERROR: c_int = 3;
/// Log level of warnings.
pub(crate) const LOG_WARN: c_int = 2;

/// Records `msg` as the calling thread's last error and logs it.
pub(crate) fn set_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend(msg.bytes().filter(|&b| b != 0));
        e.push(0);
    });
    log(LOG_ERROR, msg);
}

/// Clears the calling thread's last error (after a successful call).
pub(crate) fn clear_error() {
    LAST_ERROR.with(|e| e.borrow_mut().clear());
}

/// Sends a message to the log callback, if one is set.
pub(crate) fn log(level: c_int, msg: &str) {
    let f = LOG_FN.load(Ordering::Acquire);
    if !f.is_null() {
        let mut line: Vec<u8> = msg.bytes().filter(|&b| b != 0).collect();
        line.push(0);
        // SAFETY: `f` was stored from a `ts_log_cb`; the message is NUL-terminated for the call.
        unsafe {
            let f: ts_log_cb = std::mem::transmute::<*mut c_void, ts_log_cb>(f);
            f(LOG_USER.load(Ordering::Acquire), level, line.as_ptr().cast());
        }
    }
}

/// A NUL-terminated UTF-8 argument called `what`, or the recorded `TS_ERR_INVALID_ARG` for NULL
/// ("`what` is NULL") or invalid UTF-8 ("`what` is not UTF-8").
pub(crate) fn c_str<'a>(p: *const std::ffi::c_char, what: &str) -> Result<&'a str, ts_status> {
    if p.is_null() {
        return Err(fail(TS_ERR_INVALID_ARG, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail(TS_ERR_INVALID_ARG, format!("{what} is not UTF-8")))
}

/// Records `msg` and returns `status`.
pub(crate) fn fail(status: ts_status, msg: impl AsRef<str>) -> ts_status {
    set_error(msg.as_ref());
    status
}

/// The status code of a runtime error.
pub(crate) fn status_of(e: &RuntimeError) -> ts_status {
    match e {
        RuntimeError::Model(m) => match m {
            ModelError::Io { .. } | ModelError::NotAFile { .. } => TS_ERR_IO,
            ModelError::UnsupportedArchitecture(_) => TS_ERR_UNSUPPORTED,
            _ => TS_ERR_BAD_MODEL,
        },
        RuntimeError::Kernel(_) | RuntimeError::UnsupportedTokenizer(_) => TS_ERR_UNSUPPORTED,
        RuntimeError::InvalidParameter { .. }
        | RuntimeError::BadToken { .. }
        | RuntimeError::StateMismatch { .. }
        | RuntimeError::CorruptState(_)
        | RuntimeError::Template { .. }
        | RuntimeError::Conversation(_) => TS_ERR_INVALID_ARG,
        RuntimeError::BufferTooSmall { .. } => TS_ERR_BUFFER_TOO_SMALL,
        RuntimeError::ContextFull { .. } => TS_ERR_CONTEXT_FULL,
        RuntimeError::OverBudget { .. } | RuntimeError::OutOfMemory { .. } => TS_ERR_OVER_BUDGET,
        RuntimeError::ModelFileChanged { .. } => TS_ERR_IO,
        RuntimeError::StackTooSmall { .. } => TS_ERR_SYSTEM,
        RuntimeError::Cancelled => TS_ERR_CANCELLED,
        RuntimeError::Io(_) => TS_ERR_IO,
        RuntimeError::System { .. } => TS_ERR_SYSTEM,
        _ => TS_ERR_INTERNAL,
    }
}

/// Records a runtime error and returns its status.
pub(crate) fn from_err(e: RuntimeError) -> ts_status {
    fail(status_of(&e), e.to_string())
}

/// The library version as `major * 10000 + minor * 100 + patch`. Thread-safe; no contract.
#[no_mangle]
pub extern "C" fn ts_version() -> u32 {
    guard_or(0, || {
        let v = |s: &str| s.parse::<u32>().unwrap_or(0);
        v(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
            + v(env!("CARGO_PKG_VERSION_MINOR")) * 100
            + v(env!("CARGO_PKG_VERSION_PATCH"))
    })
}

/// The ABI major version this library implements (`TS_ABI_VERSION` of its header). Thread-safe;
/// no contract.
#[no_mangle]
pub extern "C" fn ts_abi_version() -> u32 {
    guard_or(0, || TS_ABI_VERSION)
}

/// A static description of a status code (any value; unknown ones get "unknown status").
/// Thread-safe; the string is never freed.
#[no_mangle]
pub extern "C" fn ts_status_str(s: ts_status) -> *const c_char {
    guard_or(c"internal error".as_ptr(), || {
        let m: &'static std::ffi::CStr = match s {
            TS_OK => c"ok",
            TS_ERR_INVALID_ARG => c"invalid argument",
            TS_ERR_IO => c"I/O error",
            TS_ERR_BAD_MODEL => c"malformed model file",
            TS_ERR_UNSUPPORTED => c"unsupported model",
            TS_ERR_OVER_BUDGET => c"over the memory budget",
            TS_ERR_CONTEXT_FULL => c"context full",
            TS_ERR_CANCELLED => c"cancelled",
            TS_ERR_BUFFER_TOO_SMALL => c"buffer too small",
            TS_ERR_INTERNAL => c"internal error",
            TS_ERR_SYSTEM => c"system error",
            TS_ERR_BUSY => c"handle in use by another call",
            _ => c"unknown status",
        };
        m.as_ptr()
    })
}

/// The message of the calling thread's last error ("" if the last call succeeded).
///
/// Contract: the pointer is valid until the thread's next call into the library; do not free it.
#[no_mangle]
pub extern "C" fn ts_last_error() -> *const c_char {
    guard_or(c"".as_ptr(), || {
        LAST_ERROR.with(|e| {
            let e = e.borrow();
            if e.is_empty() {
                c"".as_ptr()
            } else {
                e.as_ptr().cast()
            }
        })
    })
}

/// Sets (or clears, with NULL) the function that receives error and warning messages.
///
/// Contract: `cb` may be called from any thread that calls the library, with `user`, until it
/// is replaced; it must not call back into the library. Thread-safe.
#[no_mangle]
pub extern "C" fn ts_set_log_callback(cb: Option<ts_log_cb>, user: *mut c_void) {
    guard_unit(|| {
        LOG_USER.store(user, Ordering::Release);
        LOG_FN.store(cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void), Ordering::Release);
    })
}
