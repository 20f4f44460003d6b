//! Dot-product throughput per weight type and kernel tier, in GB/s of weights streamed.
//!
//! Each benchmark is a GEMV (all rows of a ~4 MiB weight matrix against one activation vector),
//! the decode-time shape. `cargo bench -p tensorsharp-kernel-bench --bench dot`; filter with e.g.
//! `-- q4_k/avx512`. Set `TSHARP_BENCH_F32=1` to also measure the f32-activation path. The group
//! `gemv4` is a batched decode step's shape: the same matrix against four activation columns in
//! the GEMV form (each column the bits of a one-column product), on the best tier.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tensorsharp_kernels::{BlockQ8a, Kernels, MatmulForm, Tier, WType};

const N: usize = 2048; // row length
const TARGET_BYTES: usize = 4 << 20;

#[path = "../../../kernels-c/tests/common/mod.rs"]
mod common;
use common::{f16_fields, rng_bytes};

fn weights(t: WType, rows: usize) -> Vec<u8> {
    let rb = t.row_bytes(N).unwrap();
    let mut w = rng_bytes(rb * rows, t as u64);
    match t {
        WType::F32 => {
            for (i, c) in w.chunks_exact_mut(4).enumerate() {
                c.copy_from_slice(&(((i % 17) as f32 - 8.0) / 8.0).to_le_bytes());
            }
        }
        WType::F16 | WType::BF16 => {
            for c in w.chunks_exact_mut(2) {
                c[1] &= 0x3b; // finite, modest exponent for both encodings
            }
        }
        _ => {
            for blk in w.chunks_exact_mut(t.block_bytes()) {
                for &o in f16_fields(t) {
                    blk[o..o + 2].copy_from_slice(&0x2000u16.to_le_bytes()); // ~0.0078
                }
            }
        }
    }
    w
}

fn bench(c: &mut Criterion) {
    let with_f32 = std::env::var_os("TSHARP_BENCH_F32").is_some();
    let x: Vec<f32> = (0..N).map(|i| ((i * 31) % 101) as f32 / 50.0 - 1.0).collect();
    let mut g = c.benchmark_group("gemv");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    for t in WType::ALL {
        let rb = t.row_bytes(N).unwrap();
        let rows = (TARGET_BYTES / rb).max(1);
        let w = weights(t, rows);
        let mut y = vec![0f32; rows];
        g.throughput(Throughput::Bytes((rb * rows) as u64));
        for tier in Tier::supported() {
            let k = Kernels::new(tier).unwrap();
            let id = format!("{}/{}", t.name().to_lowercase(), tier.name());
            if t.uses_q8a() {
                let mut xq = vec![BlockQ8a::default(); N / 32];
                k.quantize_q8a(&x, &mut xq).unwrap();
                g.bench_function(BenchmarkId::new("q8a", &id), |b| {
                    b.iter(|| k.matmul_q8a(t, &w, rows, &xq, 1, &mut y).unwrap())
                });
            }
            if with_f32 || !t.uses_q8a() {
                g.bench_function(BenchmarkId::new("f32", &id), |b| {
                    b.iter(|| k.matmul_f32(t, &w, rows, &x, 1, &mut y).unwrap())
                });
            }
        }
    }
    g.finish();

    // Four sequences decoded together: throughput still in weight bytes per second (each weight
    // read once for the four columns).
    let mut g = c.benchmark_group("gemv4");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    let tier = Tier::best();
    let k = Kernels::new(tier).unwrap();
    for t in WType::ALL.into_iter().filter(|t| t.uses_q8a()) {
        let rb = t.row_bytes(N).unwrap();
        let rows = (TARGET_BYTES / rb).max(1);
        let w = weights(t, rows);
        let mut y = vec![0f32; rows * 4];
        let mut xq = vec![BlockQ8a::default(); 4 * N / 32];
        for (c, col) in xq.chunks_exact_mut(N / 32).enumerate() {
            let xc: Vec<f32> = x.iter().map(|v| v * (1.0 + c as f32 / 8.0)).collect();
            k.quantize_q8a(&xc, col).unwrap();
        }
        g.throughput(Throughput::Bytes((rb * rows) as u64));
        let id = format!("{}/{}", t.name().to_lowercase(), tier.name());
        g.bench_function(BenchmarkId::new("q8a", &id), |b| {
            b.iter(|| {
                k.matmul_q8a_form(MatmulForm::Gemv, t, &w, rows, &xq, 4, &mut y)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
