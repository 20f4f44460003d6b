//! `ts_session_generate`: the runtime's generation loop ([`Generator`](tensorsharp_runtime::Generator))
//! behind the C token callback.

use std::ffi::{c_char, c_int, c_void};

use tensorsharp_runtime::{Flow, StopReason};

use crate::guard::guard;
use crate::sampler::ts_sampler;
use crate::session::{session_and_sampler, ts_session};
use crate::status::{fail, from_err, ts_status, TS_ERR_CANCELLED, TS_ERR_CONTEXT_FULL, TS_ERR_INVALID_ARG, TS_OK};

/// Token callback of `ts_session_generate`: non-zero stops.
pub type ts_token_cb =
    Option<unsafe extern "C" fn(user: *mut c_void, token: i32, piece: *const c_char, len: usize) -> c_int>;

/// Prefills `prompt` and generates up to `max_tokens` tokens, calling `cb` with each token and
/// the complete UTF-8 text it made final (a character split over tokens arrives with the token
/// that completes it; `len` may be 0; an incomplete character at the very end is not
/// delivered). Stops at end-of-generation (not delivered), `max_tokens`, a non-zero callback
/// return (`TS_OK`), a full context (`TS_ERR_CONTEXT_FULL`, after delivering the last token) or
/// a cancel (`TS_ERR_CANCELLED`). `*n_generated` (may be NULL) receives the count as it grows.
/// The prompt's tokens count for the sampler's penalties. No allocation.
///
/// Contract: `s` is a live session and `sampler` a live sampler of the same model, both used
/// by no other thread meanwhile (except `ts_session_cancel`); `prompt` readable for `n_prompt`
/// ids; `cb` NULL or callable with `user` (it must not call into this session); `n_generated`
/// NULL or writable.
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
        // SAFETY: a non-NULL handle is live (contract); `cancel` is immutable after creation.
        let Some(cancel) = (unsafe { s.as_ref() }).map(|h| std::sync::Arc::clone(&h.cancel)) else {
            return fail(TS_ERR_INVALID_ARG, "session is NULL");
        };
        let (mut held, mut sm) = match session_and_sampler(s, sampler) {
            Ok(both) => both,
            Err(st) => return st,
        };
        let i = &mut *held;
        if prompt.is_null() || n_prompt == 0 {
            return fail(TS_ERR_INVALID_ARG, "tokens is NULL or n is 0");
        }
        // SAFETY: readable for n_prompt tokens by contract; i32 and u32 share layout.
        let prompt = unsafe { std::slice::from_raw_parts(prompt.cast::<u32>(), n_prompt) };
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= i.logits.len()) {
            return fail(
                TS_ERR_INVALID_ARG,
                format!("token {} is outside the vocabulary of {}", bad as i32, i.logits.len()),
            );
        }
        let mut count = 0usize;
        let on_token = |token: Option<u32>, text: &str| {
            let Some(token) = token else {
                return Flow::Continue;
            };
            count += 1;
            if !n_generated.is_null() {
                // SAFETY: writable by contract.
                unsafe { *n_generated = count };
            }
            match cb {
                // SAFETY: the callback and user pointer are the caller's; the text is valid
                // for the call.
                Some(f) if unsafe { f(user, token as i32, text.as_ptr().cast(), text.len()) } != 0 => Flow::Stop,
                _ => Flow::Continue,
            }
        };
        let run = i
            .generator
            .run_tokens(&mut i.session, &mut sm, prompt, max_tokens, &[], &cancel, on_token);
        // The step-wise calls continue from the last logits the model produced.
        i.logits.copy_from_slice(i.session.logits());
        match run {
            Ok(st) => match st.reason {
                StopReason::ContextFull => fail(
                    TS_ERR_CONTEXT_FULL,
                    format!("context full after {} generated tokens", st.n_generated),
                ),
                StopReason::Cancelled => fail(TS_ERR_CANCELLED, "cancelled"),
                _ => TS_OK,
            },
            Err(e) => from_err(e),
        }
    })
}
