//! Every kernel on every tier this host can run, against ggml's own outputs in
//! `shared/fixtures/quant-fixtures.gguf` (path from `TSHARP_QUANT_FIXTURES`).
//!
//! Tolerances:
//! - dequantization: max relative error 1e-6 (0 for F16, BF16, Q8_0, Q4_0, whose dequantization
//!   is a single exact product);
//! - f32-activation dot: float accumulation only, `1e-5 · Σ|w_i x_i|` (f32 has 2^-24 ≈ 6e-8
//!   unit round-off; 512 terms summed in a few partial sums stay far below 1e-5 relative);
//! - 8-bit-activation dot: the activation quantization error is bounded exactly. Each activation
//!   block b has scale d_b = max|x|/127 and rounding error at most d_b/2 per value, so
//!   |deq(W)·x − deq(W)·x̂| ≤ Σ_b (d_b/2) Σ_{i∈b} |w_i|. The test asserts that bound (computed
//!   from the fixture itself) plus the float term above; and, separately, that the kernel
//!   agrees with the plain-Rust reference on the same quantized activations to 1e-5 relative.

use tensorsharp_kernels::{reference, ActQuant, BlockQ8a, Kernels, Tier, WType};
use tensorsharp_models::GgufFile;

fn fixture_path() -> String {
    std::env::var("TSHARP_QUANT_FIXTURES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/quant-fixtures.gguf").into())
}

struct Fixture {
    file: GgufFile,
}

impl Fixture {
    fn open() -> Fixture {
        let p = fixture_path();
        Fixture {
            file: GgufFile::open(&p).unwrap_or_else(|e| panic!("open fixtures {p}: {e}")),
        }
    }
    fn f32s(&self, name: &str) -> Vec<f32> {
        let info = self
            .file
            .tensor(name)
            .unwrap_or_else(|| panic!("fixture tensor {name}"));
        assert_eq!(info.ggml_type, tensorsharp_models::GgmlType::F32);
        self.file
            .data_of(info)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
    fn raw(&self, name: &str) -> Option<(&[u8], usize, usize)> {
        let info = self.file.tensor(name)?;
        Some((
            self.file.data_of(info).unwrap(),
            info.dims[0] as usize,
            info.n_rows() as usize,
        ))
    }
}

const EXACT: [WType; 4] = [WType::F16, WType::BF16, WType::Q8_0, WType::Q4_0];

/// Types whose kernels fold an integer offset into the dot product (see `ts_kernels.c`).
const OFFSET_TYPES: [WType; 6] = [
    WType::Q4_0,
    WType::Q5_0,
    WType::Q2_0,
    WType::Q3_K,
    WType::Q6_K,
    WType::TQ2_0,
];

fn rel_err(got: f32, want: f32) -> f64 {
    let (g, w) = (f64::from(got), f64::from(want));
    if g == w {
        0.0
    } else if w == 0.0 {
        f64::INFINITY
    } else {
        ((g - w) / w).abs()
    }
}

/// Types with a ggml fixture: everything with a kernel except F32 (tested on `w.f32`) and Q2_0
/// (not in ggml's fixture set; tested on real model tensors in `q2_0.rs`).
fn fixture_types(fx: &Fixture) -> Vec<WType> {
    let types: Vec<WType> = WType::ALL
        .iter()
        .copied()
        .filter(|t| fx.raw(&format!("{}.q", t.name())).is_some())
        .collect();
    for must in [
        WType::F16,
        WType::BF16,
        WType::Q8_0,
        WType::Q4_0,
        WType::Q4_1,
        WType::Q5_0,
        WType::Q5_1,
        WType::Q2_K,
        WType::Q3_K,
        WType::Q4_K,
        WType::Q5_K,
        WType::Q6_K,
        WType::IQ4_NL,
        WType::TQ2_0,
    ] {
        assert!(types.contains(&must), "fixture file lacks {must}.q");
    }
    types
}

#[test]
fn dequantize_matches_ggml_on_every_tier() {
    let fx = Fixture::open();
    for t in fixture_types(&fx) {
        let (q, n, rows) = fx.raw(&format!("{}.q", t.name())).unwrap();
        let deq = fx.f32s(&format!("{}.deq", t.name()));
        let rb = t.row_bytes(n).unwrap();
        let tol = if EXACT.contains(&t) { 0.0 } else { 1e-6 };
        // The plain-Rust reference first, then every tier.
        let refd = reference::dequantize(t, q, n * rows);
        let worst = refd.iter().zip(&deq).map(|(&a, &b)| rel_err(a, b)).fold(0.0, f64::max);
        assert!(worst <= tol, "reference {t}: max rel err {worst:e} > {tol:e}");
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut y = vec![0f32; n];
            let mut worst = 0f64;
            for r in 0..rows {
                k.dequantize(t, &q[r * rb..(r + 1) * rb], &mut y).unwrap();
                for (i, (&a, &b)) in y.iter().zip(&deq[r * n..(r + 1) * n]).enumerate() {
                    let e = rel_err(a, b);
                    assert!(e <= tol, "{tier} {t} row {r} [{i}]: got {a} want {b} (rel err {e:e})");
                    worst = worst.max(e);
                }
            }
            eprintln!("dequant {tier:8} {t:7} max rel err {worst:.2e}");
        }
    }
}

