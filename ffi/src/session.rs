//! The session handle: create, free, reset, cancel, state, and the step-wise calls (prefill and
//! one decode step) of a firmware loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tensorsharp_runtime::{Generator, Sampler, Session};

use crate::exclusive::{Exclusive, ExclusiveGuard};
use crate::guard::{guard, guard_or, guard_unit};
use crate::model::{model_ref, ts_model};
use crate::params::{session_params, ts_session_params};
use crate::sampler::{sampler_inner, ts_sampler};
use crate::status::{
    fail, from_err, log, set_error, ts_status, LOG_WARN, TS_ERR_BUFFER_TOO_SMALL, TS_ERR_INVALID_ARG, TS_OK,
};

/// Opaque session handle: one call at a time (except `ts_session_cancel`); a call while another
/// runs returns `TS_ERR_BUSY`.
pub struct ts_session {
    pub(crate) inner: Exclusive<SessionInner>,
    /// The session's cancel flag, shared so `ts_session_cancel` never touches `inner`.
    pub(crate) cancel: Arc<AtomicBool>,
}

/// What a session handle owns.
pub(crate) struct SessionInner {
    pub(crate) session: Session,
    /// The logits the next `ts_session_decode_step` samples from (sampling modifies them).
    pub(crate) logits: Vec<f32>,
    /// The generation loop of `ts_session_generate`, its buffers reserved at creation.
    pub(crate) generator: Generator,
}

/// The inside of a session handle for the calling function: `TS_ERR_INVALID_ARG` for NULL,
/// `TS_ERR_BUSY` while a call on another thread holds it (each with a last-error message).
pub(crate) fn inner<'a>(s: *mut ts_session) -> Result<ExclusiveGuard<'a, SessionInner>, ts_status> {
    // SAFETY: a non-NULL handle is a live session (contract); its inside is reached only through
    // the exclusive guard, `cancel` is atomic.
    match unsafe { s.as_ref() } {
        Some(h) => h.inner.take("session"),
        None => Err(fail(TS_ERR_INVALID_ARG, "session is NULL")),
    }
}

/// A session and a sampler for one call: both held (else `TS_ERR_INVALID_ARG` for NULL,
/// `TS_ERR_BUSY` while another call holds either), the sampler made for the session's vocabulary.
pub(crate) fn session_and_sampler<'a>(
    s: *mut ts_session,
    sampler: *mut ts_sampler,
) -> Result<(ExclusiveGuard<'a, SessionInner>, ExclusiveGuard<'a, Sampler>), ts_status> {
    let held = inner(s)?;
    let sm = sampler_inner(sampler)?;
    if sm.n_vocab() != held.logits.len() {
        return Err(fail(
            TS_ERR_INVALID_ARG,
            "the sampler was created for another vocabulary size",
        ));
    }
    Ok((held, sm))
}

