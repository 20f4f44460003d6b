//! Prompt caches on disk (`--prompt-cache FILE`, llama.cpp's habit): the session state after a
//! prompt, so that the next run with the same model and a prompt that starts the same way loads
//! the shared prefix instead of prefilling it.
//!
//! The file is a saved session state ([`Session::save_state`]: bound to the model's fingerprint
//! and the session shape, CRC-32 checked). A file from another model, context size or KV type is
//! refused ([`RuntimeError::StateMismatch`]; the file is left alone); a damaged or truncated one
//! is reported as [`CacheLoad::Ignored`] and replaced by the next save. Saves are atomic: a
//! temporary file in the same directory, synced, then renamed over the old one, so a crash
//! mid-write leaves the old file or none, never a partial one that loads.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError};
use crate::session::Session;
use crate::tokenizer::Token;

/// What [`load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLoad {
    /// No file yet.
    Missing,
    /// The state was loaded: the session holds `positions` tokens (keep the common prefix with
    /// the new prompt before prefilling).
    Loaded {
        /// Positions restored.
        positions: usize,
    },
    /// The file is not an intact state (truncated, damaged, an older format): not used, and the
    /// next save replaces it.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// Loads the cache file at `path` into `session` (which must be freshly reset or hold nothing
/// worth keeping). Errors: [`RuntimeError::StateMismatch`] for a file of another model or
/// session shape (the session is unchanged), [`RuntimeError::Io`] when the file exists but
/// cannot be read.
pub fn load(session: &mut Session, path: &Path) -> Result<CacheLoad> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheLoad::Missing),
        Err(e) => return Err(io_error(path, "read", e)),
    };
    match session.load_state(&bytes) {
        Ok(()) => Ok(CacheLoad::Loaded {
            positions: session.n_past(),
        }),
        Err(RuntimeError::CorruptState(reason)) => Ok(CacheLoad::Ignored { reason }),
        Err(e) => Err(e),
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> RuntimeError {
    RuntimeError::Io(std::io::Error::new(
        e.kind(),
        format!("prompt cache {}: {what}: {e}", path.display()),
    ))
}

/// Whether the file just loaded already holds `prompt` up to its last token (saving again
/// would write the same prefix).
pub fn covers(loaded_tokens: &[Token], prompt: &[Token]) -> bool {
    let n = prompt.len().saturating_sub(1);
    loaded_tokens.len() >= n && loaded_tokens[..n] == prompt[..n]
}

/// Writes `session`'s state to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory).
pub fn save(session: &Session, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; session.state_size()];
    let n = session.save_state(&mut buf)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf[..n])?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself reaches the disk with the directory.
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, "write", e)
    })
}
