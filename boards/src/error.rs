//! The one error type of `tensorsharp-boards`.
//!
//! Detection itself never fails (a missing, truncated or absurd file is reported as unknown and
//! the profile falls back to what the CPU and memory say); only writing a dump can.

use std::path::PathBuf;

/// What can go wrong while dumping the files detection read (`tsharp board --dump DIR`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoardError {
    /// A file or directory of the dump could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The dump directory exists and is not empty: a dump never overwrites files.
    #[error("{0}: the dump directory exists and is not empty; give a new or empty directory")]
    DumpDirNotEmpty(PathBuf),
}

/// `Result` with [`BoardError`].
pub type Result<T> = std::result::Result<T, BoardError>;