/// Creates a session (KV cache and buffers, planned and checked against the budget) over a
/// model. Allocates (the only allocation of the session's life).
///
/// Contract: `m` is a live model; `params` NULL (defaults) or filled by
/// `ts_session_params_default`, its `cpus` readable for `n_cpus` entries; `out` writable. On
/// success `*out` owns the session (free it with `ts_session_free`); on error `*out` is NULL.
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
        let p = match session_params(params) {
            Ok(p) => p,
            Err(st) => return st,
        };
        match Session::new(Arc::clone(&m.model), p) {
            Ok(session) => {
                for w in session.warnings() {
                    log(LOG_WARN, w);
                }
                let h = ts_session {
                    cancel: session.cancel_flag(),
                    inner: Exclusive::new(SessionInner {
                        logits: vec![0.0; m.model.tokenizer().n_vocab()],
                        generator: Generator::new(&session, 0),
                        session,
                    }),
                };
                // SAFETY: as above.
                unsafe { *out = Box::into_raw(Box::new(h)) };
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// Frees a session (NULL: no-op).
///
/// Contract: `s` came from `ts_session_create`, no call on it is in flight, and it is not used
/// or freed again. A free while a call on another thread runs is refused (logged, the session
/// stays alive) rather than pulling the memory from under that call.
#[no_mangle]
pub extern "C" fn ts_session_free(s: *mut ts_session) {
    guard_unit(|| {
        // SAFETY: a non-NULL handle is live (contract).
        if let Some(h) = unsafe { s.as_ref() } {
            if h.inner.is_busy() {
                set_error("ts_session_free: the session is in use by a call on another thread; not freed");
                return;
            }
            // SAFETY: created by ts_session_create, not freed before, no call in flight.
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

/// Raises the session's cancel flag: the running (or next) prefill/decode/generate returns
/// `TS_ERR_CANCELLED` at the next layer boundary. The flag stays raised until
/// `ts_session_reset`.
///
/// Contract: `s` is NULL or a live session. Any thread, while another call on the session runs;
/// async-signal-safe (an atomic store, nothing else; no last-error message).
#[no_mangle]
pub extern "C" fn ts_session_cancel(s: *const ts_session) -> ts_status {
    guard_or(TS_ERR_INVALID_ARG, || {
        // SAFETY: a non-NULL handle is live; `cancel` is immutable after creation.
        match unsafe { s.as_ref() } {
            Some(h) => {
                h.cancel.store(true, Ordering::SeqCst);
                TS_OK
            }
            None => TS_ERR_INVALID_ARG,
        }
    })
}

/// Forgets the conversation and clears the cancel flag.
///
/// Contract: `s` is a live session used by no other thread meanwhile.
#[no_mangle]
pub extern "C" fn ts_session_reset(s: *mut ts_session) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
        i.session.reset();
        TS_OK
    })
}

/// Tokens in the session's cache (0 for NULL).
///
/// Contract: `s` is NULL or a live session used by no other thread meanwhile.
#[no_mangle]
pub extern "C" fn ts_session_n_past(s: *mut ts_session) -> u32 {
    guard_or(0, || inner(s).map_or(0, |i| i.session.n_past() as u32))
}

/// Bytes `ts_session_state_save` needs for the current conversation (`*size`).
///
/// Contract: `s` is a live session used by no other thread meanwhile; `size` writable.
#[no_mangle]
pub extern "C" fn ts_session_state_size(s: *mut ts_session, size: *mut usize) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
        if size.is_null() {
            return fail(TS_ERR_INVALID_ARG, "size is NULL");
        }
        // SAFETY: non-NULL, writable by contract.
        unsafe { *size = i.session.state_size() };
        TS_OK
    })
}

/// Saves the conversation (cached positions and last logits, in a checksummed format bound to
/// the model and the session's shape) into `buf`; `*written` receives the size (the needed
/// size with `TS_ERR_BUFFER_TOO_SMALL`). No allocation.
///
/// Contract: `s` is a live session used by no other thread meanwhile; `buf` writable for `cap`
/// bytes (NULL when 0); `written` writable.
#[no_mangle]
pub extern "C" fn ts_session_state_save(
    s: *mut ts_session,
    buf: *mut u8,
    cap: usize,
    written: *mut usize,
) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
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

/// Restores a state saved by `ts_session_state_save`. A state of another model or session
/// shape (KV type, context size), or a damaged one, gives `TS_ERR_INVALID_ARG` with
/// `ts_last_error` saying which; on error the session is unchanged. No allocation.
///
/// Contract: `s` is a live session used by no other thread meanwhile; `buf` readable for `len`
/// bytes.
#[no_mangle]
pub extern "C" fn ts_session_state_load(s: *mut ts_session, buf: *const u8, len: usize) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
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

/// The `n` tokens at `t`, checked against the vocabulary.
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
///
/// Contract: `s` is a live session used by no other thread meanwhile (except
/// `ts_session_cancel`); `tokens` readable for `n` ids.
#[no_mangle]
pub extern "C" fn ts_session_prefill(s: *mut ts_session, tokens: *const i32, n: usize) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
        let toks = match tokens_in(tokens, n, i.logits.len()) {
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
///
/// Contract: `s` is a live session and `sampler` a live sampler of the same model, both used by
/// no other thread meanwhile (except `ts_session_cancel`); `token` writable.
#[no_mangle]
pub extern "C" fn ts_session_decode_step(s: *mut ts_session, sampler: *mut ts_sampler, token: *mut i32) -> ts_status {
    guard(|| {
        let (mut held, mut sm) = match session_and_sampler(s, sampler) {
            Ok(both) => both,
            Err(st) => return st,
        };
        let i = &mut *held;
        if token.is_null() {
            return fail(TS_ERR_INVALID_ARG, "token is NULL");
        }
        if i.session.n_past() == 0 {
            return fail(TS_ERR_INVALID_ARG, "nothing to continue: call ts_session_prefill first");
        }
        let next = sm.sample(&mut i.logits);
        sm.commit(next);
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
