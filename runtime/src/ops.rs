//! Element-wise and per-row operations of the forward pass (plain Rust; the compiler vectorizes
//! the loops). The matrix products are in `tensorsharp-kernels`.

/// `1 / rms(x)` as llama.cpp's CPU backend computes it: squares summed in double, the mean
/// rounded to f32, `1 / sqrt(mean + eps)` in f32.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let ss: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (ss / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = x / rms(x) * w` (the product in that order, as ggml's norm then mul).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// In-place [`rms_norm`].
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// Fills `cs` with (cos, sin) of `pos · scale · base^(-2i/dim)` for `i < dim/2`.
pub fn rope_table(pos: usize, dim: usize, base: f32, scale: f32, cs: &mut [(f32, f32)]) {
    let theta_scale = base.powf(-2.0 / dim as f32);
    let mut theta = pos as f32 * scale;
    for c in cs.iter_mut().take(dim / 2) {
        *c = (theta.cos(), theta.sin());
        theta *= theta_scale;
    }
}

/// Rotates the first `2 * cs.len()` dimensions of one head. Each pair is rotated as llama.cpp's
/// CPU backend computes it when its C++ is compiled with FMA contraction (GCC's default):
/// `fma(x0, cos, -(x1*sin))` and `fma(x0, sin, x1*cos)` (bit-identical to its RoPE on this
/// reference's models; the plain products differ in the last bit of about one value in eight).
pub fn rope(x: &mut [f32], cs: &[(f32, f32)], neox: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA, checked just above.
        return unsafe { rope_fma(x, cs, neox) };
    }
    rope_pairs(x, cs, neox);
}

/// [`rope`] compiled with FMA, so that `mul_add` is one instruction instead of a call to libm's
/// `fmaf` (the crate is built for baseline x86-64); both round once, so the bits are the same.
///
/// # Safety
/// The CPU must support FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn rope_fma(x: &mut [f32], cs: &[(f32, f32)], neox: bool) {
    rope_pairs(x, cs, neox);
}

#[inline(always)]
fn rope_pairs(x: &mut [f32], cs: &[(f32, f32)], neox: bool) {
    let half = cs.len();
    let rotate = |x0: f32, x1: f32, c: f32, s: f32| (x0.mul_add(c, -(x1 * s)), x0.mul_add(s, x1 * c));
    for (i, &(c, s)) in cs.iter().enumerate() {
        let (i0, i1) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        (x[i0], x[i1]) = rotate(x[i0], x[i1], c, s);
    }
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// GELU, tanh approximation.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU as llama.cpp's CPU backend computes it: through a table indexed by the f16 value of x,
/// holding f16 results (exact GELU outside (-10, 10)). Matching it keeps our logits within the
/// reference implementation's rounding.
#[inline]
pub fn gelu_tanh_f16_table(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        f16_to_f32(f32_to_f16(gelu_tanh(f16_to_f32(f32_to_f16(x)))))
    }
}

/// The table behind [`gelu_tanh_f16_table`]: for every f16 bit pattern `h`, the f16-rounded GELU
/// of its value, as f32 (256 KiB; built once per model).
pub fn gelu_f16_table() -> Vec<f32> {
    (0..=u16::MAX)
        .map(|h| f16_to_f32(f32_to_f16(gelu_tanh(f16_to_f32(h)))))
        .collect()
}

/// [`gelu_tanh_f16_table`] through a table from [`gelu_f16_table`].
#[inline]
pub fn gelu_lookup(table: &[f32], x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[f32_to_f16(x) as usize]
    }
}

/// f32 to IEEE half bits, round to nearest even (overflow to infinity).
pub fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1;
    }
    sign | r as u16
}

/// IEEE half bits to f32.
pub fn f16_to_f32(h: u16) -> f32 {
    // Bit manipulation (exact; the kernels' reference uses powi and is slow).
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let shift = man.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((man << shift) & 0x3ff) << 13)
        }
        31 => sign | 0x7f80_0000 | (man << 13),
        e => sign | ((e + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_matches_the_reference_everywhere() {
        for h in 0..=u16::MAX {
            let (a, b) = (f16_to_f32(h), tensorsharp_kernels::reference::f16_to_f32(h));
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{h:#x}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn f16_round_trip_and_rounding() {
        for h in (0u16..0x7c00).step_by(7).chain([0x3c00, 0x0001, 0x03ff, 0x7bff]) {
            let f = f16_to_f32(h);
            assert_eq!(f32_to_f16(f), h, "{h:#x}");
            assert_eq!(f32_to_f16(-f), h | 0x8000);
        }
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00); // tie -> even
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(1e-9), 0);
    }

    #[test]
    fn rope_preserves_norm_and_position_zero_is_identity() {
        let mut cs = vec![(0.0, 0.0); 4];
        rope_table(0, 8, 10000.0, 1.0, &mut cs);
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        rope(&mut x, &cs, true);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        rope_table(17, 8, 10000.0, 1.0, &mut cs);
        for neox in [false, true] {
            let mut y = x;
            rope(&mut y, &cs, neox);
            let n = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
            assert!((n(&y) - n(&x)).abs() < 1e-3);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = [1.0, 2.0, 3.0, -1e9];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(v[3], 0.0);
    }
}
