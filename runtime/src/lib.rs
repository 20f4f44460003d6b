//! TensorSharp runtime: tokenizers, the CPU executor, KV cache, sampling, sessions and the
//! generation loop, over the GGUF reader and architecture specs of `tensorsharp-models` and the
//! kernels of `tensorsharp-kernels` (the architecture is described in the repository README).
//!
//! Features (both on by default): `chat` (chat templates and tool calls, [`chat`]) and
//! `structured` (constrained sampling, [`structured`]). A firmware link that feeds token ids
//! can leave them out (`default-features = false`): the rest has no Jinja or grammar engine.
#![deny(missing_docs)]

pub mod arena;
pub mod board;
#[cfg(feature = "chat")]
pub mod chat;
pub mod error;
pub mod fault;
mod fnv;
pub mod generate;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod plan;
pub mod pool;
pub mod prompt_cache;
pub mod residency;
pub mod sampler;
pub mod session;
pub mod stack;
pub(crate) mod stream;
#[cfg(feature = "structured")]
pub mod structured;
pub mod tokenizer;

#[cfg(feature = "chat")]
pub use chat::{ChatTemplate, Conversation};
pub use error::{Result, RuntimeError};
pub use generate::{generate, Flow, GenStats, Generation, Generator, StopFilter, StopReason};
pub use model::{Model, WeightsMode};
pub use plan::{LockMode, SessionPlan};
pub use sampler::{Sampler, SamplerParams};
pub use session::{BatchRow, DirectIo, KvCache, KvType, ProfileOp, Session, SessionParams};
pub use tokenizer::{StreamDecoder, Token, Tokenizer};
