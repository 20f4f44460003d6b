//! A product of several activation columns gives each column the bits of a one-column product
//! (GEMV) up to `WType::gemv_exact_cols` columns, and the GEMV form (`MatmulForm::Gemv`) at every
//! width, on every tier this host runs, for every quant type with 8-bit activations and for the
//! float types: batched decode relies on it to compute what each sequence alone would.

use tensorsharp_kernels::{Kernels, MatmulForm, Tier, WType};

mod common;
use common::{activations, random_weights, rng_bytes, QUANT_TYPES};

/// Columns tried (1 is the reference).
const MAX_COLS: usize = 12;
/// Odd, so that a last row goes alone; over the kernels' row blocks (16 / 32 rows).
const ROWS: usize = 45;

#[test]
fn columns_keep_their_gemv_bits_up_to_the_exact_width() {
    let mut failures = Vec::new();
    let mut widths = Vec::new();
    for tier in Tier::supported() {
        let k = Kernels::new(tier).unwrap();
        // A short row, and a long one: several of the kernels' activation passes (1024 elements
        // for the per-32 types, 20 super-blocks for the K-quants, with chains kept over blocks of
        // rows), an odd number of blocks in the last.
        for (t, n) in QUANT_TYPES.iter().flat_map(|&t| {
            let ns: [usize; 2] = match t.block_elems() {
                256 => [4864, 7168 + 256],
                64 => [896, 2176],
                _ => [896, 2144],
            };
            ns.map(|n| (t, n))
        }) {
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
                    failures.push(format!(
                        "{tier} {t} n={n}: {ncols} columns differ from one column at a time"
                    ));
                }
                // The GEMV form: one-column bits at every width.
                let mut y = vec![0f32; ROWS * ncols];
                k.matmul_q8a_form(MatmulForm::Gemv, t, &w, ROWS, &a[..ncols * per], ncols, &mut y)
                    .unwrap();
                for (c, want) in alone.iter().enumerate().take(ncols) {
                    if y[c * ROWS..(c + 1) * ROWS]
                        .iter()
                        .zip(want)
                        .any(|(x, y)| x.to_bits() != y.to_bits())
                    {
                        failures.push(format!("{tier} {t} n={n}: GEMV form, column {c} of {ncols} differs"));
                    }
                }
            }
            widths.push(format!(
                "{tier} {t} n={n}: {}",
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
