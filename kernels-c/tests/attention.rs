//! The f16 flash-attention kernel on every tier against plain f32 softmax attention over the same
//! f16 values (the kernel rounds its value accumulator to f16, so agreement is to f16 precision).

use tensorsharp_kernels::{reference, Kernels, Tier};

fn f16(x: f32) -> u16 {
    reference::f32_to_f16(x)
}

#[test]
fn attention_f16_matches_softmax_attention_on_every_tier() {
    let mut seed = 0x1234_5678u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    for &(npos, hd, stride_heads) in &[
        (1usize, 64usize, 1usize),
        (7, 64, 3),
        (130, 64, 3),
        (300, 256, 1),
        (33, 128, 2),
    ] {
        let stride = hd * stride_heads;
        let k: Vec<u16> = (0..npos * stride).map(|_| f16(rnd() * 2.0)).collect();
        let v: Vec<u16> = (0..npos * stride).map(|_| f16(rnd())).collect();
        let q: Vec<f32> = (0..hd).map(|_| rnd() * 3.0).collect();
        let scale = 1.0 / (hd as f32).sqrt();
        // Reference: f16 query, f32 softmax, f32 accumulation.
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
        let want: Vec<f64> = (0..hd)
            .map(|d| {
                (0..npos)
                    .map(|j| e[j] * f64::from(reference::f16_to_f32(v[j * stride + d])))
                    .sum::<f64>()
                    / z
            })
            .collect();
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
                    npos,
                    hd,
                    hd,
                    scale,
                    scores.as_mut_ptr(),
                    out.as_mut_ptr(),
                )
            };
            for d in 0..hd {
                let err = (f64::from(out[d]) - want[d]).abs();
                assert!(
                    err < 4e-3,
                    "{tier:?} npos {npos} hd {hd} d {d}: {} vs {} ",
                    out[d],
                    want[d]
                );
            }
        }
    }
}
