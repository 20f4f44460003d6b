//! The model-file side of TensorSharp.
//!
//! - [`gguf`]: a zero-copy, bounds-checked GGUF v2/v3 reader over `memmap2` and a writer.
//! - [`quant`]: the ggml type table (every id up to 42: name, block elements, block bytes).
//! - [`arch`]: architecture specs (llama, qwen2, gemma3) resolved from metadata.
//! - [`summary`]: architecture, key hyperparameters and sizes by type, for `tsharp info`.
//!
//! Nothing here trusts the file: every count, length, dimension, offset and size is checked
//! against the bytes that are actually there, with checked arithmetic, and a malformed file
//! gives a [`ModelError`] that names what is wrong and where.
#![deny(missing_docs)]

pub mod arch;
pub mod error;
pub mod gguf;
pub mod quant;
pub mod summary;

pub use arch::{Arch, ModelSpec};
pub use error::ModelError;
pub use gguf::{GgufFile, GgufWriter, MetaValue, TensorInfo};
pub use quant::GgmlType;
pub use summary::ModelSummary;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
