//! Chat and prompt caching: a conversation rendered through the model's chat template, the
//! session's prefix reuse, and session states kept in files (prompt caches).

use std::ffi::c_char;

use tensorsharp_runtime::prompt_cache::{self, CacheLoad};
use tensorsharp_runtime::{ChatTemplate, Conversation};

use crate::guard::guard;
use crate::model::{model_ref, ts_model};
use crate::session::{inner, ts_session};
use crate::status::{c_str, fail, from_err, ts_status, TS_ERR_BUFFER_TOO_SMALL, TS_ERR_INVALID_ARG, TS_ERR_IO, TS_OK};

/// Renders a conversation — JSON `{"messages": [...], "tools": [...], "add_generation_prompt":
/// true}` — through a chat template into `buf` (capacity `cap`, not NUL-terminated); `*len`
/// receives the byte count (the needed size with `TS_ERR_BUFFER_TOO_SMALL`). `template_name` is
/// NULL for the model's own template (or the built-in for its architecture when it has none),
/// a built-in name (`chatml`, `llama3`, `gemma`, `phi3`) or a Jinja template file. A malformed
/// conversation or a template that fails gives `TS_ERR_INVALID_ARG`, `ts_last_error` naming
/// the template line. Tokenize the result with `parse_special` set (and `add_special` unless
/// the text starts with the BOS token's text). Allocates.
///
/// Contract: `m` is a live model; `conversation_json` NUL-terminated UTF-8; `template_name`
/// NULL or NUL-terminated UTF-8; `buf` writable for `cap` bytes (NULL when 0); `len` writable.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn ts_chat_apply_template(
    m: *const ts_model,
    conversation_json: *const c_char,
    template_name: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> ts_status {
    guard(|| {
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if len.is_null() || (buf.is_null() && cap > 0) {
            return fail(TS_ERR_INVALID_ARG, "len is NULL, or buf is NULL with cap > 0");
        }
        let json = match c_str(conversation_json, "conversation_json") {
            Ok(s) => s,
            Err(st) => return st,
        };
        let choice = if template_name.is_null() {
            None
        } else {
            match c_str(template_name, "template_name") {
                Ok(s) => Some(s),
                Err(st) => return st,
            }
        };
        let text =
            match Conversation::from_json(json).and_then(|c| ChatTemplate::for_model(&m.model, choice)?.render(&c)) {
                Ok(t) => t,
                Err(e) => return from_err(e),
            };
        // SAFETY: non-NULL by the check above.
        unsafe { *len = text.len() };
        if text.len() > cap {
            return fail(
                TS_ERR_BUFFER_TOO_SMALL,
                format!("the prompt needs {} bytes, the buffer holds {cap}", text.len()),
            );
        }
        // SAFETY: buf writable for cap >= text.len() bytes by contract.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len()) };
        TS_OK
    })
}

/// Prompt reuse: keeps the longest prefix of what the session holds that equals the start of
/// `tokens` (short of its last token, so at least one is left to prefill) and drops the rest;
/// `*kept` receives its length. Prefill or generate from `tokens + *kept` next: a chat's next
/// turn processes only the new turn. No allocation.
///
/// Contract: `s` is a live session used by no other thread meanwhile; `tokens` readable for `n`
/// ids; `kept` writable.
#[no_mangle]
pub extern "C" fn ts_session_keep_prefix(
    s: *mut ts_session,
    tokens: *const i32,
    n: usize,
    kept: *mut usize,
) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        if tokens.is_null() || n == 0 || kept.is_null() {
            return fail(TS_ERR_INVALID_ARG, "tokens or kept is NULL, or n is 0");
        }
        // SAFETY: readable for n tokens by contract; i32 and u32 share layout.
        let toks = unsafe { std::slice::from_raw_parts(tokens.cast::<u32>(), n) };
        let k = held.session.keep_common_prefix(toks);
        // SAFETY: non-NULL, writable by contract.
        unsafe { *kept = k };
        TS_OK
    })
}

