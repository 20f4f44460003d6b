//! Weight streaming under a RAM budget (`WeightsMode::Budget`): on every test model, with half
//! and with a tenth of the weights in RAM (the rest read from the file by the prefetch thread),
//! greedy decoding after a prompt prefilled in several chunks gives the same tokens and the same
//! logits bits as the model fully in RAM; a cancelled pass leaves the stream in step for the
//! next; decoding with streaming on touches the heap not once per token. (`tests/streaming.rs`
//! holds the CLI's `--ram-budget` to the same output and to its peak RSS.)

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tensorsharp_runtime::residency::Placement;
use tensorsharp_runtime::{DirectIo, Model, Session, SessionParams, WeightsMode};
use tensorsharp_testkit::alloc::CountingAlloc;
use tensorsharp_testkit::models::test_models;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// The allocator's counters see every thread: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn params() -> SessionParams {
    SessionParams {
        n_ctx: 256,
        // A prompt of 13 or more tokens in three or more chunks: the first two compute no logits (their passes skip
        // the output matrix's units).
        n_batch: 6,
        n_threads: 2,
        ..Default::default()
    }
}

fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in l.iter().enumerate() {
        if v > l[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy tokens and every step's logits.
fn greedy(s: &mut Session, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut logits = vec![s.prefill(prompt).unwrap().to_vec()];
    let mut toks = Vec::new();
    for _ in 0..n {
        let t = argmax(logits.last().unwrap());
        toks.push(t);
        logits.push(s.decode(t).unwrap().to_vec());
    }
    (toks, logits)
}

#[test]
fn streamed_weights_give_the_bits_of_resident_ones() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    // Under emulation (scripts/test.sh's aarch64 phase) a decode step takes about a second: one
    // model, one budget and four steps there; the planner and the streamer are the same Rust on
    // every architecture.
    let arm = cfg!(target_arch = "aarch64");
    let (n_models, shares, steps): (usize, &[u64], usize) = if arm { (1, &[2], 4) } else { (usize::MAX, &[2, 10], 8) };
    for m in test_models().into_iter().take(n_models) {
        let full = Arc::new(Model::load(&m.path).unwrap());
        let prompt = full
            .tokenizer()
            .tokenize("The robot arm moves to the red cup, grips it, and then", true, true);
        assert!(prompt.len() > 12, "{}", prompt.len());
        let mut s = Session::new(Arc::clone(&full), params()).unwrap();
        let want = greedy(&mut s, &prompt, steps);
        drop(s);
        let file_len = std::fs::metadata(&m.path).unwrap().len();
        for &share in shares {
            let model = Arc::new(Model::load_opts(&m.path, WeightsMode::Budget(file_len / share), None).unwrap());
            let r = model.residency().expect("streams");
            assert!(r.ram_bytes() <= file_len / share);
            assert!(r.streamed_bytes_per_token() > 0);
            let streamed = r
                .placements
                .iter()
                .filter(|p| matches!(p, Placement::Stream { .. }))
                .count();
            // At half the file the reads go around the page cache (O_DIRECT, where the file
            // system takes it), at a tenth through it: the same bits either way.
            let direct = share == 2;
            let p = SessionParams {
                direct_io: if direct { DirectIo::On } else { DirectIo::Off },
                ..params()
            };
            let mut s = Session::new(Arc::clone(&model), p).unwrap();
            let o_direct = s.streams_direct() == Some(true);
            if direct && !o_direct && s.warnings().is_empty() {
                failures.push(format!("{} at 1/{share}: no O_DIRECT and no warning", m.reference));
            }
            let got = greedy(&mut s, &prompt, steps);
            if got.0 != want.0 {
                failures.push(format!(
                    "{} at 1/{share}: tokens {:?} != {:?}",
                    m.reference, got.0, want.0
                ));
            } else if got.1 != want.1 {
                failures.push(format!("{} at 1/{share}: logits differ", m.reference));
            }
            // A pass cancelled part-way (before its first layer), then the same prompt again.
            s.reset();
            s.cancel_flag().store(true, Ordering::Relaxed);
            assert!(s.prefill(&prompt).is_err());
            s.clear_cancel();
            s.reset();
            let again = greedy(&mut s, &prompt, 2);
            if again.0[..] != want.0[..2] {
                failures.push(format!(
                    "{} at 1/{share}: after a cancelled pass {:?}",
                    m.reference, again.0
                ));
            }
            eprintln!(
                "{} at 1/{share} of the file in RAM ({}): {streamed} matrices streamed, {:.1} MiB read per token, same tokens: {}",
                m.reference,
                if o_direct { "O_DIRECT" } else { "page cache" },
                r.streamed_bytes_per_token() as f64 / 1048576.0,
                got.0 == want.0
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn decoding_with_streaming_touches_the_heap_not_once() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = &test_models()[0];
    let file_len = std::fs::metadata(&m.path).unwrap().len();
    let model = Arc::new(Model::load_opts(&m.path, WeightsMode::Budget(file_len / 2), None).unwrap());
    assert!(model.residency().is_some());
    let mut s = Session::new(Arc::clone(&model), params()).unwrap();
    let prompt = model.tokenizer().tokenize("Hello, robot", true, true);
    let mut t = argmax(s.prefill(&prompt).unwrap());
    for _ in 0..4 {
        t = argmax(s.decode(t).unwrap()); // warm-up
    }
    // 32 tokens (8 under emulation, where each takes about a second).
    let n = if cfg!(target_arch = "aarch64") { 8 } else { 32 };
    ALLOC.start();
    for _ in 0..n {
        t = argmax(s.decode(t).unwrap());
    }
    let heap = ALLOC.stop();
    assert_eq!(
        heap.allocs + heap.reallocs + heap.frees,
        0,
        "heap calls while decoding {n} tokens with streaming: {heap:?}"
    );
}
