//! TensorSharp C ABI (`libtensorsharp`, `include/tensorsharp.h`).
//!
//! Conventions (llama.h-like): opaque handles with create/free pairs; params structs that start
//! with `struct_size` and are filled by `ts_*_params_default()`; every call returns a
//! [`ts_status`]; the message of the last error of the calling thread is `ts_last_error()`;
//! caller-owned output buffers, with the needed size reported when one is too small. No panic
//! crosses the boundary: every entry point runs under `catch_unwind` and maps a panic to
//! `TS_ERR_INTERNAL`. Only the create calls allocate.
#![allow(non_camel_case_types)]
// C entry points take raw pointers by design: each one checks them for NULL and documents the
// rest of its contract in tensorsharp.h, so they are safe functions to C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use tensorsharp_runtime::{
    KvType, LockMode, Model, RuntimeError, Sampler, SamplerParams, Session, SessionParams, StreamDecoder, WeightsMode,
};

/// ABI major version (the soname carries it).
pub const TS_ABI_VERSION: u32 = 1;

/// Status codes (see `tensorsharp.h`).
pub type ts_status = c_int;
/// Success.
pub const TS_OK: ts_status = 0;
/// A NULL handle, a bad size or an out-of-range parameter.
pub const TS_ERR_INVALID_ARG: ts_status = 1;
/// The model file could not be read.
pub const TS_ERR_IO: ts_status = 2;
/// The model file is malformed.
pub const TS_ERR_BAD_MODEL: ts_status = 3;
/// The model uses an architecture, tokenizer or type this build does not support.
pub const TS_ERR_UNSUPPORTED: ts_status = 4;
/// The memory plan exceeds the budget (nothing was allocated).
pub const TS_ERR_OVER_BUDGET: ts_status = 5;
/// The tokens do not fit in the context.
pub const TS_ERR_CONTEXT_FULL: ts_status = 6;
/// The call was cancelled (`ts_session_cancel`).
pub const TS_ERR_CANCELLED: ts_status = 7;
/// A caller buffer is too small; the needed size was written to the size out-parameter.
pub const TS_ERR_BUFFER_TOO_SMALL: ts_status = 8;
/// A bug: a panic caught at the boundary. The handle should be freed.
pub const TS_ERR_INTERNAL: ts_status = 9;
/// A system call failed (memory locking, thread creation).
pub const TS_ERR_SYSTEM: ts_status = 10;

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

type LogFn = unsafe extern "C" fn(user: *mut c_void, level: c_int, msg: *const c_char);
static LOG_FN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static LOG_USER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

fn set_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend(msg.bytes().filter(|&b| b != 0));
        e.push(0);
    });
    log(3, msg);
}

/// Sends a message to the log callback, if one is set.
fn log(level: c_int, msg: &str) {
    let f = LOG_FN.load(Ordering::Acquire);
    if !f.is_null() {
        let mut line: Vec<u8> = msg.bytes().filter(|&b| b != 0).collect();
        line.push(0);
        // SAFETY: `f` was stored from a `LogFn`; the message is NUL-terminated for the call.
        unsafe {
            let f: LogFn = std::mem::transmute::<*mut c_void, LogFn>(f);
            f(LOG_USER.load(Ordering::Acquire), level, line.as_ptr().cast());
        }
    }
}

fn inner_warnings(h: &ts_session) -> &[String] {
    // SAFETY: the handle is not yet shared.
    unsafe { (*h.inner.get()).session.warnings() }
}

fn fail(status: ts_status, msg: impl AsRef<str>) -> ts_status {
    set_error(msg.as_ref());
    status
}

fn status_of(e: &RuntimeError) -> ts_status {
    match e {
        RuntimeError::Model(m) => match m {
            tensorsharp_models::ModelError::Io { .. } => TS_ERR_IO,
            tensorsharp_models::ModelError::UnsupportedArchitecture(_) => TS_ERR_UNSUPPORTED,
            _ => TS_ERR_BAD_MODEL,
        },
        RuntimeError::Kernel(_) | RuntimeError::UnsupportedTokenizer(_) => TS_ERR_UNSUPPORTED,
        RuntimeError::InvalidParameter { .. } | RuntimeError::BadToken { .. } => TS_ERR_INVALID_ARG,
        RuntimeError::ContextFull { .. } => TS_ERR_CONTEXT_FULL,
        RuntimeError::OverBudget { .. } => TS_ERR_OVER_BUDGET,
        RuntimeError::Cancelled => TS_ERR_CANCELLED,
        RuntimeError::System { .. } | RuntimeError::Io(_) => TS_ERR_SYSTEM,
        _ => TS_ERR_INTERNAL,
    }
}

