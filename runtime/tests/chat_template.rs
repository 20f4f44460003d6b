//! Chat templates (issue 19): every model's own template renders exactly what Jinja2 renders
//! (set up as transformers' `apply_chat_template`) on the `chat[]` references of
//! shared/reference and on multi-turn, system, tool-definition, tool-call and tool-response
//! conversations (`tests/data/chat_cases.json`, made by `tests/tools/make_chat_cases.py`); the
//! built-ins render exactly what llama.cpp's `llm_chat_apply_template` writes; a model without a
//! template (Gemma 3) gets the Gemma built-in; a failing template names its line.

use std::collections::HashMap;

use serde_json::Value;
use tensorsharp_models::GgufFile;
use tensorsharp_runtime::chat::builtin;
use tensorsharp_runtime::{ChatTemplate, Conversation, RuntimeError, Tokenizer};
use tensorsharp_testkit::cases::Cases;
use tensorsharp_testkit::models::{reference, test_models};

fn cases() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat_cases.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Each test model's GGUF and tokenizer, by reference name.
fn models() -> HashMap<&'static str, (GgufFile, Tokenizer)> {
    test_models()
        .into_iter()
        .map(|m| {
            let f = GgufFile::open(&m.path).unwrap();
            let tok = Tokenizer::from_gguf(&f).unwrap();
            (m.reference, (f, tok))
        })
        .collect()
}

fn conversation(case: &Value) -> Conversation {
    let mut c = case.clone();
    let o = c.as_object_mut().unwrap();
    o.remove("rendered");
    o.remove("error");
    o.remove("model");
    o.remove("builtin");
    Conversation::from_value(c).unwrap()
}

#[test]
fn each_models_template_renders_as_jinja2() {
    let models = models();
    let data = cases();
    let mut cases = Cases::new("template renderings");
    // The references of shared/reference (every model with a template; Gemma 3 has none).
    let mut n_ref = 0;
    for m in test_models() {
        for (i, case) in reference(&m)["chat"].as_array().unwrap().iter().enumerate() {
            let (f, tok) = &models[m.reference];
            let got = ChatTemplate::for_file(f, tok, None).and_then(|t| t.render(&conversation(case)));
            let want = case["rendered"].as_str().unwrap();
            cases.expect(
                format!("{} reference chat[{i}]", m.reference),
                got.as_deref().ok() == Some(want),
                || format!("got {got:?}\nwant {want:?}"),
            );
            n_ref += 1;
        }
    }
    assert!(n_ref >= 4, "{n_ref} chat references");
    for (i, case) in data["template_cases"].as_array().unwrap().iter().enumerate() {
        let name = case["model"].as_str().unwrap();
        let (f, tok) = &models[name];
        let got = ChatTemplate::for_file(f, tok, None).and_then(|t| t.render(&conversation(case)));
        match (case.get("rendered"), &got) {
            (Some(want), Ok(text)) => cases.expect(format!("{name} case {i}"), text == want.as_str().unwrap(), || {
                format!("got  {text:?}\nwant {want}")
            }),
            // Jinja2 refuses it (None + str): so must we, with a template error and its line.
            (None, Err(RuntimeError::Template { line: Some(_), .. })) => {}
            _ => cases.expect(format!("{name} case {i}"), false, || {
                format!("got {got:?}, Jinja2: {:?}", case.get("rendered").or(case.get("error")))
            }),
        }
    }
    cases.finish();
}

#[test]
fn builtins_render_as_llama_cpp() {
    let data = cases();
    let mut cases = Cases::new("built-in renderings");
    for (i, case) in data["builtin_cases"].as_array().unwrap().iter().enumerate() {
        let name = case["builtin"].as_str().unwrap();
        let src = builtin::BUILTINS.iter().find(|(n, _)| *n == name).unwrap().1;
        let got = ChatTemplate::new(name, src, "", "").and_then(|t| t.render(&conversation(case)));
        let want = case["rendered"].as_str().unwrap();
        cases.expect(format!("{name} case {i}"), got.as_deref().ok() == Some(want), || {
            format!("got  {got:?}\nwant {want:?}")
        });
    }
    assert!(cases.len() >= 32);
    cases.finish();
}

