//! Structured output (issue 19): a robot-command schema (an `action` enum, a `speed` in a
//! range, an optional `target` string) — 50 generations at temperature 1.0 on each of the three
//! registry models all parse as JSON and validate (checked by the Python `jsonschema` package,
//! `tests/tools/validate_json.py`); a GBNF grammar holds the same way; bad schemas and grammars
//! are errors, not panics. Prints the heap calls per constrained token, and checks that the same
//! loop unconstrained allocates nothing. The speed with and without the schema is measured by
//! `bench/structured`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tensorsharp_runtime::structured::ConstraintFactory;
use tensorsharp_runtime::{
    ChatTemplate, Conversation, Flow, Generator, Model, Sampler, SamplerParams, Session, SessionParams,
};
use tensorsharp_testkit::alloc::CountingAlloc;
use tensorsharp_testkit::models::test_models;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// The allocator's counters see every thread: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "action": {"type": "string", "enum": ["move", "stop", "grip", "release", "rotate"]},
    "speed": {"type": "number", "minimum": 0, "maximum": 1.5},
    "target": {"type": "string", "maxLength": 40}
  },
  "required": ["action", "speed"],
  "additionalProperties": false
}"#;

struct Run {
    texts: Vec<String>,
    tokens: usize,
    secs: f64,
    heap_calls: usize,
    /// Heap calls of each generation.
    per_run: Vec<usize>,
}

/// `n` generations at temperature 1.0 (seeds 0..n) after a chat prompt, constrained by `make`.
fn generate(
    model: &Arc<Model>,
    n: usize,
    max_tokens: usize,
    constrained: bool,
    grammar: Option<&str>,
    full: bool,
) -> Run {
    let t = ChatTemplate::for_model(model, None).unwrap();
    let mut conv = Conversation::default();
    conv.push("system", "You turn spoken commands into robot commands, as JSON.");
    conv.push("user", "Pick up the red cup from the table, slowly.");
    let prompt = t.tokenize(model.tokenizer(), &t.render(&conv).unwrap());
    let mut s = Session::new(
        Arc::clone(model),
        SessionParams {
            n_ctx: 512,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut g = Generator::new(&s, 0);
    let factory = ConstraintFactory::new(model).unwrap();
    let mut run = Run {
        texts: Vec::new(),
        tokens: 0,
        secs: 0.0,
        heap_calls: 0,
        per_run: Vec::new(),
    };
    for seed in 0..n as u64 {
        // `full`: the whole distribution (no top-k / top-p / min-p cut), the hardest case for
        // the constraint; otherwise the default chain (top-k 40, top-p 0.95, min-p 0.05).
        let sp = if full {
            SamplerParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..Default::default()
            }
        } else {
            SamplerParams {
                temperature: 1.0,
                seed,
                ..Default::default()
            }
        };
        let mut sampler = Sampler::new(sp, model.tokenizer().n_vocab()).unwrap();
        if constrained {
            sampler.set_constraint(Some(match grammar {
                Some(gr) => factory.grammar(gr).unwrap(),
                None => factory.json_schema(SCHEMA).unwrap(),
            }));
        }
        let mut text = String::with_capacity(4096);
        let t0 = Instant::now();
        ALLOC.start();
        let st = g
            .run_conversation(
                &mut s,
                &mut sampler,
                &prompt,
                max_tokens,
                &[],
                &AtomicBool::new(false),
                |_, piece| {
                    text.push_str(piece);
                    Flow::Continue
                },
            )
            .unwrap();
        let heap = ALLOC.stop();
        let calls = heap.allocs + heap.reallocs + heap.frees;
        run.per_run.push(calls);
        if seed == 0 {
            // The first generation warms up (first-touch, lazy statics): not counted.
            run.texts.push(text);
            continue;
        }
        run.secs += t0.elapsed().as_secs_f64() - st.prompt_secs;
        run.tokens += st.n_generated;
        run.heap_calls += calls;
        if let Some(e) = sampler.constraint_mut().and_then(|c| c.error()) {
            panic!("seed {seed}: constraint error {e}");
        }
        run.texts.push(text);
    }
    run
}

fn validate(texts: &[String]) {
    let dir = std::env::temp_dir().join(format!("tsharp-structured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("schema.json"), SCHEMA).unwrap();
    std::fs::write(dir.join("out.json"), serde_json::to_string(texts).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/validate_json.py"))
        .arg(dir.join("schema.json"))
        .arg(dir.join("out.json"))
        .output()
        .expect("python3 with jsonschema (scripts/setup.sh installs it)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fifty_robot_commands_per_model_all_validate() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for m in test_models()
        .into_iter()
        .filter(|m| ["smollm2-135m-q4_1", "qwen2.5-coder-0.5b-q4_k_m", "gemma3-270m-q4_k_m"].contains(&m.reference))
    {
        let model = Arc::new(Model::load(&m.path).unwrap());
        let run = generate(&model, 50, 128, true, None, true);
        validate(&run.texts);
        // The same loop without the constraint (default sampler chain, after one warm-up
        // generation) touches the heap not once. What the constraint costs in speed is a
        // measurement, not a test: bench/structured.
        let free = generate(&model, 3, 24, false, None, false);
        eprintln!(
            "{}: 50 of 50 valid (e.g. {}); {:.0} heap calls per constrained token",
            m.reference,
            run.texts[0],
            run.heap_calls as f64 / run.tokens.max(1) as f64
        );
        assert_eq!(
            free.heap_calls, 0,
            "unconstrained generation touched the heap: {:?}",
            free.per_run
        );
    }
}

#[test]
fn a_gbnf_grammar_holds_and_bad_constraints_are_errors() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = Arc::new(Model::load(tensorsharp_testkit::models::default_model()).unwrap());
    let gbnf = "root ::= action \" \" speed\naction ::= \"move\" | \"stop\" | \"grip\"\nspeed ::= \"0.\" [0-9] | \"1.\" [0-4]\n";
    let run = generate(&model, 10, 32, true, Some(gbnf), true);
    for t in &run.texts {
        let (a, s) = t.split_once(' ').unwrap_or_else(|| panic!("{t:?}"));
        assert!(["move", "stop", "grip"].contains(&a), "{t:?}");
        let v: f64 = s.parse().unwrap_or_else(|_| panic!("{t:?}"));
        assert!((0.0..1.5).contains(&v) && s.len() == 3, "{t:?}");
    }
    let f = ConstraintFactory::new(&model).unwrap();
    for bad in ["not json", "{\"type\": \"nonsense-type\"}"] {
        assert!(f.json_schema(bad).is_err(), "{bad}");
    }
    for bad in ["root ::= undefined-rule", "root ::= \"open", "start: ( \"a\""] {
        let e = f.grammar(bad).unwrap_err().to_string();
        assert!(e.contains("grammar"), "{bad}: {e}");
    }
}