fn from_err(e: RuntimeError) -> ts_status {
    fail(status_of(&e), e.to_string())
}

/// Runs `f` with panics mapped to `TS_ERR_INTERNAL`.
fn guard(f: impl FnOnce() -> ts_status) -> ts_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(s) => {
            if s == TS_OK {
                LAST_ERROR.with(|e| e.borrow_mut().clear());
            }
            s
        }
        Err(_) => fail(TS_ERR_INTERNAL, "internal error (a panic was caught at the C boundary)"),
    }
}

macro_rules! check_size {
    ($p:expr, $t:ty) => {
        if $p.is_null() {
            return fail(TS_ERR_INVALID_ARG, concat!(stringify!($p), " is NULL"));
        }
        // SAFETY: non-NULL; the caller passes a struct that starts with `struct_size`.
        let size = unsafe { *($p as *const u32) } as usize;
        if size != std::mem::size_of::<$t>() {
            return fail(
                TS_ERR_INVALID_ARG,
                format!(
                    "{}: struct_size is {size}, this library expects {} (header/library mismatch?)",
                    stringify!($t),
                    std::mem::size_of::<$t>()
                ),
            );
        }
    };
}

/// Opaque model handle: read-only after load, shareable between threads.
pub struct ts_model {
    model: Arc<Model>,
}

/// Opaque session handle: one thread at a time (except `ts_session_cancel`).
pub struct ts_session {
    inner: UnsafeCell<SessionInner>,
    cancel: Arc<AtomicBool>,
}

struct SessionInner {
    session: Session,
    logits: Vec<f32>,
    decoder: StreamDecoder,
    piece: Vec<u8>,
}

/// Opaque sampler chain handle.
pub struct ts_sampler {
    sampler: Sampler,
}

/// Model load parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_model_params {
    /// `sizeof(ts_model_params)`.
    pub struct_size: u32,
    /// `TS_MODEL_*` bits; 0: the weights are read into resident huge-page memory.
    pub flags: u32,
}

/// `ts_model_params.flags`: map the model file instead of reading it into huge-page memory
/// (instant load, pages shared with other processes, slower decode).
pub const TS_MODEL_MMAP: u32 = 1;

/// Session parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_session_params {
    /// `sizeof(ts_session_params)`.
    pub struct_size: u32,
    /// Context length; 0: the model's, at most 4096.
    pub n_ctx: u32,
    /// Prompt tokens per prefill chunk.
    pub n_batch: u32,
    /// Threads, the caller included; 0: one per CPU.
    pub n_threads: u32,
    /// 0: f16, 1: f32, 2: q8_0.
    pub kv_type: u32,
    /// 0: off, 1: lock (warn if not permitted), 2: lock or fail.
    pub mlock: u32,
    /// RAM budget in bytes for the whole plan; 0: the cgroup limit or MemAvailable.
    pub ram_budget: u64,
    /// CPUs to pin the threads to (thread i on cpus[i % n_cpus]); NULL / 0: unpinned.
    pub cpus: *const i32,
    /// Entries in `cpus`.
    pub n_cpus: u32,
    /// SCHED_FIFO priority 1..99 for the threads (degrades with a logged warning when not
    /// permitted); 0: normal scheduling.
    pub rt_priority: i32,
}

/// Sampler parameters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ts_sampler_params {
    /// `sizeof(ts_sampler_params)`.
    pub struct_size: u32,
    /// Top-k (0: off).
    pub top_k: u32,
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-p (1: off).
    pub top_p: f32,
    /// Min-p (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Presence penalty (0: off).
    pub presence_penalty: f32,
    /// Frequency penalty (0: off).
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    pub penalty_last_n: u32,
    /// Reserved, 0.
    pub reserved: u32,
    /// Random seed.
    pub seed: u64,
}

/// Token callback of `ts_session_generate`: non-zero stops.
pub type ts_token_cb =
    Option<unsafe extern "C" fn(user: *mut c_void, token: i32, piece: *const c_char, len: usize) -> c_int>;

