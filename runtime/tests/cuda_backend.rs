//! The CUDA backend (feature `cuda`) as far as this machine can run it, and the model on the GPU
//! where there is one:
//!
//! - NVRTC (the `nvidia-cuda-nvrtc-cu12` wheel that scripts/setup.sh installs; no GPU needed)
//!   compiles the kernels through the backend's own path to a cubin for a Jetson architecture;
//!   the second request comes from the disk cache, and a damaged cache file is compiled again;
//! - without a CUDA driver the backend refuses with a typed error (no panic from `cudarc`);
//! - with a driver (`scripts/gpu-check.sh` on a GPU machine): every test model on the GPU against
//!   the CPU session with f32 activations, greedy equal up to near-ties and a logits cosine of
//!   at least 0.999, with every weight on the device and with a budget of half the weights (the
//!   rest copied per token through the two device slots).

use std::sync::Arc;

use tensorsharp_runtime::gpu::cuda;
use tensorsharp_runtime::{Model, Session, SessionParams};
use tensorsharp_testkit::cases::Cases;
use tensorsharp_testkit::compare::{argmax, cosine};
use tensorsharp_testkit::models::test_models;

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tsharp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn nvrtc_compiles_the_kernels_once_and_the_cache_serves_them_after() {
    assert!(
        cuda::nvrtc_present(),
        "NVRTC not found: scripts/setup.sh installs the nvidia-cuda-nvrtc-cu12 wheel (or set TSHARP_NVRTC)"
    );
    let (major, minor) = cuda::nvrtc_version().unwrap();
    let dir = scratch("kernel-cache");
    let (img, cached) = cuda::kernel_image("sm_87", Some(&dir)).unwrap();
    assert!(!cached);
    assert!(img.starts_with(b"\x7fELF"), "not a cubin");
    for k in ["ts_matvec", "ts_attention_f16", "ts_store_f16", "ts_softcap"] {
        assert!(img.windows(k.len()).any(|w| w == k.as_bytes()), "{k} missing");
    }
    let (again, cached) = cuda::kernel_image("sm_87", Some(&dir)).unwrap();
    assert!(cached, "the second request compiled again");
    assert_eq!(again, img);
    // A damaged cache file is not loaded: compiled again (and the file replaced).
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&file, b"garbage").unwrap();
    let (fixed, cached) = cuda::kernel_image("sm_87", Some(&dir)).unwrap();
    assert!(!cached);
    assert_eq!(fixed, img);
    // Another architecture is another image.
    let (other, _) = cuda::kernel_image("sm_72", Some(&dir)).unwrap();
    assert_ne!(other, img);
    eprintln!(
        "NVRTC {major}.{minor}: {} bytes of sm_87 cubin, cached in {}",
        img.len(),
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn params() -> SessionParams {
    SessionParams {
        n_ctx: 256,
        n_threads: 2,
        f32_activations: true,
        ..Default::default()
    }
}

#[test]
fn the_model_runs_on_the_gpu_as_on_the_cpu_or_the_backend_says_why_not() {
    let models = test_models();
    if !cuda::driver_present() {
        let model = Arc::new(Model::load(&models[0].path).unwrap());
        let e = cuda::CudaBackend::new(model, 256, None, None)
            .err()
            .expect("no driver here");
        assert!(e.to_string().contains("no CUDA driver"), "{e}");
        eprintln!("no CUDA driver on this machine: {e} (the GPU half of this test runs in scripts/gpu-check.sh)");
        return;
    }
    let mut cases = Cases::new("the GPU against the CPU");
    let dir = scratch("gpu-kernels");
    for m in models.iter().take(3) {
        let model = Arc::new(Model::load(&m.path).unwrap());
        let prompt = model
            .tokenizer()
            .tokenize("The robot arm moves to the red cup, grips it, and then", true, true);
        let file_len = std::fs::metadata(&m.path).unwrap().len();
        // Every weight on the device, then half of them (the rest copied per token).
        for (what, budget) in [("full", None), ("half", Some(file_len / 2 + (64 << 20)))] {
            let backend = match cuda::CudaBackend::new(Arc::clone(&model), 256, budget, Some(&dir)) {
                Ok(b) => b,
                Err(e) => {
                    cases.check(format!("{} {what}", m.reference), Err(e));
                    continue;
                }
            };
            let info = backend.info().clone();
            let mut cpu = Session::new(Arc::clone(&model), params()).unwrap();
            let mut gpu = Session::new(Arc::clone(&model), params()).unwrap();
            gpu.set_backend(Box::new(backend)).unwrap();
            let mut l = (
                cpu.prefill(&prompt).unwrap().to_vec(),
                gpu.prefill(&prompt).unwrap().to_vec(),
            );
            for step in 0..16 {
                let cos = cosine(&l.0, &l.1);
                let (tc, tg) = (argmax(&l.0), argmax(&l.1));
                let tie = (l.0[tc] - l.0[tg]).abs() <= 0.05 * l.0[tc].abs().max(1.0);
                let name = format!("{} {what} step {step}", m.reference);
                cases.expect(&name, cos >= 0.999 && (tc == tg || tie), || {
                    format!("cosine {cos:.6}, tokens {tc} (CPU) / {tg} (GPU)")
                });
                let t = tc as u32;
                l = (cpu.decode(t).unwrap().to_vec(), gpu.decode(t).unwrap().to_vec());
            }
            eprintln!(
                "{} {what}: {} on {} (sm_{}{}), {} MiB resident, {:.1} MiB per token",
                m.reference,
                gpu.backend_name().unwrap(),
                info.name,
                info.capability.0,
                info.capability.1,
                info.resident_bytes >> 20,
                info.streamed_bytes_per_token as f64 / 1048576.0
            );
            if what == "half" {
                cases.expect(
                    format!("{} half streams", m.reference),
                    info.streamed_bytes_per_token > 0,
                    || "nothing streamed at half the weights".into(),
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    cases.finish();
}
