//! The f16 attention kernel (and SwiGLU, which shares its exponential) on every tier. The x86 and
//! scalar tiers: bit for bit equal to the plain-Rust emulation of llama.cpp's non-flash attention
//! arithmetic (`reference::attention_f16`), in both lane orders (a batch of tokens and one token)
//! and for keys that start past cell 0 (sliding window). The ARM tiers (NEON, dotprod) compute the
//! same 16-lane orders in four-lane quarters, so every tier is held to the same bits.

use tensorsharp_kernels::{reference, Kernels, Tier};

fn f16(x: f32) -> u16 {
    reference::f32_to_f16(x)
}

/// Bit-for-bit equality, naming the first element that differs.
fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what} [{i}]: {g} vs {w}");
    }
}

#[test]
fn attention_f16_matches_llama_cpp_arithmetic_on_every_tier() {
    let mut seed = 0x1234_5678u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    // (keys, head size, heads per cache row, first cell): one key, tails of the 16- and 64-cell
    // chunks, a window that starts mid-chunk, Gemma's 256 and a head size with a dot-product tail.
    for &(npos, hd, stride_heads, first) in &[
        (1usize, 64usize, 1usize, 0usize),
        (7, 64, 3, 0),
        (130, 64, 3, 0),
        (300, 256, 1, 0),
        (33, 128, 2, 5),
        (70, 80, 1, 37),
        (17, 64, 2, 512),
    ] {
        let stride = hd * stride_heads;
        let k: Vec<u16> = (0..npos * stride).map(|_| f16(rnd() * 2.0)).collect();
        let v: Vec<u16> = (0..npos * stride).map(|_| f16(rnd())).collect();
        let q: Vec<f32> = (0..hd).map(|_| rnd() * 3.0).collect();
        let scale = 1.0 / (hd as f32).sqrt();
        // Exact softmax attention over the f16 query and cache, in f64.
        let q16: Vec<f32> = q.iter().map(|&x| reference::f16_to_f32(f16(x))).collect();
        let s: Vec<f64> = (0..npos)
            .map(|j| {
                (0..hd)
                    .map(|d| f64::from(q16[d]) * f64::from(reference::f16_to_f32(k[j * stride + d])))
                    .sum::<f64>()
                    * f64::from(scale)
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let exact: Vec<f64> = (0..hd)
            .map(|d| {
                (0..npos)
                    .map(|j| e[j] * f64::from(reference::f16_to_f32(v[j * stride + d])))
                    .sum::<f64>()
                    / z
            })
            .collect();
        for batched in [false, true] {
            let want = reference::attention_f16(&q, &k, stride, &v, stride, first, npos, hd, scale, batched);
            for d in 0..hd {
                let err = (f64::from(want[d]) - exact[d]).abs();
                assert!(
                    err < 4e-3,
                    "reference npos {npos} hd {hd} d {d}: {} vs {}",
                    want[d],
                    exact[d]
                );
            }
            for tier in Tier::supported() {
                let kern = Kernels::new(tier).unwrap();
                let mut scores = vec![0f32; npos];
                let mut out = vec![f32::NAN; hd];
                // SAFETY: sizes as documented: npos rows at `stride`, hd-long q and out.
                unsafe {
                    kern.attention_f16_raw(
                        q.as_ptr(),
                        k.as_ptr(),
                        stride,
                        v.as_ptr(),
                        stride,
                        first,
                        npos,
                        hd,
                        hd,
                        scale,
                        batched,
                        scores.as_mut_ptr(),
                        out.as_mut_ptr(),
                    )
                };
                let what = format!("{tier} npos {npos} hd {hd} first {first} batched {batched}");
                assert_same_bits(&out, &want, &what);
            }
        }
    }
}

/// ggml's vector expf against f64 exp: within 2.5 ulp over the softmax range, 0 below the
/// underflow cut, and exact at 0.
#[test]
fn ggml_expf_is_accurate() {
    assert_eq!(reference::ggml_expf(0.0), 1.0);
    assert_eq!(reference::ggml_expf(-200.0), 0.0);
    assert_eq!(reference::ggml_expf(f32::NEG_INFINITY), 0.0);
    let mut x = -87.0f32;
    while x <= 0.0 {
        let got = reference::ggml_expf(x);
        let want = f64::from(x).exp();
        let ulp = f64::from(f32::from_bits(got.to_bits() + 1) - got);
        assert!(
            (f64::from(got) - want).abs() <= 2.5 * ulp,
            "exp({x}) = {got}, want {want}"
        );
        x += 0.0137;
    }
}

/// SwiGLU on every tier: bit for bit ggml's vector expf over the first `n_vec` values, libm's
/// expf past them, `(x / (1 + e)) * u`.
#[test]
fn swiglu_matches_ggml_on_every_tier() {
    let n = 100;
    let g0: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect();
    let u: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.11).collect();
    for n_vec in [0, 48, 96] {
        let want: Vec<f32> = (0..n)
            .map(|i| {
                let x = g0[i];
                let e = if i < n_vec {
                    reference::ggml_expf(0.0 - x)
                } else {
                    (-x).exp()
                };
                (x / (1.0 + e)) * u[i]
            })
            .collect();
        for tier in Tier::supported() {
            let kern = Kernels::new(tier).unwrap();
            let mut g = g0.clone();
            kern.swiglu(&mut g, &u, n_vec).unwrap();
            assert_same_bits(&g, &want, &format!("{tier} n_vec {n_vec}"));
        }
    }
    let kern = Kernels::new(Tier::Scalar).unwrap();
    assert!(kern.swiglu(&mut [0.0; 3], &[0.0; 2], 0).is_err());
    assert!(kern.swiglu(&mut [0.0; 3], &[0.0; 3], 4).is_err());
}
