//! The sampler handle: create, free, reset.

use tensorsharp_runtime::Sampler;

use crate::exclusive::{Exclusive, ExclusiveGuard};
use crate::guard::{guard, guard_unit};
use crate::model::{model_ref, ts_model};
use crate::params::{sampler_params, ts_sampler_params};
use crate::status::{fail, from_err, set_error, ts_status, TS_ERR_INVALID_ARG, TS_OK};

/// Opaque sampler chain handle: one call at a time; a call while another runs returns
/// `TS_ERR_BUSY`.
pub struct ts_sampler {
    pub(crate) sampler: Exclusive<Sampler>,
}

/// The sampler of a handle for the calling function: `TS_ERR_INVALID_ARG` for NULL,
/// `TS_ERR_BUSY` while a call on another thread holds it.
pub(crate) fn sampler_inner<'a>(s: *mut ts_sampler) -> Result<ExclusiveGuard<'a, Sampler>, ts_status> {
    // SAFETY: a non-NULL handle is a live sampler (contract); reached only through the guard.
    match unsafe { s.as_ref() } {
        Some(h) => h.sampler.take("sampler"),
        None => Err(fail(TS_ERR_INVALID_ARG, "sampler is NULL")),
    }
}

/// Creates a sampler for `model`'s vocabulary. Allocates.
///
/// Contract: `m` is a live model; `params` NULL (greedy) or filled by
/// `ts_sampler_params_default`; `out` writable. On success `*out` owns the sampler (free it
/// with `ts_sampler_free`); on error `*out` is NULL.
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
        let p = match sampler_params(params) {
            Ok(p) => p,
            Err(st) => return st,
        };
        match Sampler::new(p, m.model.tokenizer().n_vocab()) {
            Ok(sampler) => {
                // SAFETY: as above.
                unsafe {
                    *out = Box::into_raw(Box::new(ts_sampler {
                        sampler: Exclusive::new(sampler),
                    }))
                };
                TS_OK
            }
            Err(e) => from_err(e),
        }
    })
}

/// Frees a sampler (NULL: no-op).
///
/// Contract: `s` came from `ts_sampler_create`, no call on it is in flight, and it is not used
/// or freed again. A free while a call on another thread uses it is refused (logged).
#[no_mangle]
pub extern "C" fn ts_sampler_free(s: *mut ts_sampler) {
    guard_unit(|| {
        // SAFETY: a non-NULL handle is live (contract).
        if let Some(h) = unsafe { s.as_ref() } {
            if h.sampler.is_busy() {
                set_error("ts_sampler_free: the sampler is in use by a call on another thread; not freed");
                return;
            }
            // SAFETY: created by ts_sampler_create and not freed before, no call in flight.
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

/// Clears the sampler's penalty history and reseeds it.
///
/// Contract: `s` is a live sampler used by no other thread meanwhile.
#[no_mangle]
pub extern "C" fn ts_sampler_reset(s: *mut ts_sampler) -> ts_status {
    guard(|| match sampler_inner(s) {
        Ok(mut sm) => {
            sm.reset();
            TS_OK
        }
        Err(st) => st,
    })
}