/// The library version as `major * 10000 + minor * 100 + patch`.
#[no_mangle]
pub extern "C" fn ts_version() -> u32 {
    let v = |s: &str| s.parse::<u32>().unwrap_or(0);
    v(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + v(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + v(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The ABI major version this library implements (`TS_ABI_VERSION` of its header).
#[no_mangle]
pub extern "C" fn ts_abi_version() -> u32 {
    TS_ABI_VERSION
}

/// A static description of a status code.
#[no_mangle]
pub extern "C" fn ts_status_str(s: ts_status) -> *const c_char {
    let m: &'static [u8] = match s {
        TS_OK => b"ok\0",
        TS_ERR_INVALID_ARG => b"invalid argument\0",
        TS_ERR_IO => b"I/O error\0",
        TS_ERR_BAD_MODEL => b"malformed model file\0",
        TS_ERR_UNSUPPORTED => b"unsupported model\0",
        TS_ERR_OVER_BUDGET => b"over the memory budget\0",
        TS_ERR_CONTEXT_FULL => b"context full\0",
        TS_ERR_CANCELLED => b"cancelled\0",
        TS_ERR_BUFFER_TOO_SMALL => b"buffer too small\0",
        TS_ERR_INTERNAL => b"internal error\0",
        TS_ERR_SYSTEM => b"system error\0",
        _ => b"unknown status\0",
    };
    m.as_ptr().cast()
}

/// The message of the calling thread's last error ("" if the last call succeeded). Valid until
/// the thread's next call into the library.
#[no_mangle]
pub extern "C" fn ts_last_error() -> *const c_char {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        if e.is_empty() {
            c"".as_ptr()
        } else {
            e.as_ptr().cast()
        }
    })
}

/// Sets (or clears, with NULL) the function that receives error and warning messages. Thread-safe.
#[no_mangle]
pub extern "C" fn ts_set_log_callback(cb: Option<LogFn>, user: *mut c_void) {
    LOG_USER.store(user, Ordering::Release);
    LOG_FN.store(cb.map_or(std::ptr::null_mut(), |f| f as *mut c_void), Ordering::Release);
}

/// Fills `p` with defaults (sets `struct_size`).
#[no_mangle]
pub extern "C" fn ts_model_params_default(p: *mut ts_model_params) -> ts_status {
    if p.is_null() {
        return fail(TS_ERR_INVALID_ARG, "p is NULL");
    }
    // SAFETY: non-NULL, caller-owned struct of this type.
    unsafe {
        p.write(ts_model_params {
            struct_size: std::mem::size_of::<ts_model_params>() as u32,
            flags: 0,
        })
    };
    TS_OK
}

/// Fills `p` with defaults.
#[no_mangle]
pub extern "C" fn ts_session_params_default(p: *mut ts_session_params) -> ts_status {
    if p.is_null() {
        return fail(TS_ERR_INVALID_ARG, "p is NULL");
    }
    // SAFETY: non-NULL, caller-owned struct of this type.
    unsafe {
        p.write(ts_session_params {
            struct_size: std::mem::size_of::<ts_session_params>() as u32,
            n_ctx: 0,
            n_batch: 64,
            n_threads: 0,
            kv_type: 0,
            mlock: 0,
            ram_budget: 0,
            cpus: std::ptr::null(),
            n_cpus: 0,
            rt_priority: 0,
        })
    };
    TS_OK
}

/// Fills `p` with defaults (greedy).
#[no_mangle]
pub extern "C" fn ts_sampler_params_default(p: *mut ts_sampler_params) -> ts_status {
    if p.is_null() {
        return fail(TS_ERR_INVALID_ARG, "p is NULL");
    }
    let g = SamplerParams::greedy();
    // SAFETY: non-NULL, caller-owned struct of this type.
    unsafe {
        p.write(ts_sampler_params {
            struct_size: std::mem::size_of::<ts_sampler_params>() as u32,
            top_k: g.top_k as u32,
            temperature: g.temperature,
            top_p: g.top_p,
            min_p: g.min_p,
            repeat_penalty: g.repeat_penalty,
            presence_penalty: g.presence_penalty,
            frequency_penalty: g.frequency_penalty,
            penalty_last_n: g.penalty_last_n as u32,
            reserved: 0,
            seed: g.seed,
        })
    };
    TS_OK
}

/// Loads a GGUF model. `params` may be NULL (defaults). On success `*out` owns the model; free
/// it with `ts_model_free`. Allocates.
#[no_mangle]
pub extern "C" fn ts_model_load(
    path: *const c_char,
    params: *const ts_model_params,
    out: *mut *mut ts_model,
) -> ts_status {
    guard(|| {
        if path.is_null() || out.is_null() {
            return fail(TS_ERR_INVALID_ARG, "path and out must not be NULL");
        }
        // SAFETY: out is non-NULL and writable by contract.
        unsafe { *out = std::ptr::null_mut() };
        let mut mode = WeightsMode::Resident;
        if !params.is_null() {
            check_size!(params, ts_model_params);
            // SAFETY: non-NULL and of the checked size by contract.
            let flags = unsafe { (*params).flags };
            if flags & !TS_MODEL_MMAP != 0 {
                return fail(
                    TS_ERR_INVALID_ARG,
                    format!("unknown ts_model_params.flags bits {flags:#x}"),
                );
            }
            if flags & TS_MODEL_MMAP != 0 {
                mode = WeightsMode::Mapped;
            }
        }
        // SAFETY: non-NULL NUL-terminated string by contract.
        let path = match unsafe { CStr::from_ptr(path) }.to_str() {
            Ok(p) => p,
            Err(_) => return fail(TS_ERR_INVALID_ARG, "path is not UTF-8"),
        };
        match Model::load_opts(path, mode, None) {
            Ok(m) => {
                // SAFETY: as above.
                unsafe { *out = Box::into_raw(Box::new(ts_model { model: Arc::new(m) })) };
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// Frees a model (NULL: no-op). Sessions created from it keep it alive until they are freed.
#[no_mangle]
pub extern "C" fn ts_model_free(m: *mut ts_model) {
    if !m.is_null() {
        // SAFETY: created by ts_model_load and not freed before (contract).
        drop(unsafe { Box::from_raw(m) });
    }
}

fn model_ref<'a>(m: *const ts_model) -> Option<&'a ts_model> {
    // SAFETY: a non-NULL handle is a live ts_model by contract.
    unsafe { m.as_ref() }
}

/// Vocabulary size (0 for NULL).
#[no_mangle]
pub extern "C" fn ts_model_n_vocab(m: *const ts_model) -> u32 {
    model_ref(m).map_or(0, |m| m.model.tokenizer().n_vocab() as u32)
}

/// Training context length (0 for NULL).
#[no_mangle]
pub extern "C" fn ts_model_n_ctx_train(m: *const ts_model) -> u32 {
    model_ref(m).map_or(0, |m| m.model.spec().n_ctx_train as u32)
}

/// Whether `token` ends generation (EOS, EOT, `<|im_end|>`, ...); 0 for NULL.
#[no_mangle]
pub extern "C" fn ts_model_token_is_eog(m: *const ts_model, token: i32) -> c_int {
    model_ref(m).map_or(0, |m| {
        c_int::from(token >= 0 && m.model.tokenizer().is_eog(token as u32))
    })
}

/// Tokenizes `len` bytes of UTF-8 `text` into `tokens` (capacity `cap`). `*n_tokens` receives
/// the count; `TS_ERR_BUFFER_TOO_SMALL` when it exceeds `cap` (nothing useful written).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn ts_tokenize(
    m: *const ts_model,
    text: *const c_char,
    len: usize,
    add_special: c_int,
    parse_special: c_int,
    tokens: *mut i32,
    cap: usize,
    n_tokens: *mut usize,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if n_tokens.is_null() || (text.is_null() && len > 0) || (tokens.is_null() && cap > 0) {
            return fail(
                TS_ERR_INVALID_ARG,
                "NULL buffer with a non-zero size, or n_tokens is NULL",
            );
        }
        let bytes = if len == 0 {
            &[][..]
        } else {
            // SAFETY: non-NULL and readable for len bytes by contract.
            unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) }
        };
        let Ok(s) = std::str::from_utf8(bytes) else {
            return fail(TS_ERR_INVALID_ARG, "text is not UTF-8");
        };
        let ids = m.model.tokenizer().tokenize(s, add_special != 0, parse_special != 0);
        // SAFETY: non-NULL by the check above.
        unsafe { *n_tokens = ids.len() };
        if ids.len() > cap {
            return fail(
                TS_ERR_BUFFER_TOO_SMALL,
                format!("{} tokens do not fit in {cap}", ids.len()),
            );
        }
        for (i, &t) in ids.iter().enumerate() {
            // SAFETY: i < ids.len() <= cap.
            unsafe { *tokens.add(i) = t as i32 };
        }
        TS_OK
    })
}

/// Writes the text of `n` tokens to `buf` (capacity `cap`, not NUL-terminated); `*len` receives
/// the byte count; `TS_ERR_BUFFER_TOO_SMALL` when it exceeds `cap`.
#[no_mangle]
pub extern "C" fn ts_detokenize(
    m: *const ts_model,
    tokens: *const i32,
    n: usize,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if len.is_null() || (tokens.is_null() && n > 0) || (buf.is_null() && cap > 0) {
            return fail(TS_ERR_INVALID_ARG, "NULL buffer with a non-zero size, or len is NULL");
        }
        let tok = m.model.tokenizer();
        let ids = if n == 0 {
            &[][..]
        } else {
            // SAFETY: readable for n tokens by contract.
            unsafe { std::slice::from_raw_parts(tokens, n) }
        };
        let mut total = 0usize;
        for &t in ids {
            if t < 0 || t as usize >= tok.n_vocab() {
                return fail(TS_ERR_INVALID_ARG, format!("token {t} is outside the vocabulary"));
            }
            total += tok.piece(t as u32, false).len();
        }
        // SAFETY: non-NULL by the check above.
        unsafe { *len = total };
        if total > cap {
            return fail(TS_ERR_BUFFER_TOO_SMALL, format!("{total} bytes do not fit in {cap}"));
        }
        let mut at = 0;
        for &t in ids {
            let p = tok.piece(t as u32, false);
            // SAFETY: at + p.len() <= total <= cap.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), buf.cast::<u8>().add(at), p.len()) };
            at += p.len();
        }
        TS_OK
    })
}

