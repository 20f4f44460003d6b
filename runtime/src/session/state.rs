//! Saved session state: the cached positions of a conversation (their token ids and K/V rows)
//! and the last logits, in a versioned, checksummed format bound to the model and the session's
//! shape (of sequence 0 in a session of several). Saving and loading allocate nothing.
//!
//! Layout (little-endian), a 64-byte header then the payload:
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | magic `TSSTATE\0` |
//! | 8 | format version (u32, [`STATE_VERSION`]) |
//! | 12 | header bytes (u32, 64) |
//! | 16 | model fingerprint (u64, [`Model::fingerprint`](crate::Model::fingerprint)) |
//! | 24 | layers, kv heads, vocabulary, KV type code, K row bytes, V row bytes, context, positions (u32 each) |
//! | 56 | CRC-32 of the header (this field as 0) and the payload |
//! | 60 | reserved, 0 |
//!
//! Payload: the logits (`n_vocab` f32), then [`KvCache`](super::kv::KvCache)'s record of the
//! positions (their token ids, then per layer the K rows and the V rows).

use super::kv::KvType;
use super::Session;
use crate::error::{Result, RuntimeError};

/// The format version this library writes and reads.
pub const STATE_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"TSSTATE\0";
const HEADER: usize = 64;
const CRC_AT: usize = 56;

/// The header fields that describe the session shape, in their order at offset 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    n_layers: u32,
    n_head_kv: u32,
    n_vocab: u32,
    kv_type: u32,
    row_k: u32,
    row_v: u32,
    n_ctx: u32,
}

impl Shape {
    fn words(&self) -> [u32; 7] {
        [
            self.n_layers,
            self.n_head_kv,
            self.n_vocab,
            self.kv_type,
            self.row_k,
            self.row_v,
            self.n_ctx,
        ]
    }

    const NAMES: [&'static str; 7] = [
        "number of layers",
        "number of KV heads",
        "vocabulary size",
        "KV cache type",
        "K row size",
        "V row size",
        "context size",
    ];
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..CRC_AT]);
    h.update(&[0; 4]);
    h.update(&header[CRC_AT + 4..HEADER]);
    h.update(payload);
    h.finalize()
}

fn kv_type_name(code: u32) -> String {
    KvType::from_code(code).map_or_else(|| format!("code {code}"), |t| t.name().to_string())
}

impl Session {
    fn shape(&self) -> Shape {
        let sp = &self.model.spec;
        Shape {
            n_layers: sp.n_layers as u32,
            n_head_kv: sp.n_head_kv as u32,
            n_vocab: sp.n_vocab as u32,
            kv_type: self.kv.kv_type() as u32,
            row_k: self.kv.row_k() as u32,
            row_v: self.kv.row_v() as u32,
            n_ctx: self.params.n_ctx as u32,
        }
    }

    fn state_bytes(&self, n_past: usize) -> usize {
        HEADER + 4 * self.model.spec.n_vocab + self.kv.saved_bytes(n_past)
    }

    /// Bytes [`save_state`](Self::save_state) writes for the current conversation.
    pub fn state_size(&self) -> usize {
        self.state_bytes(self.n_past())
    }