#[test]
fn a_model_without_template_gets_its_familys_builtin() {
    let models = models();
    let (f, tok) = &models["gemma3-270m-q4_k_m"];
    assert!(f.get_str("tokenizer.chat_template").unwrap().is_none());
    let t = ChatTemplate::for_file(f, tok, None).unwrap();
    assert_eq!(t.name(), "gemma");
    let conv = Conversation::from_json(
        r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}"#,
    )
    .unwrap();
    let text = t.render(&conv).unwrap();
    assert_eq!(
        text,
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
    // The tokenizer adds <bos>; the template does not write it twice.
    let ids = t.tokenize(tok, &text);
    assert_eq!(ids[0], tok.bos().unwrap());
    assert_ne!(ids[1], tok.bos().unwrap());
    // A named built-in or a file overrides the model's own.
    let (sf, stok) = &models["smollm2-135m-q4_1"];
    assert_eq!(
        ChatTemplate::for_file(sf, stok, Some("llama3")).unwrap().name(),
        "llama3"
    );
    let file = std::env::temp_dir().join(format!("tsharp-tmpl-{}.jinja", std::process::id()));
    std::fs::write(
        &file,
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    )
    .unwrap();
    let t = ChatTemplate::for_file(sf, stok, Some(file.to_str().unwrap())).unwrap();
    assert_eq!(t.render(&conv).unwrap(), "[system] Be brief.\n[user] Hi\n");
    std::fs::remove_file(&file).unwrap();
    match ChatTemplate::for_file(sf, stok, Some("no-such-template")) {
        Err(RuntimeError::InvalidParameter { problem, .. }) => assert!(problem.contains("chatml"), "{problem}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn template_errors_name_the_line_and_never_panic() {
    let conv = Conversation::from_json(r#"[{"role": "user", "content": "x"}]"#).unwrap();
    let render = |src: &str| ChatTemplate::new("t", src, "<s>", "</s>").and_then(|t| t.render(&conv));
    // A syntax error, at compile time.
    match render("line one\n{% for m in messages %}\n{{ m.content \n") {
        Err(RuntimeError::Template {
            line: Some(l), message, ..
        }) => assert!((2..=4).contains(&l), "{l} {message}"),
        other => panic!("{other:?}"),
    }
    // The template's own refusal, with its message.
    match render("\n\n{{ raise_exception('System role not supported') }}") {
        Err(RuntimeError::Template {
            line: Some(3), message, ..
        }) => {
            assert!(message.contains("System role not supported"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A runaway template stops instead of hanging.
    let e = render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert!(matches!(e, Err(RuntimeError::Template { .. })), "{e:?}");
    // Unknown filter, bad call: errors, not panics.
    assert!(render("{{ messages | no_such_filter }}").is_err());
    assert!(render("{{ messages[0].content.startswith() }}").is_err());
    // What transformers' templates use works.
    let ok = render(
        "{%- set ns = namespace(n=0) -%}{%- for m in messages -%}{%- set ns.n = ns.n + 1 -%}{%- if loop.last -%}{%- break -%}{%- endif -%}{%- endfor -%}\
         {{ bos_token }}{{ ns.n }} {{ messages[0].content.upper().strip() }} {{ {'a': 1, 'b': [1.0, none, true]} | tojson }} \
         {{ {'k': 'é'} | tojson(indent=2) }} {{ strftime_now('%Y') | length }} {{ eos_token }}",
    )
    .unwrap();
    assert_eq!(
        ok,
        "<s>1 X {\"a\": 1, \"b\": [1.0, null, true]} {\n  \"k\": \"é\"\n} 4 </s>"
    );
}

#[test]
fn conversations_of_the_wrong_shape_are_refused() {
    for bad in [
        "not json",
        "{}",
        r#"{"messages": 3}"#,
        r#"{"messages": [3]}"#,
        r#"{"messages": [{"content": "x"}]}"#,
        r#"{"messages": [{"role": "user", "content": 5}]}"#,
        r#"{"messages": [], "tools": {}}"#,
        r#"{"messages": [], "add_generation_prompt": "yes"}"#,
    ] {
        assert!(
            matches!(Conversation::from_json(bad), Err(RuntimeError::Conversation(_))),
            "{bad}"
        );
    }
}
