//! The model handle: load, free, properties, metadata, tokenizer.

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use tensorsharp_runtime::Model;

use crate::guard::{guard, guard_or, guard_unit};
use crate::params::{ts_model_params, weights_mode};
use crate::status::{c_str, fail, from_err, ts_status, TS_ERR_BUFFER_TOO_SMALL, TS_ERR_INVALID_ARG, TS_OK};

/// Opaque model handle: read-only after load, shareable between threads.
pub struct ts_model {
    pub(crate) model: Arc<Model>,
}

/// The model behind a handle, `None` for NULL.
pub(crate) fn model_ref<'a>(m: *const ts_model) -> Option<&'a ts_model> {
    // SAFETY: a non-NULL handle is a live ts_model by contract.
    unsafe { m.as_ref() }
}

/// Loads a GGUF model. Allocates.
///
/// Contract: `path` is a NUL-terminated UTF-8 path; `params` is NULL (defaults) or a
/// `ts_model_params` filled by `ts_model_params_default`; `out` is writable. On success `*out`
/// owns the model (free it with `ts_model_free`); on error `*out` is NULL.
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
        let mode = match weights_mode(params) {
            Ok(m) => m,
            Err(st) => return st,
        };
        let path = match c_str(path, "path") {
            Ok(p) => p,
            Err(st) => return st,
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
///
/// Contract: `m` came from `ts_model_load` and is not used or freed again.
#[no_mangle]
pub extern "C" fn ts_model_free(m: *mut ts_model) {
    guard_unit(|| {
        if !m.is_null() {
            // SAFETY: created by ts_model_load and not freed before (contract).
            drop(unsafe { Box::from_raw(m) });
        }
    })
}

/// Vocabulary size (0 for NULL).
///
/// Contract: `m` is NULL or a live model. Thread-safe.
#[no_mangle]
pub extern "C" fn ts_model_n_vocab(m: *const ts_model) -> u32 {
    guard_or(0, || model_ref(m).map_or(0, |m| m.model.tokenizer().n_vocab() as u32))
}

/// Training context length (0 for NULL).
///
/// Contract: `m` is NULL or a live model. Thread-safe.
#[no_mangle]
pub extern "C" fn ts_model_n_ctx_train(m: *const ts_model) -> u32 {
    guard_or(0, || model_ref(m).map_or(0, |m| m.model.spec().n_ctx_train as u32))
}

/// Whether `token` ends generation (EOS, EOT, `<|im_end|>`, ...); 0 for NULL.
///
/// Contract: `m` is NULL or a live model. Thread-safe.
#[no_mangle]
pub extern "C" fn ts_model_token_is_eog(m: *const ts_model, token: i32) -> c_int {
    guard_or(0, || {
        model_ref(m).map_or(0, |m| {
            c_int::from(token >= 0 && m.model.tokenizer().is_eog(token as u32))
        })
    })
}

/// A metadata value of the model as text (strings as they are, numbers and booleans formatted,
/// arrays as their length in brackets), NUL-terminated into `buf`; `*len` receives the length
/// without the NUL. `TS_ERR_INVALID_ARG` for a missing key, `TS_ERR_BUFFER_TOO_SMALL` when
/// `len + 1 > cap`. No allocation.
///
/// Contract: `m` is a live model; `key` NUL-terminated; `buf` writable for `cap` bytes (NULL
/// when `cap` is 0); `len` writable. Thread-safe.
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
        let key = match c_str(key, "key") {
            Ok(k) => k,
            Err(st) => return st,
        };
        use std::io::Write;
        use tensorsharp_models::MetaValue as V;
        // Numbers are formatted into a stack buffer: the query allocates nothing. 64 bytes hold
        // every formatted number, so a write cannot come up short.
        let mut num = [0u8; 64];
        let mut w = &mut num[..];
        let text: &[u8] = match m.model.file().get(key) {
            None => return fail(TS_ERR_INVALID_ARG, format!("no metadata key {key:?}")),
            Some(V::String(s)) => s.as_bytes(),
            Some(v) => {
                let written = match v {
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
                if written.is_err() {
                    return fail(
                        TS_ERR_INVALID_ARG,
                        format!("metadata key {key:?}: the value does not format"),
                    );
                }
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

/// Tokenizes `len` bytes of UTF-8 `text` into `tokens` (capacity `cap`). `*n_tokens` receives
/// the count; `TS_ERR_BUFFER_TOO_SMALL` when it exceeds `cap` (nothing useful written).
/// Allocates (a temporary token list).
///
/// Contract: `m` is a live model; `text` readable for `len` bytes (NULL when 0); `tokens`
/// writable for `cap` ids (NULL when 0); `n_tokens` writable. Thread-safe.
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
/// the byte count; `TS_ERR_BUFFER_TOO_SMALL` when it exceeds `cap`. No allocation.
///
/// Contract: `m` is a live model; `tokens` readable for `n` ids (NULL when 0); `buf` writable
/// for `cap` bytes (NULL when 0); `len` writable. Thread-safe.
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
