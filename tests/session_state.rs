//! Saved state and the KV cache's sequence operations. A state round-trips bit for bit; one
//! from another model, context size or KV type, or a damaged one, is refused with a specific
//! error and leaves the session unchanged. Truncating, keeping a common prefix, copying a
//! prefix from another session (with another context size) and restoring a prefix of a saved
//! state all continue exactly as if the kept tokens had been processed in place.

mod common;

use std::sync::Arc;

use tensorsharp_runtime::{KvType, Model, RuntimeError, Session, SessionParams};
use tensorsharp_testkit::compare::bit_equal;

fn params(n_ctx: usize) -> SessionParams {
    SessionParams {
        n_ctx,
        n_batch: 32,
        n_threads: 2,
        ..Default::default()
    }
}

fn session(model: &Arc<Model>, p: SessionParams) -> Session {
    Session::new(Arc::clone(model), p).unwrap()
}

/// Feeds `tokens` one at a time (every step the same one-token kernels, whatever came before)
/// and returns the logits after each.
fn feed(s: &mut Session, tokens: &[u32]) -> Vec<Vec<f32>> {
    tokens.iter().map(|&t| s.decode(t).unwrap().to_vec()).collect()
}

fn tokens(model: &Model, text: &str) -> Vec<u32> {
    model.tokenizer().tokenize(text, false, false)
}

#[test]
fn state_round_trips_and_foreign_or_damaged_states_are_refused() {
    let model = Arc::new(Model::load(common::default_model()).unwrap());
    let prompt = tokens(&model, "A robot arm picks up the red cube and puts it on the shelf.");
    let mut a = session(&model, params(256));
    a.prefill(&prompt).unwrap();
    let mut buf = vec![0u8; a.state_size()];
    // Too small: the needed size, nothing else.
    match a.save_state(&mut buf[..10]) {
        Err(RuntimeError::BufferTooSmall { needed, got: 10, .. }) => assert_eq!(needed, buf.len()),
        r => panic!("{r:?}"),
    }
    assert_eq!(a.save_state(&mut buf).unwrap(), buf.len());

    let mut b = session(&model, params(256));
    b.load_state(&buf).unwrap();
    assert_eq!(b.n_past(), prompt.len());
    assert!(bit_equal(a.logits(), b.logits()));
    assert_eq!(b.cached_tokens(), &prompt[..]);
    let next = tensorsharp_runtime::sampler::argmax(a.logits());
    let after_a = a.decode(next).unwrap().to_vec();
    assert!(bit_equal(&after_a, b.decode(next).unwrap()));

    // Refusals: each names what differs; the session keeps its conversation.
    let mut other_ctx = session(&model, params(512));
    other_ctx.prefill(&prompt[..3]).unwrap();
    match other_ctx.load_state(&buf) {
        Err(RuntimeError::StateMismatch {
            what: "context size",
            saved,
            here,
        }) => {
            assert_eq!((saved.as_str(), here.as_str()), ("256", "512"));
        }
        r => panic!("another context size: {r:?}"),
    }
    assert_eq!(other_ctx.n_past(), 3);
    let mut other_kv = session(
        &model,
        SessionParams {
            kv_type: KvType::Q8_0,
            ..params(256)
        },
    );
    match other_kv.load_state(&buf) {
        Err(RuntimeError::StateMismatch {
            what: "KV cache type",
            saved,
            here,
        }) => {
            assert_eq!((saved.as_str(), here.as_str()), ("f16", "q8_0"));
        }
        r => panic!("another KV type: {r:?}"),
    }
    // The 2-bit requantization of the same model: the same shapes, other weights.
    let q2 = common::shared_models_dir().join("SmolLM2-135M-Instruct.Q2_0.gguf");
    let other_model = Arc::new(Model::load(q2).unwrap());
    assert_ne!(other_model.fingerprint(), model.fingerprint());
    let mut foreign = session(&other_model, params(256));
    match foreign.load_state(&buf) {
        Err(RuntimeError::StateMismatch { what: "model", .. }) => {}
        r => panic!("another model: {r:?}"),
    }
    let mut damaged = buf.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    let mut c = session(&model, params(256));
    for (what, bytes) in [
        ("damaged", &damaged[..]),
        ("truncated", &buf[..buf.len() - 1]),
        ("empty", &[][..]),
        ("header only", &buf[..64]),
    ] {
        match c.load_state(bytes) {
            Err(RuntimeError::CorruptState(msg)) => assert!(!msg.is_empty()),
            r => panic!("{what}: {r:?}"),
        }
        assert_eq!(c.n_past(), 0, "{what}");
    }
}

#[test]
fn prefix_operations_continue_exactly() {
    let model = Arc::new(Model::load(common::default_model()).unwrap());
    let shared = tokens(&model, "The robot vacuum maps the kitchen");
    let tail = tokens(&model, " and then it docks to charge.");
    let other = tokens(&model, ", the hallway and the garage.");
    assert_ne!(tail[0], other[0]);
    let whole: Vec<u32> = shared.iter().chain(&tail).copied().collect();

    // The reference: the shared prefix, then the tail, in place.
    let mut reference = session(&model, params(128));
    feed(&mut reference, &shared);
    let want = feed(&mut reference, &tail);
    assert_eq!(reference.cached_tokens(), &whole[..]);
    let mut state = vec![0u8; reference.state_size()];
    reference.save_state(&mut state).unwrap();

    let check = |name: &str, s: &mut Session| {
        assert_eq!(s.n_past(), shared.len(), "{name}");
        let got = feed(s, &tail);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(bit_equal(g, w), "{name}: logits differ at tail token {i}");
        }
        assert_eq!(s.cached_tokens(), &whole[..], "{name}");
    };

    // Prompt caching: a session that went another way keeps the common prefix.
    let mut cached = session(&model, params(128));
    feed(&mut cached, &shared);
    feed(&mut cached, &other);
    assert_eq!(cached.keep_common_prefix(&whole), shared.len());
    check("keep_common_prefix", &mut cached);
    // The whole prompt cached: one token is left to process for fresh logits.
    assert_eq!(cached.keep_common_prefix(&whole), whole.len() - 1);

    // Truncate.
    let mut t = session(&model, params(128));
    feed(&mut t, &whole);
    t.truncate(shared.len());
    check("truncate", &mut t);

    // A prefix copied in from another session with another context size.
    let mut copy = session(&model, params(512));
    copy.copy_prefix_from(&reference, shared.len()).unwrap();
    check("copy_prefix_from", &mut copy);
    let mut q8 = session(
        &model,
        SessionParams {
            kv_type: KvType::Q8_0,
            ..params(128)
        },
    );
    assert!(matches!(
        q8.copy_prefix_from(&reference, 4),
        Err(RuntimeError::StateMismatch {
            what: "KV cache type",
            ..
        })
    ));

    // A prefix of a saved state.
    let mut restored = session(&model, params(128));
    assert_eq!(restored.load_state_prefix(&state, shared.len()).unwrap(), shared.len());
    check("load_state_prefix", &mut restored);
}
