//! The one error type of `tensorsharp-models`.

use std::path::PathBuf;

/// Everything that can go wrong while opening, validating or writing a model file.
///
/// Offsets are byte offsets from the start of the file, so a user can look at the spot with
/// `xxd -s OFFSET`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be opened, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path names something other than a regular file (a directory, a device such as
    /// `/dev/zero`, a FIFO, a socket): a model is read from a file.
    #[error("{path}: not a regular file ({kind}); give the path of a .gguf model file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A big-endian GGUF file (this runtime reads little-endian files only).
    #[error("GGUF version field reads as {0:#x}: this is a big-endian GGUF file; only little-endian files are supported (convert it with gguf-py)")]
    BigEndian(u32),
    /// A GGUF version other than 2 or 3.
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    /// The file ends before a field that the header says is there.
    #[error("file truncated: {what} at offset {offset} needs {needed} bytes, only {available} left")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// How many bytes are left in the file.
        available: u64,
    },
    /// A count or length in the header cannot possibly fit in the file.
    #[error("{what} at offset {offset} claims {count} entries/bytes, but at most {max} fit in the rest of the file")]
    ImplausibleLength {
        /// What the count is for.
        what: String,
        /// Where the count is.
        offset: u64,
        /// The count read.
        count: u64,
        /// The most that could fit.
        max: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// What the string is.
        what: String,
        /// Where it starts.
        offset: u64,
    },
    /// A bool metadata value whose byte is neither 0 nor 1 (invalid per the GGUF spec).
    #[error("metadata key '{key}': bool at offset {offset} is {byte}, not 0 or 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// Where the byte is.
        offset: u64,
        /// The byte read.
        byte: u8,
    },
    /// A metadata value type id that GGUF does not define.
    #[error("metadata key '{key}': unknown value type {type_id}")]
    UnknownValueType {
        /// The key.
        key: String,
        /// The type id read.
        type_id: u32,
    },
    /// Arrays nested deeper than the reader allows.
    #[error("metadata key '{key}': arrays nested deeper than {max_depth}")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// The limit.
        max_depth: usize,
    },
    /// The same metadata key twice.
    #[error("metadata key '{0}' appears twice")]
    DuplicateKey(String),
    /// A metadata key has the wrong value type or an invalid value.
    #[error("metadata key '{key}': {problem}")]
    BadMetadata {
        /// The key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tensor type id that ggml does not define (or has removed).
    #[error("tensor '{tensor}': unknown ggml type id {type_id}")]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// The type id read.
        type_id: u32,
    },
    /// Dimensions that are zero in count, too many, or whose product overflows.
    #[error("tensor '{tensor}': bad shape {dims:?}: {problem}")]
    BadShape {
        /// The tensor.
        tensor: String,
        /// The dimensions read (innermost first, as in GGUF).
        dims: Vec<u64>,
        /// What is wrong.
        problem: String,
    },
    /// A tensor name that is empty.
    #[error("tensor info #{index} at offset {offset} has an empty name")]
    EmptyTensorName {
        /// Index of the tensor info.
        index: u64,
        /// Where its name starts.
        offset: u64,
    },
    /// The same tensor name twice.
    #[error("tensor '{0}' appears twice")]
    DuplicateTensor(String),
    /// A tensor offset that is not a multiple of the file's alignment.
    #[error("tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// The tensor.
        tensor: String,
        /// Its offset inside the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A tensor whose data runs past the end of the file.
    #[error("tensor '{tensor}': data [{start}, {end}) runs past the end of the file ({file_len} bytes)")]
    TensorOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Absolute start of its data.
        start: u64,
        /// Absolute end of its data (saturated on overflow).
        end: u64,
        /// The file length.
        file_len: u64,
    },
    /// Two tensors whose data overlap.
    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    OverlappingTensors {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },
    /// A tensor that does not exist in the file.
    #[error("no tensor named '{0}'")]
    NoSuchTensor(String),
    /// `general.architecture` names an architecture we do not run (or is missing).
    #[error("unsupported architecture '{0}' (supported: llama, qwen2, gemma3)")]
    UnsupportedArchitecture(String),
    /// A required hyperparameter is missing or out of range.
    #[error("model hyperparameter '{key}': {problem}")]
    BadHyperparameter {
        /// The GGUF key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A tensor the architecture needs is missing, or has the wrong shape or type.
    #[error("tensor '{name}': {problem}")]
    BadTensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The writer was given inconsistent input.
    #[error("cannot write GGUF: {0}")]
    Write(String),
}

impl ModelError {
    pub(crate) fn truncated(what: impl Into<String>, offset: u64, needed: u64, available: u64) -> Self {
        ModelError::Truncated {
            what: what.into(),
            offset,
            needed,
            available,
        }
    }
}
