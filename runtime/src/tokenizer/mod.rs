//! Tokenizers driven entirely by GGUF metadata (`tokenizer.ggml.*`):
//! byte-level BPE (`gpt2`) with the pre-tokenizer named by `tokenizer.ggml.pre`, and
//! SentencePiece-style (`llama`: scores, byte fallback `<0xNN>`), as Gemma uses.
//!
//! Detokenization goes through [`StreamDecoder`], which emits text only when a UTF-8 character
//! is complete and never allocates.

mod bpe;
mod pretokenize;
mod spm;
mod unicode;

use std::collections::HashMap;

pub use pretokenize::PreTokenizer;

use crate::error::{Result, RuntimeError};
use tensorsharp_models::gguf::MetaArray;
use tensorsharp_models::GgufFile;

/// A token id.
pub type Token = u32;

/// GGUF token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// An ordinary token.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token (BOS, EOS, chat markers): never produced from text unless special
    /// tokens are parsed, printed only when asked.
    Control,
    /// A user-defined token: always matched in text, printed as its text.
    UserDefined,
    /// An unused slot.
    Unused,
    /// A byte-fallback token `<0xNN>`.
    Byte,
}

impl TokenType {
    fn from_gguf(v: i32) -> TokenType {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// Which algorithm turns text into tokens (one per tokenizer, so the size difference is moot).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

/// A tokenizer loaded from a GGUF file.
#[derive(Debug)]
pub struct Tokenizer {
    texts: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    token_to_id: HashMap<String, Token>,
    /// Bytes each token prints as when special tokens are not rendered.
    pieces: Vec<Box<[u8]>>,
    /// Control / user-defined / unknown tokens, longest first, for matching in text.
    specials: Vec<Token>,
    /// Which bytes start some special token.
    special_first: [bool; 256],
    bos: Option<Token>,
    eos: Option<Token>,
    add_bos: bool,
    add_eos: bool,
    eog: Vec<Token>,
    model: Model,
}

fn strings(f: &GgufFile, key: &str) -> Result<Option<Vec<String>>> {
    match f.get_array(key)? {
        None => Ok(None),
        Some(MetaArray::String(v)) => Ok(Some(v.clone())),
        Some(other) => Err(crate::error::bad_hparam(
            key,
            format!("expected an array of strings, found {}", other.elem_type().name()),
        )),
    }
}

impl Tokenizer {
    /// Loads the tokenizer described by the file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer> {
        let kind = f
            .get_str("tokenizer.ggml.model")?
            .ok_or_else(|| RuntimeError::UnsupportedTokenizer("the file has no tokenizer.ggml.model".into()))?
            .to_owned();
        let texts = strings(f, "tokenizer.ggml.tokens")?
            .ok_or_else(|| crate::error::bad_hparam("tokenizer.ggml.tokens", "missing"))?;
        let n = texts.len();
        if n == 0 || n > u32::MAX as usize / 2 {
            return Err(crate::error::bad_hparam("tokenizer.ggml.tokens", format!("{n} tokens")));
        }
        let types: Vec<TokenType> = match f.get_array("tokenizer.ggml.token_type")? {
            Some(MetaArray::I32(v)) if v.len() == n => v.iter().map(|&t| TokenType::from_gguf(t)).collect(),
            None => vec![TokenType::Normal; n],
            Some(_) => {
                return Err(crate::error::bad_hparam(
                    "tokenizer.ggml.token_type",
                    format!("expected {n} i32 values"),
                ))
            }
        };
        let scores: Vec<f32> = match f.get_array("tokenizer.ggml.scores")? {
            Some(MetaArray::F32(v)) if v.len() == n => v.clone(),
            None => vec![0.0; n],
            Some(_) => {
                return Err(crate::error::bad_hparam(
                    "tokenizer.ggml.scores",
                    format!("expected {n} f32 values"),
                ))
            }
        };
        let id = |key: &str| -> Result<Option<Token>> {
            match f.get_u64(key)? {
                Some(v) if (v as usize) < n => Ok(Some(v as Token)),
                Some(v) => Err(crate::error::bad_hparam(
                    key,
                    format!("token id {v} outside the vocabulary of {n}"),
                )),
                None => Ok(None),
            }
        };
        let (bos, eos, eot) = (
            id("tokenizer.ggml.bos_token_id")?,
            id("tokenizer.ggml.eos_token_id")?,
            id("tokenizer.ggml.eot_token_id")?,
        );
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            token_to_id.entry(t.clone()).or_insert(i as Token);
        }
        let model = match kind.as_str() {
            "gpt2" => {
                let pre = PreTokenizer::from_name(f.get_str("tokenizer.ggml.pre")?)?;
                let merges = strings(f, "tokenizer.ggml.merges")?
                    .ok_or_else(|| crate::error::bad_hparam("tokenizer.ggml.merges", "missing for a BPE tokenizer"))?;
                Model::Bpe(bpe::Bpe::new(pre, &merges, &token_to_id))
            }
            "llama" => Model::Spm(spm::Spm::new(
                f.get_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(true),
                &token_to_id,
            )),
            other => {
                return Err(RuntimeError::UnsupportedTokenizer(format!(
                    "tokenizer model '{other}' (supported: gpt2 BPE, llama SentencePiece)"
                )))
            }
        };
        let is_spm = matches!(model, Model::Spm(_));
        let add_bos = f.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(is_spm);
        let add_eos = f.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);

