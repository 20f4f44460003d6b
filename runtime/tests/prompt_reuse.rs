//! Prompt reuse (issue 19): a chat's second turn prefills only the new turn, an edited history
//! reuses the longest common prefix, and both give the tokens a fresh session gives; prompt
//! caches on disk load instead of prefilling, and a cache of another model, another context
//! size, a truncated one or one with a flipped byte is refused or rebuilt, never used.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tensorsharp_runtime::prompt_cache::{self, CacheLoad};
use tensorsharp_runtime::{
    ChatTemplate, Conversation, Flow, Generator, Model, RuntimeError, Sampler, SamplerParams, Session, SessionParams,
};
use tensorsharp_testkit::models::{default_model, test_models};

fn session(model: &Arc<Model>, n_ctx: usize) -> Session {
    Session::new(
        Arc::clone(model),
        SessionParams {
            n_ctx,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn greedy(model: &Model) -> Sampler {
    let sp = SamplerParams {
        temperature: 0.0,
        ..Default::default()
    };
    Sampler::new(sp, model.tokenizer().n_vocab()).unwrap()
}

/// Greedy reply after `tokens` through `run_conversation`: (text, stats).
fn reply(s: &mut Session, g: &mut Generator, tokens: &[u32], n: usize) -> (String, tensorsharp_runtime::GenStats) {
    let model = Arc::clone(s.model());
    let mut text = String::new();
    let st = g
        .run_conversation(
            s,
            &mut greedy(&model),
            tokens,
            n,
            &[],
            &AtomicBool::new(false),
            |_, t| {
                text.push_str(t);
                Flow::Continue
            },
        )
        .unwrap();
    (text, st)
}

#[test]
fn second_turn_prefills_only_the_new_turn_and_matches_a_fresh_session() {
    let model = Arc::new(Model::load(default_model()).unwrap());
    let t = ChatTemplate::for_model(&model, None).unwrap();
    let tok = model.tokenizer();
    let mut s = session(&model, 512);
    let mut g = Generator::new(&s, 0);
    let mut conv = Conversation::default();
    conv.push("system", "You are a robot controller. Answer briefly.");
    conv.push("user", "Turn left.");
    let first = t.tokenize(tok, &t.render(&conv).unwrap());
    let (text1, st1) = reply(&mut s, &mut g, &first, 24);
    assert_eq!((st1.cached_tokens, st1.n_prompt), (0, first.len()));
    let held = s.n_past();

    conv.push("assistant", &text1);
    conv.push("user", "Now stop.");
    let second = t.tokenize(tok, &t.render(&conv).unwrap());
    let (text2, st2) = reply(&mut s, &mut g, &second, 24);
    // Everything the session held (the first prompt and the reply) is the start of the second
    // prompt: only the new turn is prefilled.
    assert_eq!(st2.cached_tokens, held, "the session held {held}");
    assert_eq!(st2.n_prompt, second.len() - held);
    let previous_turn_end = t.tokenize(
        tok,
        &t.render(&{
            let mut c = conv.clone();
            c.messages.pop();
            c.add_generation_prompt = false;
            c
        })
        .unwrap(),
    );
    assert!(
        st2.n_prompt <= second.len() - previous_turn_end.len() + 3,
        "{} prefilled",
        st2.n_prompt
    );

    // A fresh session on the whole second prompt gives the same reply.
    let mut fresh = session(&model, 512);
    let mut g2 = Generator::new(&fresh, 0);
    let (text2_fresh, st_fresh) = reply(&mut fresh, &mut g2, &second, 24);
    assert_eq!(st_fresh.cached_tokens, 0);
    assert_eq!(text2, text2_fresh);

    // An edited history: the first user message changes; the system prompt is still reused.
    let mut edited = conv.clone();
    edited.messages[1]["content"] = "Turn right.".into();
    let third = t.tokenize(tok, &t.render(&edited).unwrap());
    let common = second.iter().zip(&third).take_while(|(a, b)| a == b).count();
    let (text3, st3) = reply(&mut s, &mut g, &third, 24);
    assert_eq!(st3.cached_tokens, common);
    assert_eq!(st3.n_prompt, third.len() - common);
    let mut fresh3 = session(&model, 512);
    let mut g3 = Generator::new(&fresh3, 0);
    let (text3_fresh, _) = reply(&mut fresh3, &mut g3, &third, 24);
    assert_eq!(text3, text3_fresh);
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tsharp-pcache-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn prompt_cache_files_load_instead_of_prefill_and_bad_ones_are_never_used() {
    let model = Arc::new(Model::load(default_model()).unwrap());
    let tok = model.tokenizer();
    let dir = scratch("cache");
    let file = dir.join("prompt.cache");
    let prompt = tok.tokenize(
        "You are a helpful robot. Rules: move slowly, stop when asked, report every action. Question: what now?",
        true,
        true,
    );
    // Cold: no file; the state after the prompt and reply is saved.
    let mut s = session(&model, 256);
    let mut g = Generator::new(&s, 0);
    assert_eq!(prompt_cache::load(&mut s, &file).unwrap(), CacheLoad::Missing);
    let (cold, _) = reply(&mut s, &mut g, &prompt, 16);
    prompt_cache::save(&s, &file).unwrap();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a temporary file was left behind"
    );

    // Warm: loaded, only the last prompt token prefilled, the same reply.
    let mut s2 = session(&model, 256);
    let mut g2 = Generator::new(&s2, 0);
    assert!(
        matches!(prompt_cache::load(&mut s2, &file).unwrap(), CacheLoad::Loaded { positions } if positions >= prompt.len())
    );
    assert!(prompt_cache::covers(s2.cached_tokens(), &prompt));
    let (warm, st) = reply(&mut s2, &mut g2, &prompt, 16);
    assert_eq!((st.cached_tokens, st.n_prompt), (prompt.len() - 1, 1));
    assert_eq!(cold, warm);

    // Another context size: refused, naming it; the file stays.
    let mut other_ctx = session(&model, 128);
    match prompt_cache::load(&mut other_ctx, &file) {
        Err(RuntimeError::StateMismatch { what, .. }) => assert_eq!(what, "context size"),
        other => panic!("{other:?}"),
    }
    assert_eq!(other_ctx.n_past(), 0);
    // Another model: refused.
    let q2k = test_models()
        .into_iter()
        .find(|m| m.reference == "smollm2-135m-q2_k")
        .unwrap();
    let other_model = Arc::new(Model::load(&q2k.path).unwrap());
    let mut om = session(&other_model, 256);
    match prompt_cache::load(&mut om, &file) {
        Err(RuntimeError::StateMismatch { what, .. }) => assert_eq!(what, "model"),
        other => panic!("{other:?}"),
    }
    assert!(file.exists());

    // Truncated, a flipped byte, empty, garbage: ignored (rebuilt by the next save), session
    // unchanged, never a crash.
    let good = std::fs::read(&file).unwrap();
    let mut damaged: Vec<(String, Vec<u8>)> = vec![
        ("truncated".into(), good[..good.len() / 2].to_vec()),
        ("empty".into(), Vec::new()),
        ("garbage".into(), b"not a state at all".repeat(100)),
    ];
    for at in [3, 20, 40, 70, good.len() / 2, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        damaged.push((format!("byte {at} flipped"), b));
    }
    for (what, bytes) in damaged {
        std::fs::write(&file, &bytes).unwrap();
        let mut s3 = session(&model, 256);
        match prompt_cache::load(&mut s3, &file) {
            Ok(CacheLoad::Ignored { reason }) => assert!(!reason.is_empty()),
            // A flipped byte in the model fingerprint or a shape field reads as another model
            // or shape: refused, also fine (never used).
            Err(RuntimeError::StateMismatch { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(s3.n_past(), 0, "{what}");
        // Rebuilt: a save replaces it with an intact one.
        let mut g3 = Generator::new(&s3, 0);
        reply(&mut s3, &mut g3, &prompt, 4);
        prompt_cache::save(&s3, &file).unwrap();
        let mut s4 = session(&model, 256);
        assert!(
            matches!(prompt_cache::load(&mut s4, &file).unwrap(), CacheLoad::Loaded { .. }),
            "{what}"
        );
    }
    // A directory where the file should be: an I/O error naming it.
    let e = prompt_cache::load(&mut session(&model, 256), &dir).unwrap_err();
    assert!(e.to_string().contains("prompt cache"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
