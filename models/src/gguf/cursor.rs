//! A bounds-checked little-endian reader over a byte slice.

use crate::{ModelError, Result};

/// Reads little-endian fields from `buf`, never past its end.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes left after the current offset.
    pub(crate) fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// Takes the next `n` bytes, or reports `what` as truncated.
    pub(crate) fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(ModelError::truncated(what(), self.pos(), n, self.remaining()));
        }
        // `n <= remaining <= usize::MAX`, so the cast and the addition cannot overflow.
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    /// A GGUF bool: one byte that must be 0 or 1 (the spec calls any other value invalid).
    pub(crate) fn bool(&mut self, key: &str, what: &dyn Fn() -> String) -> Result<bool> {
        let offset = self.pos();
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(ModelError::InvalidBool {
                key: key.to_owned(),
                offset,
                byte,
            }),
        }
    }
    pub(crate) fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must allow at least `min_each` bytes per entry in the rest of the buffer.
    pub(crate) fn count(&mut self, min_each: u64, what: &dyn Fn() -> String) -> Result<u64> {
        let offset = self.pos();
        let count = self.u64(what)?;
        let max = self.remaining() / min_each.max(1);
        if count > max {
            return Err(ModelError::ImplausibleLength {
                what: what(),
                offset,
                count,
                max,
            });
        }
        Ok(count)
    }

    /// A GGUF string: `u64` length then UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let offset = self.pos();
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(ModelError::ImplausibleLength {
                what: what(),
                offset,
                count: len,
                max: self.remaining(),
            });
        }
        let start = self.pos();
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ModelError::InvalidUtf8 {
                what: what(),
                offset: start,
            }),
        }
    }
}