        const EOG_TEXTS: [&str; 10] = [
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|eom_id|>",
            "<EOT>",
            "_<EOT>",
            "<|end_of_text|>",
            "<｜end▁of▁sentence｜>",
        ];
        let mut eog: Vec<Token> = [eos, eot].into_iter().flatten().collect();
        for t in EOG_TEXTS {
            if let Some(&i) = token_to_id.get(t) {
                if matches!(types[i as usize], TokenType::Control | TokenType::UserDefined) {
                    eog.push(i);
                }
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let byte_of_char: HashMap<char, u8> = unicode::byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let pieces = texts
            .iter()
            .zip(&types)
            .map(|(t, ty)| match (ty, is_spm) {
                (TokenType::Control | TokenType::Unused, _) => Box::default(),
                (TokenType::UserDefined, _) => t.as_bytes().into(),
                (TokenType::Byte, true) => spm::parse_byte_token(t)
                    .map(|b| vec![b].into_boxed_slice())
                    .unwrap_or_default(),
                (_, true) => t.replace('\u{2581}', " ").into_bytes().into_boxed_slice(),
                (_, false) => t
                    .chars()
                    .map(|c| byte_of_char.get(&c).copied().unwrap_or(b'?'))
                    .collect(),
            })
            .collect();
        let mut specials: Vec<Token> = (0..n as Token)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !texts[i as usize].is_empty()
            })
            .collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(texts[i as usize].len()));
        let mut special_first = [false; 256];
        for &t in &specials {
            special_first[texts[t as usize].as_bytes()[0] as usize] = true;
        }
        Ok(Tokenizer {
            texts,
            types,
            scores,
            token_to_id,
            pieces,
            specials,
            special_first,
            bos,
            eos,
            add_bos,
            add_eos,
            eog,
            model,
        })
    }

    /// Heap bytes of the tokenizer's tables (computed from the vocabulary, merges and malloc's
    /// chunk sizes, for the memory plan).
    pub fn heap_bytes(&self) -> usize {
        use tensorsharp_models::gguf::malloc_bytes as m;
        let n = self.texts.len();
        let strings: usize = self.texts.iter().map(|t| m(t.len())).sum();
        let pieces: usize = self.pieces.iter().map(|p| m(p.len())).sum();
        // hashbrown: a power-of-two bucket count at 7/8 load, one control byte per bucket.
        let buckets = (n * 8 / 7 + 1).next_power_of_two();
        let map = m(buckets * (std::mem::size_of::<(String, Token)>() + 1) + 16) + strings;
        let vecs = m(n * std::mem::size_of::<String>())
            + strings
            + m(n * std::mem::size_of::<TokenType>())
            + m(n * 4)
            + m(n * std::mem::size_of::<Box<[u8]>>())
            + pieces;
        let model = match &self.model {
            Model::Bpe(b) => b.heap_bytes(),
            Model::Spm(_) => 0,
        };
        vecs + map + model + m(self.specials.len() * 4) + m(self.eog.len() * 4)
    }

    /// Vocabulary size.
    pub fn n_vocab(&self) -> usize {
        self.texts.len()
    }

    /// The BOS token, if the model has one.
    pub fn bos(&self) -> Option<Token> {
        self.bos
    }

    /// The EOS token, if the model has one.
    pub fn eos(&self) -> Option<Token> {
        self.eos
    }

    /// Whether `tokenize(.., add_special = true, ..)` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Whether the token ends generation (EOS, EOT, `<|im_end|>`, `<end_of_turn>`, ...).
    pub fn is_eog(&self, t: Token) -> bool {
        self.eog.binary_search(&t).is_ok()
    }

    /// The end-of-generation tokens.
    pub fn eog_tokens(&self) -> &[Token] {
        &self.eog
    }

    /// The longest piece any token prints as, in bytes.
    pub fn max_piece_len(&self) -> usize {
        self.texts.iter().map(String::len).max().unwrap_or(0)
    }

    /// The token's text as stored in the vocabulary.
    pub fn token_text(&self, t: Token) -> Option<&str> {
        self.texts.get(t as usize).map(String::as_str)
    }

    /// The token's type.
    pub fn token_type(&self, t: Token) -> Option<TokenType> {
        self.types.get(t as usize).copied()
    }

    /// The token id of an exact vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<Token> {
        self.token_to_id.get(text).copied()
    }

    /// The bytes a token prints as. Control tokens print as their text only when `special`.
    pub fn piece(&self, t: Token, special: bool) -> &[u8] {
        let i = t as usize;
        match self.types.get(i) {
            None => &[],
            Some(TokenType::Control) if special => self.texts[i].as_bytes(),
            Some(_) => &self.pieces[i],
        }
    }

    /// Tokenizes `text`. `add_special` applies the model's BOS/EOS rule; `parse_special` turns
    /// control-token text (e.g. `<|im_start|>`) into those tokens, otherwise it is plain text.
    /// User-defined tokens are always matched, as llama.cpp does.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<Token> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut prev_special = true;
        for frag in self.partition(text, parse_special) {
            match frag {
                Fragment::Token(t) => {
                    out.push(t);
                    prev_special = true;
                }
                Fragment::Text(s) => {
                    match &self.model {
                        Model::Bpe(b) => b.encode(s, &self.token_to_id, &mut out),
                        Model::Spm(m) => m.encode(s, prev_special, &self.token_to_id, &self.scores, &mut out),
                    }
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Detokenizes a whole sequence (a convenience over [`StreamDecoder`]).
    pub fn detokenize(&self, tokens: &[Token], special: bool) -> String {
        let mut s = String::new();
        let mut d = StreamDecoder::new();
        for &t in tokens {
            d.push(self.piece(t, special), &mut |p| s.push_str(p));
        }
        d.flush(&mut |p| s.push_str(p));
        s
    }

    /// Splits text around special tokens (longest match at the leftmost position).
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        'scan: while i < bytes.len() {
            if self.special_first[bytes[i] as usize] {
                for &t in &self.specials {
                    let ty = self.types[t as usize];
                    if !parse_special && ty != TokenType::UserDefined {
                        continue;
                    }
                    let s = self.texts[t as usize].as_bytes();
                    if bytes[i..].starts_with(s) {
                        if i > start {
                            out.push(Fragment::Text(&text[start..i]));
                        }
                        out.push(Fragment::Token(t));
                        i += s.len();
                        start = i;
                        continue 'scan;
                    }
                }
            }
            i += 1;
        }
        if start < text.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }
}