/// Creates a session (KV cache and buffers, planned and checked against the budget) over a
/// model. Allocates (the only allocation of the session's life).
#[no_mangle]
pub extern "C" fn ts_session_create(
    m: *const ts_model,
    params: *const ts_session_params,
    out: *mut *mut ts_session,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if out.is_null() {
            return fail(TS_ERR_INVALID_ARG, "out is NULL");
        }
        // SAFETY: non-NULL, writable by contract.
        unsafe { *out = std::ptr::null_mut() };
        let mut p = SessionParams::default();
        if !params.is_null() {
            check_size!(params, ts_session_params);
            // SAFETY: non-NULL and of the right size.
            let c = unsafe { *params };
            p.n_ctx = c.n_ctx as usize;
            p.n_batch = c.n_batch as usize;
            p.n_threads = c.n_threads as usize;
            p.kv_type = match c.kv_type {
                0 => KvType::F16,
                1 => KvType::F32,
                2 => KvType::Q8_0,
                k => return fail(TS_ERR_INVALID_ARG, format!("kv_type {k} (0 f16, 1 f32, 2 q8_0)")),
            };
            p.mlock = match c.mlock {
                0 => LockMode::Off,
                1 => LockMode::Try,
                2 => LockMode::Required,
                k => return fail(TS_ERR_INVALID_ARG, format!("mlock {k} (0 off, 1 try, 2 required)")),
            };
            p.ram_budget = (c.ram_budget != 0).then_some(c.ram_budget);
            if c.n_cpus > 0 {
                if c.cpus.is_null() || c.n_cpus > 4096 {
                    return fail(TS_ERR_INVALID_ARG, "cpus is NULL or n_cpus > 4096");
                }
                // SAFETY: non-NULL and readable for n_cpus entries by contract.
                let cpus = unsafe { std::slice::from_raw_parts(c.cpus, c.n_cpus as usize) };
                if let Some(&bad) = cpus.iter().find(|&&x| x < 0) {
                    return fail(TS_ERR_INVALID_ARG, format!("cpu {bad}"));
                }
                p.cpus = cpus.iter().map(|&x| x as usize).collect();
            }
            p.rt_priority = c.rt_priority;
        }
        match Session::new(Arc::clone(&m.model), p) {
            Ok(session) => {
                let cancel = session.cancel_flag();
                let n_vocab = m.model.tokenizer().n_vocab();
                let max_piece = m.model.tokenizer().max_piece_len();
                let h = ts_session {
                    inner: UnsafeCell::new(SessionInner {
                        session,
                        logits: vec![0.0; n_vocab],
                        decoder: StreamDecoder::new(),
                        piece: Vec::with_capacity(max_piece + 8),
                    }),
                    cancel,
                };
                for w in inner_warnings(&h) {
                    log(2, w);
                }
                // SAFETY: as above.
                unsafe { *out = Box::into_raw(Box::new(h)) };
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// Frees a session (NULL: no-op). Not while another call on it runs.
#[no_mangle]
pub extern "C" fn ts_session_free(s: *mut ts_session) {
    if !s.is_null() {
        // SAFETY: created by ts_session_create, not freed before, no call in flight (contract).
        drop(unsafe { Box::from_raw(s) });
    }
}

fn inner<'a>(s: *mut ts_session) -> Option<&'a mut SessionInner> {
    // SAFETY: a non-NULL handle is a live session used by one thread at a time (contract); only
    // `cancel` is touched concurrently, and it lives outside the UnsafeCell.
    unsafe { s.as_ref().map(|h| &mut *h.inner.get()) }
}

/// Raises the session's cancel flag: the running (or next) prefill/decode/generate returns
/// `TS_ERR_CANCELLED` at the next layer boundary. Any thread; async-signal-safe. The flag stays
/// raised until `ts_session_reset`.
#[no_mangle]
pub extern "C" fn ts_session_cancel(s: *const ts_session) -> ts_status {
    // SAFETY: a non-NULL handle is live; `cancel` is immutable after creation.
    match unsafe { s.as_ref() } {
        Some(h) => {
            h.cancel.store(true, Ordering::SeqCst);
            TS_OK
        }
        None => TS_ERR_INVALID_ARG,
    }
}

/// Forgets the conversation and clears the cancel flag.
#[no_mangle]
pub extern "C" fn ts_session_reset(s: *mut ts_session) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        i.session.reset();
        i.decoder = StreamDecoder::new();
        TS_OK
    })
}

