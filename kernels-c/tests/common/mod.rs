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

/// `rows` random rows of `n` elements with finite scales between ~0.004 and ~0.03.
#[allow(dead_code)] // not every includer uses it
pub fn random_weights(t: WType, rows: usize, n: usize) -> Vec<u8> {
    let mut w = rng_bytes(t.row_bytes(n).unwrap() * rows, t as u64 + n as u64);
    for (b, blk) in w.chunks_exact_mut(t.block_bytes()).enumerate() {
        for &o in f16_fields(t) {
            let h = (0x1c00 + ((b * 37) & 0x3ff) + ((b & 3) << 10)) as u16;
            blk[o..o + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    w
}

/// `ncols` activation columns of `n` values (a fixed pattern of mixed magnitudes), quantized the
/// way `t`'s kernels take them.
#[allow(dead_code)] // not every includer uses it
pub fn activations(t: WType, n: usize, ncols: usize) -> Vec<tensorsharp_kernels::BlockQ8a> {
    let x: Vec<f32> = (0..n * ncols)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (1.0 + (i % 5) as f32))
        .collect();
    tensorsharp_kernels::reference::quantize_for(t, &x)
}

/// Every quantized weight type with a q8a kernel.
#[allow(dead_code)] // not every includer uses it
pub const QUANT_TYPES: [WType; 13] = [
    WType::Q4_0,
    WType::Q4_1,
    WType::Q5_0,
    WType::Q5_1,
    WType::Q8_0,
    WType::IQ4_NL,
    WType::Q2_0,
    WType::Q2_K,
    WType::Q3_K,
    WType::Q4_K,
    WType::Q5_K,
    WType::Q6_K,
    WType::TQ2_0,
];
