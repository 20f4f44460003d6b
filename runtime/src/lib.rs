//! TensorSharp runtime: tokenizers, architecture specs, the CPU executor, KV cache, sampling
//! and sessions (see `DESIGN.md`).
#![deny(missing_docs)]

pub mod error;
pub mod tokenizer;

pub use error::{Result, RuntimeError};
pub use tokenizer::{StreamDecoder, Token, Tokenizer};