/// Bytes `ts_session_state_save` needs for the current conversation (`*size`).
#[no_mangle]
pub extern "C" fn ts_session_state_size(s: *mut ts_session, size: *mut usize) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        if size.is_null() {
            return fail(TS_ERR_INVALID_ARG, "size is NULL");
        }
        // SAFETY: non-NULL, writable by contract.
        unsafe { *size = i.session.state_size() };
        TS_OK
    })
}

/// Saves the conversation (cached positions and last logits) into `buf` (capacity `cap`);
/// `*written` receives the size (the needed size with `TS_ERR_BUFFER_TOO_SMALL`). No allocation.
#[no_mangle]
pub extern "C" fn ts_session_state_save(
    s: *mut ts_session,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        if written.is_null() || (buf.is_null() && cap > 0) {
            return fail(TS_ERR_INVALID_ARG, "written is NULL, or buf is NULL with cap > 0");
        }
        let need = i.session.state_size();
        // SAFETY: non-NULL, writable by contract.
        unsafe { *written = need };
        if cap < need {
            return fail(
                TS_ERR_BUFFER_TOO_SMALL,
                format!("the state needs {need} bytes, the buffer holds {cap}"),
            );
        }
        // SAFETY: writable for cap >= need bytes by contract.
        let out = unsafe { std::slice::from_raw_parts_mut(buf, need) };
        match i.session.save_state(out) {
            Ok(_) => TS_OK,
            Err(e) => from_err(e),
        }
    })
}

