//! The summation orders, bit for bit. Every tier (scalar, AVX2, AVX-512, AMX, NEON, dotprod) sums
//! every product in the order of the kernel llama.cpp's x86 CPU backend runs for that type and
//! batch (the parity test checks the result on real models); these tests pin the properties that
//! order has, on shapes the models do not reach:
//! - the per-32 types llama.cpp sums in int32 lanes (vec_dot and tinyBLAS share the order) give
//!   every column of a GEMM exactly what the GEMV gives that column alone;
//! - every tier equals the scalar tier (the orders written out in plain C) bit for bit on every
//!   type, for column counts across the tiles' and column groups' edges (8, 16, 64) and
//!   group-of-four tails, row counts that leave partial row tiles, and rows longer than one
//!   prepared range (K-quant super-block ranges, per-32 chunk ranges and GEMV passes).

use tensorsharp_kernels::{BlockQ8a, Kernels, Tier, WType};

mod common;
use common::{activations, random_weights, QUANT_TYPES};

const ROWS: usize = 35;

fn matmul(k: &Kernels, t: WType, w: &[u8], a: &[BlockQ8a], ncols: usize) -> Vec<f32> {
    let mut y = vec![0f32; ROWS * ncols];
    k.matmul_q8a(t, w, ROWS, a, ncols, &mut y).unwrap();
    y
}

/// The per-32 types llama.cpp sums in int32 lanes.
const LANE_TYPES: [WType; 5] = [WType::Q4_1, WType::Q5_0, WType::Q5_1, WType::Q8_0, WType::IQ4_NL];

// In two tests over alternate types, as the tier comparison below.
#[test]
fn lane_order_gemm_columns_equal_the_gemv_even_types() {
    lane_columns_equal_the_gemv(LANE_TYPES.iter().copied().step_by(2));
}

#[test]
fn lane_order_gemm_columns_equal_the_gemv_odd_types() {
    lane_columns_equal_the_gemv(LANE_TYPES.iter().copied().skip(1).step_by(2));
}

/// Every GEMM column of `types` on every tier against the GEMV of that column alone; fails with
/// every mismatch found.
fn lane_columns_equal_the_gemv(types: impl Iterator<Item = WType> + Clone) {
    let mut failures = Vec::new();
    for tier in Tier::supported() {
        let k = Kernels::new(tier).unwrap();
        for t in types.clone() {
            for n in [96usize, 640, 896, 2048, 4096, 4096 + 640, 8192 + 1024] {
                let w = random_weights(t, ROWS, n);
                for ncols in [2usize, 5, 8, 16, 19, 37] {
                    let a = activations(t, n, ncols);
                    let y = matmul(&k, t, &w, &a, ncols);
                    let per = n / 32;
                    for c in 0..ncols {
                        let yc = matmul(&k, t, &w, &a[c * per..(c + 1) * per], 1);
                        for r in 0..ROWS {
                            if y[c * ROWS + r].to_bits() != yc[r].to_bits() {
                                failures.push(format!(
                                    "{} {} n {n} ncols {ncols}: column {c} row {r}: GEMM {} GEMV {}",
                                    tier.name(),
                                    t.name(),
                                    y[c * ROWS + r],
                                    yc[r]
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
        "{} GEMM values differ from the GEMV, the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

// Two tests over alternate types of the list (every type in one of them), so that the harness
// runs them on two threads (under qemu-aarch64 the whole took half a minute).
#[test]
fn every_tier_equals_the_scalar_tier_bit_for_bit_even_types() {
    equal_to_scalar(QUANT_TYPES.iter().copied().step_by(2));
}

#[test]
fn every_tier_equals_the_scalar_tier_bit_for_bit_odd_types() {
    equal_to_scalar(QUANT_TYPES.iter().copied().skip(1).step_by(2));
}

/// Every tier against the scalar one on `types`; fails with every mismatch found.
fn equal_to_scalar(types: impl Iterator<Item = WType>) {
    let scalar = Kernels::new(Tier::Scalar).unwrap();
    let others: Vec<Tier> = Tier::supported().into_iter().filter(|&t| t != Tier::Scalar).collect();
    let mut failures = Vec::new();
    for t in types {
        // K-quants: one and several packed super-block ranges (19 super-blocks: Qwen2.5's FFN).
        let lens: &[usize] = match t.block_elems() {
            256 => &[256, 2048, 4864],
            64 => &[640, 4096 + 640],
            _ => &[96, 896, 4096 + 640, 8192 + 1024],
        };
        for &n in lens {
            let w = random_weights(t, ROWS, n);
            for ncols in [1usize, 2, 7, 8, 13, 16, 37, 64, 67, 130] {
                let a = activations(t, n, ncols);
                let want = matmul(&scalar, t, &w, &a, ncols);
                for &tier in &others {
                    let k = Kernels::new(tier).unwrap();
                    let got = matmul(&k, t, &w, &a, ncols);
                    for (i, (p, q)) in got.iter().zip(&want).enumerate() {
                        if p.to_bits() != q.to_bits() {
                            failures.push(format!(
                                "{} {} n {n} ncols {ncols}: column {} row {}: {p} scalar {q}",
                                tier.name(),
                                t.name(),
                                i / ROWS,
                                i % ROWS
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} values differ from the scalar tier, the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