/// The provable bound of the activation quantization error for one row (see the file comment).
fn q8a_bound(w: &[f32], a: &[BlockQ8a]) -> f64 {
    w.chunks(32)
        .zip(a)
        .map(|(wb, ab)| f64::from(ab.d.abs()) / 2.0 * wb.iter().map(|v| f64::from(v.abs())).sum::<f64>())
        .sum()
}

fn abs_dot(w: &[f32], x: &[f32]) -> f64 {
    w.iter().zip(x).map(|(a, b)| f64::from((a * b).abs())).sum()
}

#[test]
fn dot_products_match_ggml_on_every_tier() {
    let fx = Fixture::open();
    let x = fx.f32s("x.f32");
    for t in fixture_types(&fx) {
        let (q, n, rows) = fx.raw(&format!("{}.q", t.name())).unwrap();
        let deq = fx.f32s(&format!("{}.deq", t.name()));
        let want = fx.f32s(&format!("{}.y", t.name()));
        let rb = t.row_bytes(n).unwrap();
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut xq = vec![BlockQ8a::default(); n / 32];
            if t.uses_q8a() {
                k.quantize_for(t, &x, &mut xq).unwrap();
            }
            let (mut worst_f32, mut worst_q8) = (0f64, 0f64);
            for r in 0..rows {
                let wrow = &q[r * rb..(r + 1) * rb];
                let drow = &deq[r * n..(r + 1) * n];
                let float_tol = 1e-5 * abs_dot(drow, &x) + 1e-30;
                // f32 activations
                let got = k.dot_f32(t, wrow, &x).unwrap();
                let err = (f64::from(got) - f64::from(want[r])).abs();
                assert!(
                    err <= float_tol,
                    "{tier} {t} row {r} f32 dot: got {got}, ggml {}, err {err:e} > {float_tol:e}",
                    want[r]
                );
                worst_f32 = worst_f32.max(err / float_tol);
                if !t.uses_q8a() {
                    continue;
                }
                // 8-bit activations: against ggml within the derived bound ...
                let got = k.dot_q8a(t, wrow, &xq).unwrap();
                let bound = q8a_bound(drow, &xq) + float_tol;
                let err = (f64::from(got) - f64::from(want[r])).abs();
                assert!(
                    err <= bound,
                    "{tier} {t} row {r} q8a dot: got {got}, ggml {}, err {err:e} > bound {bound:e}",
                    want[r]
                );
                worst_q8 = worst_q8.max(err / bound);
                // ... and against the reference on the same quantized activations, tightly.
                let xd = reference::dequantize_q8a(&xq);
                let refv = reference::dot_q8a(t, wrow, &xq);
                let tight = 1e-5 * abs_dot(drow, &xd) + 1e-30;
                assert!(
                    (f64::from(got) - refv).abs() <= tight,
                    "{tier} {t} row {r}: kernel {got} vs reference {refv}"
                );
            }
            eprintln!("dot     {tier:8} {t:7} worst err / tolerance: f32 {worst_f32:.3}, q8a {worst_q8:.3}");
        }
    }
}

#[test]
fn f32_weights_match_plain_dot() {
    let fx = Fixture::open();
    let (w, x) = (fx.f32s("w.f32"), fx.f32s("x.f32"));
    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    for tier in Tier::supported() {
        let k = Kernels::new(tier).unwrap();
        for r in 0..24 {
            let row = &w[r * 512..(r + 1) * 512];
            let mut y = vec![0f32; 512];
            k.dequantize(WType::F32, &wb[r * 2048..(r + 1) * 2048], &mut y).unwrap();
            assert_eq!(y, row);
            let want: f64 = row.iter().zip(&x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let got = k.dot_f32(WType::F32, &wb[r * 2048..(r + 1) * 2048], &x).unwrap();
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * abs_dot(row, &x) + 1e-30,
                "{tier} row {r}"
            );
        }
    }
}