/// Restores a state saved by `ts_session_state_save` (same model and KV type; the context must
/// hold it). On error the session is unchanged. No allocation.
#[no_mangle]
pub extern "C" fn ts_session_state_load(s: *mut ts_session, buf: *const u8, len: usize) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        if buf.is_null() || len == 0 {
            return fail(TS_ERR_INVALID_ARG, "buf is NULL or len is 0");
        }
        // SAFETY: readable for len bytes by contract.
        let data = unsafe { std::slice::from_raw_parts(buf, len) };
        match i.session.load_state(data) {
            Ok(()) => {
                i.logits.copy_from_slice(i.session.logits());
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// A metadata value of the model as text (strings as they are, numbers and booleans formatted,
/// arrays as their length in brackets), into `buf` (capacity `cap`, NUL-terminated);
/// `*len` receives the length without the NUL. `TS_ERR_INVALID_ARG` for a missing key.
#[no_mangle]
pub extern "C" fn ts_model_meta(
    m: *const ts_model,
    key: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if key.is_null() || len.is_null() || (buf.is_null() && cap > 0) {
            return fail(TS_ERR_INVALID_ARG, "key or len is NULL, or buf is NULL with cap > 0");
        }
        // SAFETY: NUL-terminated by contract.
        let Ok(key) = (unsafe { CStr::from_ptr(key) }).to_str() else {
            return fail(TS_ERR_INVALID_ARG, "key is not UTF-8");
        };
        use std::io::Write;
        use tensorsharp_models::MetaValue as V;
        // Numbers are formatted into a stack buffer: the query allocates nothing.
        let mut num = [0u8; 64];
        let mut w = &mut num[..];
        let text: &[u8] = match m.model.file().get(key) {
            None => return fail(TS_ERR_INVALID_ARG, format!("no metadata key {key:?}")),
            Some(V::String(s)) => s.as_bytes(),
            Some(v) => {
                let _ = match v {
                    V::U8(x) => write!(w, "{x}"),
                    V::I8(x) => write!(w, "{x}"),
                    V::U16(x) => write!(w, "{x}"),
                    V::I16(x) => write!(w, "{x}"),
                    V::U32(x) => write!(w, "{x}"),
                    V::I32(x) => write!(w, "{x}"),
                    V::U64(x) => write!(w, "{x}"),
                    V::I64(x) => write!(w, "{x}"),
                    V::F32(x) => write!(w, "{x}"),
                    V::F64(x) => write!(w, "{x}"),
                    V::Bool(x) => write!(w, "{x}"),
                    V::Array(a) => write!(w, "[{}]", a.len()),
                    V::String(_) => Ok(()),
                };
                let n = 64 - w.len();
                &num[..n]
            }
        };
        // SAFETY: non-NULL by the check above.
        unsafe { *len = text.len() };
        if text.len() + 1 > cap {
            return fail(
                TS_ERR_BUFFER_TOO_SMALL,
                format!("{} bytes (plus NUL) do not fit in {cap}", text.len()),
            );
        }
        // SAFETY: cap >= len + 1 bytes writable.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        TS_OK
    })
}

