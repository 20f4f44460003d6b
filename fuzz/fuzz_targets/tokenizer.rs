//! Any text through a real model's tokenizer (SmolLM2's byte-level BPE; `TSHARP_FUZZ_MODEL`
//! names another GGUF): encoding never panics, every id is in the vocabulary, and decoding the
//! ids of plain text (no special tokens, no BOS) gives the text back, where every character of
//! it has tokens. (SmolLM2's vocabulary has no byte token for 21 byte values, among them 0x04,
//! 0x06, 0x14 and the lead bytes 0xF1-0xF4; such bytes are dropped, as llama.cpp's byte
//! fallback drops them.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tensorsharp_models::GgufFile;
use tensorsharp_runtime::Tokenizer;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = std::env::var("TSHARP_FUZZ_MODEL").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/tensorsharp/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
        let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{path}: {e} (scripts/fetch-models.sh)"));
        Tokenizer::from_gguf(&f).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let tok = tokenizer();
    let (add_special, parse_special) = (flags & 1 != 0, flags & 2 != 0);
    let ids = tok.tokenize(&text, add_special, parse_special);
    assert!(ids.iter().all(|&t| (t as usize) < tok.n_vocab()));
    let representable = |c: char| {
        let s = c.to_string();
        tok.detokenize(&tok.tokenize(&s, false, false), false) == s
    };
    if !add_special && !parse_special && text.chars().all(representable) {
        assert_eq!(tok.detokenize(&ids, false), text, "round trip of {text:?}");
    }
});
