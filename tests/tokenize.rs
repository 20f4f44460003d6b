//! Tokenization equals llama.cpp's for every reference text of every test model, in both modes
//! (BOS/EOS rule + special tokens parsed; and plain text), and detokenization round-trips.

mod common;

use tensorsharp_models::GgufFile;
use tensorsharp_runtime::Tokenizer;

#[test]
fn tokenization_matches_llama_cpp_exactly() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for m in common::test_models() {
        let f = GgufFile::open(&m.path).unwrap();
        let tok = Tokenizer::from_gguf(&f).unwrap();
        let r = common::reference(&m);
        assert_eq!(tok.n_vocab() as u64, r["n_vocab"].as_u64().unwrap());
        for case in r["tokenize"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            for (mode, add, parse) in [("add_special_parse_special", true, true), ("no_special", false, false)] {
                let want = common::ids(&case[mode]);
                let got = tok.tokenize(text, add, parse);
                checked += 1;
                if got != want {
                    failures.push(format!(
                        "{} {mode} {text:?}\n   want {want:?}\n   got  {got:?}",
                        m.reference
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} tokenizations differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn detokenization_round_trips_plain_text() {
    for m in common::test_models() {
        let f = GgufFile::open(&m.path).unwrap();
        let tok = Tokenizer::from_gguf(&f).unwrap();
        let r = common::reference(&m);
        for case in r["tokenize"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let t = tok.tokenize(text, false, false);
            assert_eq!(tok.detokenize(&t, false), text, "{}", m.reference);
        }
    }
}