/// Writes the session's state (as `ts_session_state_save`) to the file `path` atomically: a
/// temporary file in the same directory, synced, renamed over `path`; a crash never leaves a
/// partial file. Allocates (the state's size, temporarily).
///
/// Contract: `s` is a live session used by no other thread meanwhile; `path` NUL-terminated
/// UTF-8.
#[no_mangle]
pub extern "C" fn ts_session_state_save_file(s: *mut ts_session, path: *const c_char) -> ts_status {
    guard(|| {
        let held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let path = match c_str(path, "path") {
            Ok(p) => p,
            Err(st) => return st,
        };
        match prompt_cache::save(&held.session, std::path::Path::new(path)) {
            Ok(()) => TS_OK,
            Err(e) => from_err(e),
        }
    })
}

/// Loads a state file written by `ts_session_state_save_file`; `*n_positions` (may be NULL)
/// receives the positions restored. `TS_ERR_IO` when the file is missing or unreadable;
/// `TS_ERR_INVALID_ARG` for a file of another model or session shape, or a damaged or
/// truncated one (`ts_last_error` says which: a prompt cache in the second case is rebuilt by
/// saving again). On error the session is unchanged. Allocates (the file's size, temporarily).
///
/// Contract: `s` is a live session used by no other thread meanwhile; `path` NUL-terminated
/// UTF-8; `n_positions` NULL or writable.
#[no_mangle]
pub extern "C" fn ts_session_state_load_file(
    s: *mut ts_session,
    path: *const c_char,
    n_positions: *mut usize,
) -> ts_status {
    guard(|| {
        let mut held = match inner(s) {
            Ok(i) => i,
            Err(st) => return st,
        };
        let i = &mut *held;
        let path = match c_str(path, "path") {
            Ok(p) => p,
            Err(st) => return st,
        };
        match prompt_cache::load(&mut i.session, std::path::Path::new(path)) {
            Ok(CacheLoad::Loaded { positions }) => {
                i.logits.copy_from_slice(i.session.logits());
                if !n_positions.is_null() {
                    // SAFETY: writable by contract.
                    unsafe { *n_positions = positions };
                }
                TS_OK
            }
            Ok(CacheLoad::Missing) => fail(TS_ERR_IO, format!("{path}: no such file")),
            Ok(CacheLoad::Ignored { reason }) => {
                fail(TS_ERR_INVALID_ARG, format!("{path}: corrupt session state: {reason}"))
            }
            Err(e) => from_err(e),
        }
    })
}

/// Constrains a sampler's picks (structured output): `kind` 1 = a JSON Schema (the output is
/// JSON that validates), 2 = a grammar (llama.cpp's GBNF, or Lark); `text` the schema or
/// grammar; kind 0 (text NULL) lifts the constraint. A schema or grammar that does not compile
/// gives `TS_ERR_INVALID_ARG` with the reason in `ts_last_error` (the sampler is unchanged).
/// `ts_sampler_reset` starts the constraint over. Constrained steps allocate; unconstrained
/// sampling does not. Allocates.
///
/// Contract: `sampler` is a live sampler used by no other thread meanwhile; `m` the live model
/// it samples for; `text` NUL-terminated UTF-8 (or NULL with kind 0).
#[no_mangle]
pub extern "C" fn ts_sampler_set_constraint(
    sampler: *mut crate::sampler::ts_sampler,
    m: *const ts_model,
    kind: std::ffi::c_int,
    text: *const c_char,
) -> ts_status {
    guard(|| {
        let mut held = match crate::sampler::sampler_inner(sampler) {
            Ok(s) => s,
            Err(st) => return st,
        };
        if kind == 0 {
            held.set_constraint(None);
            return TS_OK;
        }
        let Some(m) = model_ref(m) else {
            return fail(TS_ERR_INVALID_ARG, "model is NULL");
        };
        if m.model.tokenizer().n_vocab() != held.n_vocab() {
            return fail(
                TS_ERR_INVALID_ARG,
                "the sampler was created for another vocabulary size",
            );
        }
        let text = match c_str(text, "text") {
            Ok(t) => t,
            Err(st) => return st,
        };
        let built = tensorsharp_runtime::structured::ConstraintFactory::new(&m.model).and_then(|f| match kind {
            1 => f.json_schema(text),
            2 => f.grammar(text),
            _ => Err(tensorsharp_runtime::RuntimeError::InvalidParameter {
                name: "kind",
                problem: format!("{kind}: expected 0 (none), 1 (JSON schema) or 2 (grammar)"),
            }),
        });
        match built {
            Ok(c) => {
                held.set_constraint(Some(c));
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}
