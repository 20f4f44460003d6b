//! After load, inference never touches the heap: a counting global allocator (every thread,
//! workers included) sees 0 allocations, 0 reallocations and 0 frees while a session decodes 256
//! tokens with a sampling chain using every option and stop strings, detokenizing into a caller
//! buffer, and then processes a second prompt (prefill + decode) in the same session.
//! Also here, because they need the allocator's view: an over-budget plan is refused before the
//! arena is allocated, and cancellation from another thread returns within a layer or so.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tensorsharp_runtime::{Generator, Model, RuntimeError, Sampler, SamplerParams, Session, SessionParams, StopReason};
use tensorsharp_testkit::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// The tests of this file share the global counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A caller-owned output buffer, as a firmware callback would have.
struct TextBuf {
    buf: [u8; 1 << 16],
    len: usize,
}

impl TextBuf {
    fn push(&mut self, s: &str) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
    }
}

fn zero_alloc_for(path: &std::path::Path) {
    let model = Arc::new(Model::load(path).unwrap());
    let mut session = Session::new(
        Arc::clone(&model),
        SessionParams {
            n_ctx: 1024,
            n_batch: 32,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let sp = SamplerParams {
        temperature: 0.9,
        top_k: 50,
        top_p: 0.92,
        min_p: 0.02,
        repeat_penalty: 1.1,
        presence_penalty: 0.2,
        frequency_penalty: 0.1,
        penalty_last_n: 64,
        seed: 1234,
    };
    let mut sampler = Sampler::new(sp, model.tokenizer().n_vocab()).unwrap();
    // Stop strings that will not occur, so the loop runs its full length, but are checked at
    // every token.
    let stops = vec!["<<never-1>>".to_string(), "\u{2603}\u{2603}\u{2603}".to_string()];
    let mut generator = Generator::new(&session, 16);
    let tok = model.tokenizer();
    let prompt1 = tok.tokenize("Once upon a time, in a small village by the sea,", true, true);
    let prompt2 = tok.tokenize(" Meanwhile, far away in the mountains,", false, true);
    let never = AtomicBool::new(false);
    let mut text = Box::new(TextBuf {
        buf: [0; 1 << 16],
        len: 0,
    });

    // Warm-up: one short generation (first-touch of every buffer, lazily initialised statics).
    generator
        .run(&mut session, &mut sampler, &prompt1, 8, &stops, &never, |s| {
            text.push(s)
        })
        .unwrap();
    session.reset();
    sampler.reset();
    text.len = 0;

    ALLOC.start();
    // 256 decoded tokens in total; an end-of-generation token ends a run early, so continue with
    // the second prompt's text until 256 tokens were decoded.
    let mut decoded = 0;
    let mut runs = 0;
    let mut prompt: &[u32] = &prompt1;
    while decoded < 256 {
        let st = generator
            .run(&mut session, &mut sampler, prompt, 256 - decoded, &stops, &never, |s| {
                text.push(s)
            })
            .unwrap();
        decoded += st.n_generated;
        runs += 1;
        assert!(runs < 64, "generation keeps ending at once");
        assert!(
            !matches!(st.reason, StopReason::StopString(_) | StopReason::Cancelled),
            "{:?}",
            st.reason
        );
        prompt = &prompt2;
    }
    // A second prompt in the same session: prefill + decode.
    let st = generator
        .run(&mut session, &mut sampler, &prompt2, 32, &stops, &never, |s| {
            text.push(s)
        })
        .unwrap();
    let heap = ALLOC.stop();
    let (a, r, f) = (heap.allocs, heap.reallocs, heap.frees);
    eprintln!(
        "{}: {decoded} + {} tokens in {runs} + 1 runs, {} bytes of text: {a} allocations, {r} reallocations, {f} frees",
        path.display(),
        st.n_generated,
        text.len
    );
    assert!(text.len > 0);
    assert_eq!((a, r, f), (0, 0, 0), "heap activity during inference");
}

#[test]
fn decode_and_second_prompt_allocate_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let models = common::test_models();
    for r in ["smollm2-135m-q4_1", "gemma3-270m-q4_k_m"] {
        let m = models.iter().find(|m| m.reference == r).unwrap();
        zero_alloc_for(&m.path);
    }
}

/// A chat turn (issue 19): the conversation is rendered and tokenized per turn (that allocates),
/// then the turn itself — prefix reuse, prefill of the new turn, up to 64 decoded tokens —
/// allocates nothing, on three turns after a warm-up.
#[test]
fn a_chat_turn_allocates_nothing_while_it_runs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = Arc::new(Model::load(common::default_model()).unwrap());
    let mut session = Session::new(
        Arc::clone(&model),
        SessionParams {
            n_ctx: 1024,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let sp = SamplerParams {
        temperature: 0.8,
        seed: 7,
        ..Default::default()
    };
    let mut sampler = Sampler::new(sp, model.tokenizer().n_vocab()).unwrap();
    let mut generator = Generator::new(&session, 0);
    let template = tensorsharp_runtime::ChatTemplate::for_model(&model, None).unwrap();
    let mut conv = tensorsharp_runtime::Conversation::default();
    conv.push("system", "You are a robot arm controller. Answer in one sentence.");
    conv.push("user", "What can you do?");
    let never = AtomicBool::new(false);
    let mut text = Box::new(TextBuf {
        buf: [0; 1 << 16],
        len: 0,
    });
    // Warm-up (first-touch of every buffer, lazily initialised statics), as above.
    let warm = template.tokenize(model.tokenizer(), &template.render(&conv).unwrap());
    generator
        .run_conversation(&mut session, &mut sampler, &warm, 4, &[], &never, |_, _| {
            tensorsharp_runtime::Flow::Continue
        })
        .unwrap();
    session.reset();
    let mut replies = Vec::new();
    for turn in 0..3 {
        let tokens = template.tokenize(model.tokenizer(), &template.render(&conv).unwrap());
        text.len = 0;
        ALLOC.start();
        let st = generator
            .run_conversation(&mut session, &mut sampler, &tokens, 64, &[], &never, |_, s| {
                text.push(s);
                tensorsharp_runtime::Flow::Continue
            })
            .unwrap();
        let heap = ALLOC.stop();
        eprintln!(
            "turn {turn}: {} prompt tokens prefilled, {} cached, {} generated: {} allocations, {} reallocations, {} frees",
            st.n_prompt, st.cached_tokens, st.n_generated, heap.allocs, heap.reallocs, heap.frees
        );
        assert_eq!((heap.allocs, heap.reallocs, heap.frees), (0, 0, 0), "turn {turn}");
        if turn > 0 {
            assert!(st.cached_tokens > 0, "turn {turn} reused nothing");
        }
        let reply = String::from_utf8_lossy(&text.buf[..text.len]).into_owned();
        conv.push("assistant", &reply);
        conv.push("user", "And then?");
        replies.push(reply);
    }
}

#[test]
fn over_budget_plan_is_refused_before_the_arena_is_allocated() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = &common::test_models()[0];
    let model = Arc::new(Model::load(&m.path).unwrap());
    let params = SessionParams {
        n_ctx: 8192,
        n_threads: 2,
        ram_budget: Some(150 << 20),
        ..Default::default()
    };
    let plan = Session::plan_for(&model, &params).unwrap();
    assert!(plan.total() > 150 << 20);
    ALLOC.reset_largest();
    let err = Session::new(Arc::clone(&model), params).unwrap_err();
    let largest = ALLOC.largest();
    let msg = err.to_string();
    eprintln!("{msg} (largest allocation while refusing: {largest} bytes)");
    assert!(
        matches!(err, RuntimeError::OverBudget { needed, budget, .. } if needed == plan.total() && budget == 150 << 20)
    );
    assert!(
        msg.contains("150.0 MiB") && msg.contains("over by") && msg.contains("--ctx"),
        "{msg}"
    );
    // The KV cache alone is 180 MiB: nothing near that size was allocated.
    assert!(largest < 8 << 20, "allocated {largest} bytes before refusing");
    // The same plan fits with a smaller context, as the message says.
    let fits: usize = msg
        .split("--ctx ")
        .nth(2)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let ok = SessionParams {
        n_ctx: fits,
        n_threads: 2,
        ram_budget: Some(150 << 20),
        ..Default::default()
    };
    Session::new(model, ok).unwrap();
}

#[test]
fn cancel_from_another_thread_returns_within_a_token() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = &common::test_models()[0];
    let model = Arc::new(Model::load(&m.path).unwrap());
    let mut session = Session::new(
        Arc::clone(&model),
        SessionParams {
            n_ctx: 2048,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy(), model.tokenizer().n_vocab()).unwrap();
    let mut generator = Generator::new(&session, 0);
    let prompt = model
        .tokenizer()
        .tokenize("The history of the city of Paris", true, true);
    let never = AtomicBool::new(false);
    // Time one decode step for comparison.
    let st = generator
        .run(&mut session, &mut sampler, &prompt, 16, &[], &never, |_| {})
        .unwrap();
    let per_token = st.gen_secs / (st.n_generated.max(2) - 1) as f64;
    session.reset();

    let mut latencies = Vec::new();
    for delay_ms in [30u64, 75, 140] {
        let flag = session.cancel_flag();
        let set_at = Arc::new(Mutex::new(None::<Instant>));
        let set_at2 = Arc::clone(&set_at);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay_ms));
            *set_at2.lock().unwrap() = Some(Instant::now());
            flag.store(true, Ordering::SeqCst);
        });
        let st = generator
            .run(&mut session, &mut sampler, &prompt, 1000, &[], &never, |_| {})
            .unwrap();
        let returned = Instant::now();
        canceller.join().unwrap();
        assert_eq!(st.reason, StopReason::Cancelled);
        let set = set_at.lock().unwrap().expect("cancel was set");
        latencies.push((returned - set).as_secs_f64());
        // Cancelled stays raised until cleared; the session is usable after reset.
        assert!(matches!(session.decode(1), Err(RuntimeError::Cancelled)));
        session.reset();
    }
    let worst = latencies.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "cancel-to-return: {:?} ms (one decode step: {:.2} ms)",
        latencies.iter().map(|l| (l * 1e4).round() / 10.0).collect::<Vec<_>>(),
        per_token * 1e3
    );
    // Checked between layers, so well under a token; allow for a loaded CI machine.
    assert!(
        worst < per_token.max(0.005) * 3.0,
        "worst cancel latency {worst}s vs {per_token}s per token"
    );
}
