//! GGUF v2/v3 (little-endian): a zero-copy, bounds-checked reader and a writer.
//!
//! Layout of a GGUF file: magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata count,
//! the metadata key/value pairs, the tensor infos (name, dims, type, offset), padding up to
//! `general.alignment` (default 32), then the data section. Tensor offsets are relative to the
//! start of the data section.

mod cursor;
mod reader;
mod value;
mod writer;

pub use reader::{GgufFile, TensorInfo, MAX_DIMS, MAX_NESTING};
pub use value::{malloc_bytes, MetaArray, MetaValue, ValueType};
pub use writer::{GgufWriter, WrittenLayout};

/// The four magic bytes at the start of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub const KEY_ALIGNMENT: &str = "general.alignment";
