//! The KV cache: per layer, keys and values for every position and kv head, stored as f16
//! (default), f32 or q8_0. Rows are (position, kv head) with `head_dim` elements, so the
//! attention scores of one head are a GEMV over positions with the kernels' f32-activation path.

use tensorsharp_kernels::WType;

use crate::error::{Result, RuntimeError};
use crate::ops::f32_to_f16;

/// f32 → f16 (round to nearest even, as [`f32_to_f16`] and ggml's x86 build) with F16C, eight
/// values per instruction, for the whole groups of eight; returns how many it converted.
///
/// # Safety
/// The CPU must support F16C (and AVX, which it implies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c,avx")]
unsafe fn store_f16_f16c(x: &[f32], dst: &mut [u8]) -> usize {
    use std::arch::x86_64::{__m128i, _mm256_cvtps_ph, _mm256_loadu_ps, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT};
    let n = x.len().min(dst.len() / 2) & !7;
    for i in (0..n).step_by(8) {
        // SAFETY: x[i..i+8] and dst[2i..2i+16] are in bounds (i + 8 <= n); unaligned load/store.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr().add(i)));
            _mm_storeu_si128(dst.as_mut_ptr().add(2 * i) as *mut __m128i, h);
        }
    }
    n
}

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
            #[cfg(target_arch = "x86_64")]
            let done = if std::arch::is_x86_feature_detected!("f16c") {
                // SAFETY: the CPU has F16C, checked just above.
                unsafe { store_f16_f16c(x, dst) }
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for (d, v) in dst[2 * done..].chunks_exact_mut(2).zip(&x[done..]) {
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
