//! The GPU backend's decode program (`gpu::program`), run on the CPU with the device kernels'
//! arithmetic (`gpu::host::HostBackend`) through the session's backend hook, against the
//! session's own forward pass on every architecture: after a prompt (prefilled token by token
//! on the backend), each greedy step's logits agree to cosine >= 0.999 and the greedy tokens are
//! the same up to near-ties. A wrong buffer, bias, norm, RoPE setting or window in the program
//! (which the CUDA backend launches kernel by kernel) fails here, without a GPU. Also: what the
//! session refuses while a backend holds its KV cache, and a cancelled pass.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tensorsharp_runtime::gpu::host::HostBackend;
use tensorsharp_runtime::gpu::program::DecodeProgram;
use tensorsharp_runtime::{Model, Session, SessionParams};
use tensorsharp_testkit::cases::Cases;
use tensorsharp_testkit::compare::{argmax, cosine};
use tensorsharp_testkit::models::test_models;

/// The CPU session computes with f32 activations, as the device program does (by default the
/// CPU quantizes them to 8 bits for the integer dot products, as llama.cpp does: cosine
/// 0.9966 against the program on SmolLM2 and Gemma 3 at some steps).
fn params(n_seq: usize) -> SessionParams {
    SessionParams {
        n_ctx: 128,
        n_seq,
        n_threads: 2,
        f32_activations: true,
        ..Default::default()
    }
}

/// Greedy steps after `prompt`, following `cpu`'s tokens: each step's (cpu, backend) logits.
fn steps(cpu: &mut Session, dev: &mut Session, prompt: &[u32], n: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut out = vec![(
        cpu.prefill(prompt).unwrap().to_vec(),
        dev.prefill(prompt).unwrap().to_vec(),
    )];
    for _ in 0..n {
        let t = argmax(&out.last().unwrap().0) as u32;
        out.push((cpu.decode(t).unwrap().to_vec(), dev.decode(t).unwrap().to_vec()));
    }
    out
}

#[test]
fn the_device_program_computes_the_model_on_every_architecture() {
    // The program and its reference are architecture-independent Rust over the kernels'
    // dequantization (held to the x86 bits on aarch64 by the kernel tests): under emulation,
    // where a step of the reference takes seconds, the session hook is checked by the test below.
    if cfg!(target_arch = "aarch64") {
        return;
    }
    let n_models = 3;
    let mut cases = Cases::new("device program vs the session's forward pass");
    for m in test_models().into_iter().take(n_models) {
        let model = Arc::new(Model::load(&m.path).unwrap());
        let program = DecodeProgram::new(&model).unwrap();
        assert_eq!(program.unsupported_type(), None, "{}", m.reference);
        let prompt = model.tokenizer().tokenize("The robot arm moves", true, true);
        let mut cpu = Session::new(Arc::clone(&model), params(1)).unwrap();
        let mut dev = Session::new(Arc::clone(&model), params(1)).unwrap();
        dev.set_backend(Box::new(HostBackend::new(Arc::clone(&model), 128).unwrap()))
            .unwrap();
        assert!(dev.backend_name().is_some());
        let got = steps(&mut cpu, &mut dev, &prompt, 3);
        for (i, (c, d)) in got.iter().enumerate() {
            let cos = cosine(c, d);
            cases.expect(format!("{} step {i}", m.reference), cos >= 0.999, || {
                format!("logits cosine {cos:.6}")
            });
            let (tc, td) = (argmax(c), argmax(d));
            // Equal greedy tokens, unless the CPU's top two are within the difference.
            let tie = (c[tc] - c[td]).abs() <= 0.05 * c[tc].abs().max(1.0);
            cases.expect(format!("{} step {i} token", m.reference), tc == td || tie, || {
                format!("greedy {td} on the device, {tc} on the CPU")
            });
            eprintln!("{} step {i}: cosine {cos:.6}, tokens {tc} / {td}", m.reference);
        }
        assert_eq!(dev.cached_tokens(), cpu.cached_tokens());
        // A cancelled pass leaves the conversation as it was; the next one continues it.
        let n = dev.n_past();
        dev.cancel_flag().store(true, Ordering::Relaxed);
        assert!(dev.decode(1).is_err());
        assert_eq!(dev.n_past(), n);
        dev.clear_cancel();
        // Truncating and running the last token again gives the logits it gave before.
        let last = *dev.cached_tokens().last().unwrap();
        dev.truncate(n - 1);
        let again = dev.decode(last).unwrap().to_vec();
        let before = &got.last().unwrap().1;
        cases.expect(
            format!("{} after truncate", m.reference),
            cosine(&again, before) > 0.99999,
            || "the same position computed again differs".into(),
        );
        // The KV cache is on the device: state and prefix copies are refused, not wrong.
        let mut buf = vec![0u8; 1 << 20];
        assert!(dev.save_state(&mut buf).is_err());
        assert!(cpu.copy_prefix_from(&dev, 1).is_err());
    }
    cases.finish();
}

#[test]
fn a_backend_takes_one_sequence_and_its_context_and_unsupported_types_are_named() {
    let ms = test_models();
    let model = Arc::new(Model::load(&ms[0].path).unwrap());
    let mut two = Session::new(Arc::clone(&model), params(2)).unwrap();
    let e = two
        .set_backend(Box::new(HostBackend::new(Arc::clone(&model), 128).unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("one sequence"), "{e}");
    let mut one = Session::new(Arc::clone(&model), params(1)).unwrap();
    let e = one
        .set_backend(Box::new(HostBackend::new(Arc::clone(&model), 64).unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("64 positions"), "{e}");
    // The 2-bit files use types the device kernels do not implement (the CPU runs them).
    for m in ms.iter().filter(|m| m.reference.contains("q2")) {
        let model = Model::load(&m.path).unwrap();
        let t = DecodeProgram::new(&model).unwrap().unsupported_type();
        assert!(t.is_some(), "{}", m.reference);
        eprintln!("{}: {:?} has no device kernel", m.reference, t.unwrap());
    }
}
