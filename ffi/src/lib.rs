//! TensorSharp C ABI (`libtensorsharp`, `include/tensorsharp.h`).
//!
//! Conventions (llama.h-like): opaque handles with create/free pairs; params structs that start
//! with `struct_size` and are filled by `ts_*_params_default()`; every call returns a
//! [`ts_status`]; the message of the last error of the calling thread is `ts_last_error()`;
//! caller-owned output buffers, with the needed size reported when one is too small. No panic
//! crosses the boundary: every entry point, getters and `*_free` included, runs under
//! `catch_unwind` ([`guard`]) and maps a panic to `TS_ERR_INTERNAL` (or a zero / NULL result).
//! Only the create calls and `ts_tokenize` allocate.
//!
//! One module per object: [`status`] (codes, last error, log callback, versions), [`guard`],
//! [`board`] (the detected board's profile: the defaults of `n_threads = 0` and friends),
//! [`params`] (the params structs and their conversion), [`model`], [`session`], [`sampler`],
//! [`generate`] (the token-callback generation over the runtime's `Generator`), [`chat`] (chat
//! templates, prompt reuse, state files). Each exported
//! function's doc comment states its contract (which pointers must be valid for what, and
//! which calls may run concurrently).
#![allow(non_camel_case_types)]
// C entry points take raw pointers by design: each one checks them for NULL and documents the
// rest of its contract, so they are safe functions to C callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod board;
pub mod chat;
mod exclusive;
pub mod generate;
mod guard;
pub mod model;
pub mod params;
pub mod sampler;
pub mod session;
pub mod status;

pub use board::*;
pub use chat::*;
pub use generate::*;
pub use model::*;
pub use params::*;
pub use sampler::*;
pub use session::*;
pub use status::*;