    /// Writes the conversation state (the cached positions and the last logits) to `buf` and
    /// returns the bytes written; [`RuntimeError::BufferTooSmall`] with the size needed when
    /// `buf` is too small. Allocates nothing.
    pub fn save_state(&self, buf: &mut [u8]) -> Result<usize> {
        self.cpu_cache_only("save_state")?;
        let need = self.state_size();
        if buf.len() < need {
            return Err(RuntimeError::BufferTooSmall {
                what: "session state",
                needed: need,
                got: buf.len(),
            });
        }
        let (header, rest) = buf[..need].split_at_mut(HEADER);
        header.fill(0);
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&STATE_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(HEADER as u32).to_le_bytes());
        header[16..24].copy_from_slice(&self.model.fingerprint().to_le_bytes());
        let words = self.shape().words();
        for (i, w) in words.iter().chain([&(self.n_past() as u32)]).enumerate() {
            header[24 + 4 * i..28 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        let (logits, positions) = rest.split_at_mut(4 * self.model.spec.n_vocab);
        for (d, l) in logits.chunks_exact_mut(4).zip(self.logits()) {
            d.copy_from_slice(&l.to_le_bytes());
        }
        // SAFETY: &self: no forward pass runs; the cache is this session's; n_past <= n_ctx.
        unsafe { self.kv.save_prefix(&self.arena, 0, self.n_past(), positions) };
        let crc = checksum(header, rest);
        header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(need)
    }

    /// Restores a state written by [`save_state`](Self::save_state) for the same model and
    /// session shape (KV type, context size). Errors: [`RuntimeError::CorruptState`] for bytes
    /// that are not an intact state, [`RuntimeError::StateMismatch`] naming what differs. On
    /// error the session is unchanged. Allocates nothing.
    pub fn load_state(&mut self, buf: &[u8]) -> Result<()> {
        self.cpu_cache_only("load_state")?;
        self.load_state_prefix(buf, usize::MAX).map(|_| ())
    }

    /// [`load_state`](Self::load_state) of the state's first `n` positions only (all of them
    /// when `n` is larger); returns how many were restored. The logits are restored with the
    /// whole state; after a shorter prefix they are those of a later position until the next
    /// prefill or decode (prefill at least one token before sampling).
    pub fn load_state_prefix(&mut self, buf: &[u8], n: usize) -> Result<usize> {
        self.cpu_cache_only("load_state_prefix")?;
        let corrupt = |problem: String| RuntimeError::CorruptState(problem);
        if buf.len() < HEADER || &buf[..8] != MAGIC {
            if buf.len() >= 8 && &buf[..8] == b"TSSTATE1" {
                return Err(corrupt(format!(
                    "a format version 1 state; this library reads version {STATE_VERSION} (save it again)"
                )));
            }
            return Err(corrupt(
                "not a TensorSharp session state (bad magic or too short)".into(),
            ));
        }
        let version = u32_at(buf, 8);
        if version != STATE_VERSION || u32_at(buf, 12) as usize != HEADER {
            return Err(corrupt(format!(
                "format version {version}; this library reads version {STATE_VERSION}"
            )));
        }
        let saved_past = u32_at(buf, 52) as usize;
        let saved_vocab = u32_at(buf, 32) as usize;
        let saved_ctx = u32_at(buf, 48) as usize;
        if saved_past > saved_ctx {
            return Err(corrupt(format!("{saved_past} positions in a context of {saved_ctx}")));
        }
        let (header, payload) = buf.split_at(HEADER);
        if checksum(header, payload) != u32_at(buf, CRC_AT) {
            return Err(corrupt(format!(
                "checksum mismatch over {} bytes (truncated or damaged)",
                buf.len()
            )));
        }
        let fingerprint = u64::from_le_bytes(buf[16..24].try_into().unwrap_or_default());
        if fingerprint != self.model.fingerprint() {
            return Err(RuntimeError::StateMismatch {
                what: "model",
                saved: format!("fingerprint {fingerprint:016x}"),
                here: format!("fingerprint {:016x}", self.model.fingerprint()),
            });
        }
        let mine = self.shape().words();
        for (i, name) in Shape::NAMES.iter().enumerate() {
            let saved = u32_at(buf, 24 + 4 * i);
            if saved != mine[i] {
                let show = |v: u32| if i == 3 { kv_type_name(v) } else { v.to_string() };
                return Err(RuntimeError::StateMismatch {
                    what: name,
                    saved: show(saved),
                    here: show(mine[i]),
                });
            }
        }
        // The shape matches, so the length follows from the positions.
        let need = HEADER + 4 * saved_vocab + self.kv.saved_bytes(saved_past);
        if buf.len() != need {
            return Err(corrupt(format!(
                "{} bytes, {need} expected for {saved_past} positions",
                buf.len()
            )));
        }
        let keep = n.min(saved_past);
        let (logits, positions) = payload.split_at(4 * saved_vocab);
        // SAFETY: &mut self: no other user of the arena; the logits slot is not the cache's.
        let mine = unsafe { self.arena.slice(self.buffers.logits) };
        for (l, s) in mine.iter_mut().zip(logits.chunks_exact(4)) {
            *l = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        }
        // SAFETY: &mut self; keep <= saved_past <= n_ctx (the context sizes match).
        unsafe { self.kv.restore_prefix(&self.arena, 0, saved_past, keep, positions) };
        self.seq_len[0] = keep;
        self.seq_logits_row[0] = 0;
        self.clear_cancel();
        Ok(keep)
    }
}
