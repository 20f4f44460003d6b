//! FNV-1a, 64 bits: a cheap fingerprint of bytes for cache keys and identity checks (not a
//! checksum against tampering: the saved-state format uses CRC-32 for damage).

/// An FNV-1a hash in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    /// The empty hash.
    pub(crate) fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    /// Adds `bytes`.
    pub(crate) fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of everything added.
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}