/// Tokens in the session's cache (0 for NULL).
#[no_mangle]
pub extern "C" fn ts_session_n_past(s: *mut ts_session) -> u32 {
    inner(s).map_or(0, |i| i.session.n_past() as u32)
}

fn tokens_in<'a>(t: *const i32, n: usize, n_vocab: usize) -> Result<&'a [u32], ts_status> {
    if t.is_null() || n == 0 {
        return Err(fail(TS_ERR_INVALID_ARG, "tokens is NULL or n is 0"));
    }
    // SAFETY: readable for n tokens by contract; i32 and u32 share layout.
    let s = unsafe { std::slice::from_raw_parts(t.cast::<u32>(), n) };
    if let Some(&bad) = s.iter().find(|&&x| x as usize >= n_vocab) {
        return Err(fail(
            TS_ERR_INVALID_ARG,
            format!("token {} is outside the vocabulary of {n_vocab}", bad as i32),
        ));
    }
    Ok(s)
}

/// Processes `n` prompt tokens after what the session holds. No allocation.
#[no_mangle]
pub extern "C" fn ts_session_prefill(s: *mut ts_session, tokens: *const i32, n: usize) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        let nv = i.logits.len();
        let toks = match tokens_in(tokens, n, nv) {
            Ok(t) => t,
            Err(st) => return st,
        };
        match i.session.prefill(toks) {
            Ok(l) => {
                i.logits.copy_from_slice(l);
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// One step of the firmware loop: samples the next token from the current logits with
/// `sampler`, writes it to `*token`, and (unless it ends generation) runs it through the model
/// so the next step is ready. No allocation.
#[no_mangle]
pub extern "C" fn ts_session_decode_step(s: *mut ts_session, sampler: *mut ts_sampler, token: *mut i32) -> ts_status {
    guard(|| {
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        // SAFETY: a non-NULL sampler handle is live and used by this thread only (contract).
        let Some(sm) = (unsafe { sampler.as_mut() }) else {
            return fail(TS_ERR_INVALID_ARG, "sampler is NULL");
        };
        if token.is_null() {
            return fail(TS_ERR_INVALID_ARG, "token is NULL");
        }
        if i.session.n_past() == 0 {
            return fail(TS_ERR_INVALID_ARG, "nothing to continue: call ts_session_prefill first");
        }
        if sm.sampler_vocab() != i.logits.len() {
            return fail(
                TS_ERR_INVALID_ARG,
                "the sampler was created for another vocabulary size",
            );
        }
        let next = sm.sampler.sample(&mut i.logits);
        sm.sampler.accept(next);
        // SAFETY: non-NULL by the check above.
        unsafe { *token = next as i32 };
        if i.session.model().tokenizer().is_eog(next) {
            return TS_OK;
        }
        match i.session.decode(next) {
            Ok(l) => {
                i.logits.copy_from_slice(l);
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

impl ts_sampler {
    fn sampler_vocab(&self) -> usize {
        self.sampler.n_vocab()
    }
}

/// Prefills `prompt` and generates up to `max_tokens` tokens, calling `cb` with each token and
/// its complete UTF-8 text (a character split over tokens arrives with the token that completes
/// it; `len` may be 0). Stops at end-of-generation, `max_tokens`, a non-zero callback return,
/// a full context (`TS_ERR_CONTEXT_FULL`) or a cancel (`TS_ERR_CANCELLED`). `*n_generated`
/// (may be NULL) receives the count. No allocation.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn ts_session_generate(
    s: *mut ts_session,
    sampler: *mut ts_sampler,
    prompt: *const i32,
    n_prompt: usize,
    max_tokens: usize,
    cb: ts_token_cb,
    user: *mut c_void,
    n_generated: *mut usize,
) -> ts_status {
    guard(|| {
        if !n_generated.is_null() {
            // SAFETY: writable by contract.
            unsafe { *n_generated = 0 };
        }
        let st = ts_session_prefill(s, prompt, n_prompt);
        if st != TS_OK {
            return st;
        }
        let Some(i) = inner(s) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        i.decoder = StreamDecoder::new();
        let model = Arc::clone(i.session.model());
        let tok_model = model.tokenizer();
        let mut count = 0usize;
        while count < max_tokens {
            let mut tok = 0i32;
            let st = ts_session_decode_step(s, sampler, &mut tok);
            let Some(i) = inner(s) else { return TS_ERR_INVALID_ARG };
            if st != TS_OK && !(st == TS_ERR_CONTEXT_FULL || st == TS_ERR_CANCELLED) {
                return st;
            }
            if tok_model.is_eog(tok as u32) {
                break;
            }
            count += 1;
            if !n_generated.is_null() {
                // SAFETY: writable by contract.
                unsafe { *n_generated = count };
            }
            i.piece.clear();
            let piece = &mut i.piece;
            i.decoder.push(tok_model.piece(tok as u32, false), &mut |t: &str| {
                piece.extend_from_slice(t.as_bytes())
            });
            if let Some(f) = cb {
                // SAFETY: the callback and user pointer are the caller's; the piece buffer is
                // valid for the call.
                let stop = unsafe { f(user, tok, i.piece.as_ptr().cast(), i.piece.len()) };
                if stop != 0 {
                    break;
                }
            }
            if st != TS_OK {
                return st;
            }
        }
        TS_OK
    })
}

/// Creates a sampler for `model`'s vocabulary. `params` may be NULL (greedy). Allocates.
#[no_mangle]
pub extern "C" fn ts_sampler_create(
    m: *const ts_model,
    params: *const ts_sampler_params,
    out: *mut *mut ts_sampler,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if out.is_null() {
            return fail(TS_ERR_INVALID_ARG, "out is NULL");
        }
        // SAFETY: writable by contract.
        unsafe { *out = std::ptr::null_mut() };
        let mut p = SamplerParams::greedy();
        if !params.is_null() {
            check_size!(params, ts_sampler_params);
            // SAFETY: non-NULL and of the right size.
            let c = unsafe { *params };
            p = SamplerParams {
                temperature: c.temperature,
                top_k: c.top_k as usize,
                top_p: c.top_p,
                min_p: c.min_p,
                repeat_penalty: c.repeat_penalty,
                presence_penalty: c.presence_penalty,
                frequency_penalty: c.frequency_penalty,
                penalty_last_n: c.penalty_last_n as usize,
                seed: c.seed,
            };
        }
        match Sampler::new(p, m.model.tokenizer().n_vocab()) {
            Ok(sampler) => {
                // SAFETY: as above.
                unsafe { *out = Box::into_raw(Box::new(ts_sampler { sampler })) };
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// Frees a sampler (NULL: no-op).
#[no_mangle]
pub extern "C" fn ts_sampler_free(s: *mut ts_sampler) {
    if !s.is_null() {
        // SAFETY: created by ts_sampler_create and not freed before (contract).
        drop(unsafe { Box::from_raw(s) });
    }
}

/// Clears the sampler's penalty history and reseeds it.
#[no_mangle]
pub extern "C" fn ts_sampler_reset(s: *mut ts_sampler) -> ts_status {
    // SAFETY: a non-NULL handle is live and used by one thread (contract).
    match unsafe { s.as_mut() } {
        Some(s) => {
            s.sampler.reset();
            TS_OK
        }
        None => fail(TS_ERR_INVALID_ARG, "sampler is NULL"),
    }
}
