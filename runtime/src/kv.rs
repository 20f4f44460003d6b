//! The KV cache: per layer, keys and values for every position and kv head, stored as f16
//! (default), f32 or q8_0. Rows are (position, kv head) with `head_dim` elements, so the
//! attention scores of one head are a GEMV over positions with the kernels' f32-activation path.

use tensorsharp_kernels::WType;

use crate::error::{Result, RuntimeError};
use crate::ops::f32_to_f16;

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    /// IEEE half (default).
    F16,
    /// f32.
    F32,
    /// 8-bit blocks of 32 with an f16 scale (head dimensions must be multiples of 32).
    Q8_0,
}

impl KvType {
    /// Parses `f16`, `f32` or `q8_0`.
    pub fn from_name(s: &str) -> Result<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            "q8_0" => Ok(KvType::Q8_0),
            _ => Err(RuntimeError::InvalidParameter {
                name: "kv type",
                problem: format!("'{s}' (expected f16, f32 or q8_0)"),
            }),
        }
    }

    /// The name `from_name` accepts.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// The kernel weight type that reads this storage.
    pub fn wtype(self) -> WType {
        match self {
            KvType::F16 => WType::F16,
            KvType::F32 => WType::F32,
            KvType::Q8_0 => WType::Q8_0,
        }
    }

    /// Bytes of a row of `n` elements, if `n` fits the type.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        self.wtype().row_bytes(n)
    }
}

/// Writes one row of `x` into `dst` in the cache format.
pub fn store_row(ty: KvType, x: &[f32], dst: &mut [u8]) {
    match ty {
        KvType::F32 => {
            for (d, v) in dst.chunks_exact_mut(4).zip(x) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        KvType::F16 => {
            for (d, v) in dst.chunks_exact_mut(2).zip(x) {
                d.copy_from_slice(&f32_to_f16(*v).to_le_bytes());
            }
        }
        KvType::Q8_0 => {
            for (blk, xb) in dst.chunks_exact_mut(34).zip(x.chunks_exact(32)) {
                let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                blk[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
                for (q, v) in blk[2..].iter_mut().zip(xb) {
                    *q = ((v * id).round() as i8) as u8;
                }
            }
        }
    }
}