enum Fragment<'a> {
    Text(&'a str),
    Token(Token),
}

/// Turns token pieces into text, emitting a UTF-8 character only once all its bytes arrived.
/// Holds at most 3 pending bytes; never allocates.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: [u8; 4],
    n_pending: usize,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending[..self.n_pending]
    }

    /// Feeds one token's bytes; calls `emit` with each complete run of text. Invalid bytes come
    /// out as U+FFFD, exactly as `String::from_utf8_lossy` replaces them in the whole stream, however
    /// the bytes are split into tokens.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&str)) {
        // Complete a pending character first, a byte at a time.
        while self.n_pending > 0 && !bytes.is_empty() {
            self.pending[self.n_pending] = bytes[0];
            self.n_pending += 1;
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.pending[..self.n_pending]) {
                Ok(s) => {
                    emit(s);
                    self.n_pending = 0;
                }
                // Still a prefix of a character (at most 3 bytes are held).
                Err(e) if e.error_len().is_none() => {}
                // The held bytes start an invalid sequence of `bad` bytes: one U+FFFD for it
                // (as from_utf8_lossy), and the bytes after it start over.
                Err(e) => {
                    let bad = e.error_len().unwrap_or(1);
                    emit("\u{FFFD}");
                    let mut rest = [0u8; 4];
                    let n_rest = self.n_pending - bad;
                    rest[..n_rest].copy_from_slice(&self.pending[bad..self.n_pending]);
                    self.n_pending = 0;
                    self.push(&rest[..n_rest], emit);
                }
            }
        }
        while !bytes.is_empty() {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    emit(s);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if valid > 0 {
                        // SAFETY-free: from_utf8 on the prefix it just validated.
                        emit(std::str::from_utf8(&bytes[..valid]).unwrap_or_default());
                    }
                    bytes = &bytes[valid..];
                    match e.error_len() {
                        Some(bad) => {
                            emit("\u{FFFD}");
                            bytes = &bytes[bad..];
                        }
                        None => {
                            // An incomplete character at the end: keep it for the next token.
                            self.pending[..bytes.len()].copy_from_slice(bytes);
                            self.n_pending = bytes.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete character comes out as U+FFFD.
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        if self.n_pending > 0 {
            emit("\u{FFFD}");
            self.n_pending = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_decoding_does_not_depend_on_the_split() {
        // Overlong and truncated sequences, a surrogate, stray continuations, valid text.
        let cases: [&[u8]; 6] = [
            b"\xE0\x80\x80abc",
            b"\xF0\x9F\x98",
            b"\xED\xA0\x80z\xC3\xA9",
            b"\x80\x80\xC3",
            "h\u{e9}llo \u{1F600}".as_bytes(),
            b"\xF4\x90\x80\x80\xC2",
        ];
        for bytes in cases {
            let want = String::from_utf8_lossy(bytes).into_owned();
            for split in 1..=bytes.len() {
                let mut d = StreamDecoder::new();
                let mut got = String::new();
                for chunk in bytes.chunks(split) {
                    d.push(chunk, &mut |s| got.push_str(s));
                }
                d.flush(&mut |s| got.push_str(s));
                assert_eq!(got, want, "{bytes:x?} in chunks of {split}");
            }
        }
    }

    #[test]
    fn stream_decoder_holds_split_characters() {
        let mut d = StreamDecoder::new();
        let mut out = String::new();
        let e = "é😀".as_bytes(); // c3 a9 f0 9f 98 80
        d.push(&e[..1], &mut |s| out.push_str(s));
        assert_eq!(out, "");
        d.push(&e[1..3], &mut |s| out.push_str(s));
        assert_eq!(out, "é");
        d.push(&e[3..5], &mut |s| out.push_str(s));
        assert_eq!(out, "é");
        d.push(&e[5..], &mut |s| out.push_str(s));
        assert_eq!(out, "é😀");
        d.push(&[0xff, b'a'], &mut |s| out.push_str(s));
        assert_eq!(out, "é😀\u{FFFD}a");
        d.push(&[0xe4, 0xbd], &mut |s| out.push_str(s));
        d.push(b"x", &mut |s| out.push_str(s));
        assert_eq!(out, "é😀\u{FFFD}a\u{FFFD}x");
        d.push(&[0xe4], &mut |s| out.push_str(s));
        d.flush(&mut |s| out.push_str(s));
        assert!(out.ends_with('\u{FFFD}'));
    }
}
