//! TensorSharp runtime: tokenizers, architecture specs, the CPU executor, KV cache, sampling
//! and sessions (see `DESIGN.md`).
#![deny(missing_docs)]

pub mod arena;
pub mod error;
pub mod generate;
pub mod kv;
pub mod model;
pub mod ops;
pub mod plan;
pub mod pool;
pub mod sampler;
pub mod session;
pub mod tokenizer;

pub use error::{Result, RuntimeError};
pub use generate::{generate, GenStats, Generation, Generator, StopReason};
pub use kv::KvType;
pub use model::{Model, WeightsMode};
pub use plan::{LockMode, SessionPlan};
pub use sampler::{Sampler, SamplerParams};
pub use session::{Session, SessionParams};
pub use tokenizer::{StreamDecoder, Token, Tokenizer};