/// GEMV (many rows, one activation) and GEMM tiles (many rows × many activations) agree with the
/// single dot products: the f32 path exactly; the 8-bit path computes the same exact integer sums
/// but, in GEMM tiles, scales them per group of eight 32-chunks (offsets as integer start values,
/// Q4_1/Q5_1 mins in an 8-wide vector), so its float rounding differs slightly.
#[test]
fn multi_row_and_multi_column_variants_agree_with_single_dots() {
    let fx = Fixture::open();
    let x = fx.f32s("x.f32");
    // Three activation vectors, back to back; 5 columns exercises the 4-column tiles and a tail.
    let cols: Vec<Vec<f32>> = (0..11)
        .map(|c| {
            x.iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 - 0.17 * c as f32) + 0.01 * ((i * (c + 1)) % 7) as f32)
                .collect()
        })
        .collect();
    let xs: Vec<f32> = cols.concat();
    for t in fixture_types(&fx) {
        let (q, n, rows) = fx.raw(&format!("{}.q", t.name())).unwrap();
        let rb = t.row_bytes(n).unwrap();
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut ys = vec![0f32; rows * cols.len()];
            k.matmul_f32(t, q, rows, &xs, cols.len(), &mut ys).unwrap();
            for (c, col) in cols.iter().enumerate() {
                for r in 0..rows {
                    let single = k.dot_f32(t, &q[r * rb..(r + 1) * rb], col).unwrap();
                    assert_eq!(ys[c * rows + r].to_bits(), single.to_bits(), "{tier} {t} f32 r{r} c{c}");
                }
            }
            if !t.uses_q8a() {
                continue;
            }
            let mut aq = vec![BlockQ8a::default(); xs.len() / 32];
            k.quantize_for(t, &xs, &mut aq).unwrap();
            k.matmul_q8a(t, q, rows, &aq, cols.len(), &mut ys).unwrap();
            let per = n / 32;
            for c in 0..cols.len() {
                for r in 0..rows {
                    let single = k
                        .dot_q8a(t, &q[r * rb..(r + 1) * rb], &aq[c * per..(c + 1) * per])
                        .unwrap();
                    // Types with an integer offset (Q4_0, Q5_0, Q2_0, Q3_K, Q6_K, TQ2_0) see more
                    // cancellation between the code and offset terms: 1e-4 of the row magnitude;
                    // the others 1e-5.
                    let got = ys[c * rows + r];
                    let rel = if OFFSET_TYPES.contains(&t) { 1e-4 } else { 1e-5 };
                    let tol = rel * abs_dot(&reference::dequantize(t, &q[r * rb..(r + 1) * rb], n), &cols[c]) as f32;
                    assert!(
                        (got - single).abs() <= tol,
                        "{tier} {t} q8a r{r} c{c}: {got} vs {single} (tol {tol})"
                    );
                }
            }
            // One weight row against all columns.
            let mut y1 = vec![0f32; cols.len()];
            k.matmul_q8a(t, &q[..rb], 1, &aq, cols.len(), &mut y1).unwrap();
            for c in 0..cols.len() {
                assert_eq!(y1[c].to_bits(), ys[c * rows].to_bits(), "{tier} {t} 1xN c{c}");
            }
        }
    }
}

#[test]
fn activation_quantization_is_identical_on_every_tier_and_matches_reference() {
    let fx = Fixture::open();
    let w = fx.f32s("w.f32"); // rows with zeros, constants, huge, tiny and outlier values
    for how in [ActQuant::PerBlock, ActQuant::PerSuperBlock] {
        let want = match how {
            ActQuant::PerBlock => reference::quantize_q8a(&w),
            ActQuant::PerSuperBlock => reference::quantize_q8a_k(&w),
        };
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let mut got = vec![BlockQ8a::default(); w.len() / 32];
            k.quantize(how, &w, &mut got).unwrap();
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    (g.d.to_bits(), g.s, g.qs),
                    (r.d.to_bits(), r.s, r.qs),
                    "{tier} {how:?} block {i}"
                );
                assert!(g.qs.iter().all(|&q| q != -128));
            }
        }
    }
}

#[test]
fn f16_rounding_of_the_reference_is_to_nearest() {
    // The per-32 quantizer rounds scales to f16; check the reference's rounding on a sweep with
    // ties, subnormals and the overflow edge.
    for bits in (0u32..0x4780_0000)
        .step_by(40_099)
        .chain([0x3380_0000, 0x3f80_1000, 0x3f80_3000, 0x477f_e000])
    {
        let f = f32::from_bits(bits);
        let h = reference::f32_to_f16(f);
        let back = reference::f16_to_f32(h);
        let lo = reference::f16_to_f32(h.saturating_sub(1));
        let hi = reference::f16_to_f32(h + 1);
        assert!(
            (f - back).abs() <= (f - lo).abs() && (f - back).abs() <= (hi - f).abs(),
            "{f} -> {back}"
        );
    }
}

#[test]
fn block_sizes_agree_with_the_model_type_table() {
    for t in WType::ALL {
        let g = tensorsharp_models::GgmlType::from_id(t as u32).unwrap();
        assert_eq!(g.name(), t.name());
        assert_eq!(g.block_elems(), t.block_elems(), "{t}");
        assert_eq!(g.block_bytes(), t.block_bytes(), "{t}");
    }
}
