//! Row lengths and column counts the fixture file does not cover, on every tier this host runs:
//! rows that end in a partial group of 256 (e.g. 896, Qwen2.5's width), rows long enough that the
//! kernels prepare the activation data in several passes (more than 4096 elements for the per-32
//! GEMM, 16384 for the K-quant GEMM, 8192 for the AVX-512 GEMV), odd block counts and an odd row
//! count (the tails of the two-row, two-block GEMV), 1, 3, 8 and 11 columns (GEMV, partial
//! tile, full tile, tile plus tail) and 35 rows by 37 columns (full and partial AMX tiles). The
//! 8-bit-activation product must equal the plain-Rust reference on the same quantized activations within 1e-5 of the row's magnitude.

use tensorsharp_kernels::{reference, BlockQ8a, Kernels, Tier};

mod common;
use common::{activations, random_weights, QUANT_TYPES};

// Two tests over alternate types of the list (every type in one of them), so that the harness
// runs them on two threads (under qemu-aarch64 the whole took half a minute).
#[test]
fn ragged_and_long_rows_match_the_reference_on_every_tier_even_types() {
    check(QUANT_TYPES.iter().copied().step_by(2));
}

#[test]
fn ragged_and_long_rows_match_the_reference_on_every_tier_odd_types() {
    check(QUANT_TYPES.iter().copied().skip(1).step_by(2));
}

/// Every type of `types` on every shape and tier; fails with every mismatch found.
fn check(types: impl Iterator<Item = tensorsharp_kernels::WType>) {
    let mut failures = Vec::new();
    // (rows, columns): GEMV, partial and full tiles of the AVX-512 kernels, and for the AMX
    // tiles (16 rows x 16 columns) two full and one partial tile each way.
    let shapes = [(3usize, 1usize), (3, 3), (3, 8), (3, 11), (35, 37)];
    for t in types {
        let lens: &[usize] = if t.block_elems() == 256 {
            &[256, 768, 16384 + 512]
        } else if t.block_elems() == 64 {
            &[64, 896, 4096 + 640]
        } else {
            &[96, 896, 4096 + 640, 8192 + 160]
        };
        for &n in lens {
            let w = random_weights(t, 35, n);
            let rb = t.row_bytes(n).unwrap();
            for (rows, ncols) in shapes {
                let aq = activations(t, n, ncols);
                let per = n / 32;
                // The plain-Rust reference and each product's magnitude, once for every tier.
                let mut want = vec![(0f64, 0f64); rows * ncols];
                for c in 0..ncols {
                    let col: &[BlockQ8a] = &aq[c * per..(c + 1) * per];
                    let xd = reference::dequantize_q8a(col);
                    for r in 0..rows {
                        let wr = &w[r * rb..(r + 1) * rb];
                        let mag: f64 = reference::dequantize(t, wr, n)
                            .iter()
                            .zip(&xd)
                            .map(|(a, b)| f64::from((a * b).abs()))
                            .sum();
                        want[c * rows + r] = (reference::dot_q8a(t, wr, col), mag);
                    }
                }
                for tier in Tier::supported() {
                    let k = Kernels::new(tier).unwrap();
                    let mut y = vec![0f32; rows * ncols];
                    k.matmul_q8a(t, &w, rows, &aq, ncols, &mut y).unwrap();
                    for c in 0..ncols {
                        for r in 0..rows {
                            let (want, mag) = want[c * rows + r];
                            let got = f64::from(y[c * rows + r]);
                            if (got - want).abs() > 1e-5 * mag + 1e-30 {
                                failures.push(format!(
                                    "{tier} {t} n={n} cols={ncols} r{r} c{c}: {got} vs {want} (magnitude {mag})"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches, the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
