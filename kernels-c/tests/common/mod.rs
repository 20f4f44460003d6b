//! Test data shared by the kernel tests and the `dot` benchmark (which includes this file with
//! `#[path]`): deterministic random bytes and where each block type keeps its f16 scales.

use tensorsharp_kernels::WType;

/// Deterministic pseudo-random bytes.
pub fn rng_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Offsets of the f16 scale fields inside one block, so random blocks get finite scales.
pub fn f16_fields(t: WType) -> &'static [usize] {
    match t {
        WType::Q4_1 | WType::Q5_1 | WType::Q4_K | WType::Q5_K => &[0, 2],
        WType::Q2_K => &[80, 82],
        WType::Q3_K => &[108],
        WType::Q6_K => &[208],
        WType::TQ2_0 => &[64],
        _ => &[0],
    }
}
