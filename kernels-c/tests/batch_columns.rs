//! A product of several activation columns gives each column the bits of a one-column product
//! (GEMV) up to `WType::gemv_exact_cols` columns, on every tier this host runs, for every quant
//! type with 8-bit activations and for the float types: batched decode relies on it to compute
//! what each sequence alone would.

use tensorsharp_kernels::{Kernels, Tier, WType};

mod common;
use common::{activations, random_weights, rng_bytes, QUANT_TYPES};

/// Columns tried (1 is the reference).
const MAX_COLS: usize = 12;
const ROWS: usize = 48;

#[test]
fn columns_keep_their_gemv_bits_up_to_the_exact_width() {
    let mut failures = Vec::new();
    let mut widths = Vec::new();
    for tier in Tier::supported() {
        let k = Kernels::new(tier).unwrap();
        for t in QUANT_TYPES {
            let n = if t.block_elems() == 256 { 1024 } else { 896 };
            let w = random_weights(t, ROWS, n);
            let a = activations(t, n, MAX_COLS);
            let per = n / 32;
            let alone: Vec<Vec<f32>> = (0..MAX_COLS)
                .map(|c| {
                    let mut y = vec![0f32; ROWS];
                    k.matmul_q8a(t, &w, ROWS, &a[c * per..(c + 1) * per], 1, &mut y)
                        .unwrap();
                    y
                })
                .collect();
            let mut widest = 1;
            for ncols in 2..=MAX_COLS {
                let mut y = vec![0f32; ROWS * ncols];
                k.matmul_q8a(t, &w, ROWS, &a[..ncols * per], ncols, &mut y).unwrap();
                let same = (0..ncols).all(|c| {
                    y[c * ROWS..(c + 1) * ROWS]
                        .iter()
                        .zip(&alone[c])
                        .all(|(x, y)| x.to_bits() == y.to_bits())
                });
                if same && widest == ncols - 1 {
                    widest = ncols;
                }
                if !same && ncols <= t.gemv_exact_cols() {
                    failures.push(format!("{tier} {t}: {ncols} columns differ from one column at a time"));
                }
            }
            widths.push(format!(
                "{tier} {t}: {}",
                if widest == MAX_COLS {
                    "all".into()
                } else {
                    widest.to_string()
                }
            ));
        }
        // The float types (f32 activations).
        for t in [WType::F32, WType::F16, WType::BF16] {
            let n = 256;
            let w = random_weights(t, ROWS, n);
            let x: Vec<f32> = rng_bytes(4 * n * MAX_COLS, 7)
                .chunks_exact(4)
                .map(|b| (b[0] as f32 - 128.0) / 64.0)
                .collect();
            let alone: Vec<Vec<f32>> = (0..MAX_COLS)
                .map(|c| {
                    let mut y = vec![0f32; ROWS];
                    k.matmul_f32(t, &w, ROWS, &x[c * n..(c + 1) * n], 1, &mut y).unwrap();
                    y
                })
                .collect();
            for ncols in 2..=MAX_COLS.min(t.gemv_exact_cols()) {
                let mut y = vec![0f32; ROWS * ncols];
                k.matmul_f32(t, &w, ROWS, &x[..ncols * n], ncols, &mut y).unwrap();
                for (c, a) in alone.iter().enumerate().take(ncols) {
                    if y[c * ROWS..(c + 1) * ROWS]
                        .iter()
                        .zip(a)
                        .any(|(x, y)| x.to_bits() != y.to_bits())
                    {
                        failures.push(format!("{tier} {t}: column {c} of {ncols} differs"));
                    }
                }
            }
        }
    }
    eprintln!("widest batch with one-column bits:\n  {}", widths.join("\n  "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
