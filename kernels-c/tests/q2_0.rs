//! Q2_0 (ggml type 42) is not in ggml's fixture set, so it is tested on the real tensors of
//! `shared/models/SmolLM2-135M-Instruct.Q2_0.gguf`:
//! - every tier's dequantization equals the plain-Rust reference bit for bit, and every value
//!   is (q-1)·d for a code q in 0..=3;
//! - the dequantized weights track the same tensors of the Q2_K-mix file (Q4_0 / Q3_K, made by
//!   llama.cpp from the same source). This file's quantizer sets d = max|w| per block, so most
//!   codes are 0 and the cosine is only ~0.76 — but the other plausible layouts give 0.03 (codes
//!   split by nibble position like Q4_0) and 0.29 (scale after the codes), so > 0.7 tells the
//!   right layout from the wrong ones;
//! - dot products (8-bit and f32 activations) agree with the reference within the derived bounds.

use tensorsharp_kernels::{reference, BlockQ8a, Kernels, Tier, WType};
use tensorsharp_models::GgufFile;

fn shared(file: &str) -> GgufFile {
    let dir = std::env::var("TSHARP_SHARED_MODELS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models").into());
    let p = format!("{dir}/{file}");
    GgufFile::open(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

use tensorsharp_testkit::compare::cosine;

const TENSORS: [&str; 4] = [
    "blk.0.attn_q.weight",
    "blk.0.ffn_down.weight",
    "blk.15.ffn_gate.weight",
    "blk.29.attn_v.weight",
];

#[test]
fn q2_0_dequantization_is_exact_on_every_tier_and_tracks_the_source_weights() {
    let q2 = shared("SmolLM2-135M-Instruct.Q2_0.gguf");
    let mix = shared("SmolLM2-135M-Instruct.Q2_K.gguf");
    for name in TENSORS {
        let info = q2.tensor(name).unwrap();
        assert_eq!(info.ggml_type.id(), 42, "{name}");
        let (n, rows) = (info.dims[0] as usize, info.n_rows() as usize);
        let data = q2.data_of(info).unwrap();
        let refd = reference::dequantize(WType::Q2_0, data, n * rows);
        // Values are (q-1)·d.
        for (b, blk) in data.chunks_exact(18).enumerate() {
            let d = reference::f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
            for &v in &refd[b * 64..(b + 1) * 64] {
                assert!([-d, 0.0, d, 2.0 * d].contains(&v), "{name} block {b}: {v} with d={d}");
            }
        }
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut y = vec![0f32; n * rows];
            let rb = WType::Q2_0.row_bytes(n).unwrap();
            for r in 0..rows {
                k.dequantize(WType::Q2_0, &data[r * rb..(r + 1) * rb], &mut y[r * n..(r + 1) * n])
                    .unwrap();
            }
            assert!(
                y.iter().zip(&refd).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{tier} {name}"
            );
        }
        let other = mix.tensor(name).unwrap();
        let wt = WType::from_ggml_id(other.ggml_type.id()).unwrap();
        let src = reference::dequantize(wt, mix.data_of(other).unwrap(), n * rows);
        let c = cosine(&refd, &src);
        eprintln!("{name}: cosine(Q2_0, {wt}) = {c:.4}");
        assert!(c > 0.7, "{name}: cosine {c} between Q2_0 and {wt} dequantizations");
    }
}

#[test]
fn q2_0_dot_products_match_the_reference_on_every_tier() {
    let q2 = shared("SmolLM2-135M-Instruct.Q2_0.gguf");
    for name in TENSORS {
        let info = q2.tensor(name).unwrap();
        let (n, rows) = (info.dims[0] as usize, (info.n_rows() as usize).min(64));
        let data = q2.data_of(info).unwrap();
        let rb = WType::Q2_0.row_bytes(n).unwrap();
        // A deterministic, activation-like input with a few outliers.
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0 + if i % 97 == 0 { 8.0 } else { 0.0 })
            .collect();
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut xq = vec![BlockQ8a::default(); n / 32];
            k.quantize_q8a(&x, &mut xq).unwrap();
            let xd = reference::dequantize_q8a(&xq);
            let mut y_q8 = vec![0f32; rows];
            let mut y_f32 = vec![0f32; rows];
            k.matmul_q8a(WType::Q2_0, &data[..rows * rb], rows, &xq, 1, &mut y_q8)
                .unwrap();
            k.matmul_f32(WType::Q2_0, &data[..rows * rb], rows, &x, 1, &mut y_f32)
                .unwrap();
            for r in 0..rows {
                let w = &data[r * rb..(r + 1) * rb];
                let deq = reference::dequantize(WType::Q2_0, w, n);
                let abs = |v: &[f32]| -> f64 { deq.iter().zip(v).map(|(a, b)| f64::from((a * b).abs())).sum() };
                let want = reference::dot_f32(WType::Q2_0, w, &x);
                assert!(
                    (f64::from(y_f32[r]) - want).abs() <= 1e-5 * abs(&x) + 1e-30,
                    "{tier} {name} r{r} f32"
                );
                let want_q = reference::dot_q8a(WType::Q2_0, w, &xq);
                assert!(
                    (f64::from(y_q8[r]) - want_q).abs() <= 1e-5 * abs(&xd) + 1e-30,
                    "{tier} {name} r{r} q8a"
                );
                let bound: f64 = deq
                    .chunks(32)
                    .zip(&xq)
                    .map(|(wb, a)| f64::from(a.d) / 2.0 * wb.iter().map(|v| f64::from(v.abs())).sum::<f64>())
                    .sum();
                assert!(
                    (f64::from(y_q8[r]) - want).abs() <= bound + 1e-5 * abs(&x),
                    "{tier} {name} r{r} q8a vs exact"
                );
            }
        }
    }
}
