//! Pre-tokenizers: split text into words before BPE, as llama.cpp does for each
//! `tokenizer.ggml.pre`. The GPT-2 and llama3/qwen2 rules are hand-written state machines (the
//! same rules as the regexes in the comments, without a regex engine); the extra single-rule
//! stages (`\p{N}`, punctuation runs, `[0-9]{3}`) split by character class.

use super::unicode::{flags, Flags};
use crate::error::{Result, RuntimeError};

/// A pre-tokenizer, chosen by `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `gpt2` (also mpt, olmo, ...): `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// `smollm` (also starcoder, refact, ...): every digit alone, then GPT-2.
    Smollm,
    /// `llama-bpe` / `llama3`: case-insensitive contractions, `[^\r\n\p{L}\p{N}]?\p{L}+`,
    /// digits in groups of up to 3, punctuation runs with trailing newlines, newline runs.
    Llama3,
    /// `qwen2`: as llama3 with every digit alone.
    Qwen2,
    /// `default`: llama.cpp's fallback chain (punctuation runs, GPT-2, number runs, 3-digit groups).
    Default,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value (absent means `default`).
    pub fn from_name(name: Option<&str>) -> Result<PreTokenizer> {
        Ok(match name.unwrap_or("default") {
            "gpt2" | "mpt" | "olmo" | "jais" | "trillion" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
                PreTokenizer::Smollm
            }
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" => PreTokenizer::Llama3,
            "qwen2" | "stablelm2" | "hunyuan" => PreTokenizer::Qwen2,
            "default" => PreTokenizer::Default,
            other => {
                return Err(RuntimeError::UnsupportedTokenizer(format!(
                    "pre-tokenizer '{other}' (supported: gpt2, smollm, llama-bpe/llama3, qwen2, default)"
                )))
            }
        })
    }

    /// Whether whole words found in the vocabulary skip the merges (llama3's `ignore_merges`).
    pub fn ignores_merges(self) -> bool {
        self == PreTokenizer::Llama3
    }

    /// Splits `text` into words; returns their byte ranges, in order, covering all of `text`.
    pub fn split(self, text: &str) -> Vec<(usize, usize)> {
        let cs: Vec<(usize, char)> = text.char_indices().collect();
        let whole = vec![(0, cs.len())];
        let pieces = match self {
            PreTokenizer::Gpt2 => stage(&cs, whole, gpt2),
            PreTokenizer::Smollm => stage(&cs, stage(&cs, whole, |c, o| runs(c, o, |f, _| f.number, true)), gpt2),
            PreTokenizer::Llama3 => stage(&cs, whole, |c, o| llama3(c, o, Some(3))),
            PreTokenizer::Qwen2 => stage(&cs, whole, |c, o| llama3(c, o, Some(1))),
            PreTokenizer::Default => {
                let p = stage(&cs, whole, |c, o| runs(c, o, is_default_punct, false));
                let p = stage(&cs, p, gpt2);
                let p = stage(&cs, p, |c, o| runs(c, o, |f, _| f.number, false));
                stage(&cs, p, digits3)
            }
        };
        let byte = |i: usize| if i < cs.len() { cs[i].0 } else { text.len() };
        pieces.into_iter().map(|(s, e)| (byte(s), byte(e))).collect()
    }
}

fn is_default_punct(_: Flags, c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    ) || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
}

/// Applies `split` (which pushes char-index ranges) to every piece.
fn stage(
    cs: &[(usize, char)],
    pieces: Vec<(usize, usize)>,
    split: impl Fn(&[(usize, char)], &mut Vec<(usize, usize)>),
) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(pieces.len() * 2);
    for (s, e) in pieces {
        let before = out.len();
        split(&cs[s..e], &mut out);
        for p in &mut out[before..] {
            p.0 += s;
            p.1 += s;
        }
    }
    out
}

/// Runs of characters matching `pred` become pieces (each character alone when `single`), and so
/// does the text between them.
fn runs(cs: &[(usize, char)], out: &mut Vec<(usize, usize)>, pred: impl Fn(Flags, char) -> bool, single: bool) {
    let mut start = 0;
    let mut i = 0;
    while i < cs.len() {
        if pred(flags(cs[i].1), cs[i].1) {
            if i > start {
                out.push((start, i));
            }
            let mut j = i + 1;
            if !single {
                while j < cs.len() && pred(flags(cs[j].1), cs[j].1) {
                    j += 1;
                }
            }
            out.push((i, j));
            i = j;
            start = j;
        } else {
            i += 1;
        }
    }
    if start < cs.len() {
        out.push((start, cs.len()));
    }
}

/// `[0-9][0-9][0-9]`: ASCII digit runs in groups of three from the left.
fn digits3(cs: &[(usize, char)], out: &mut Vec<(usize, usize)>) {
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= cs.len() {
        if cs[i..i + 3].iter().all(|(_, c)| c.is_ascii_digit()) {
            if i > start {
                out.push((start, i));
            }
            out.push((i, i + 3));
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < cs.len() {
        out.push((start, cs.len()));
    }
}

struct Seg<'a> {
    cs: &'a [(usize, char)],
    prev_end: usize,
    out: &'a mut Vec<(usize, usize)>,
}

impl Seg<'_> {
    fn cpt(&self, i: usize) -> Option<char> {
        self.cs.get(i).map(|x| x.1)
    }
    fn flags(&self, i: usize) -> Flags {
        self.cpt(i).map(flags).unwrap_or_default()
    }
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push((self.prev_end, end));
        }
        self.prev_end = end;
        len
    }
    fn contraction(&self, pos: usize, case_insensitive: bool) -> Option<usize> {
        if self.cpt(pos) != Some('\'') {
            return None;
        }
        let low = |c: Option<char>| c.map(|c| if case_insensitive { c.to_ascii_lowercase() } else { c });
        let n1 = low(self.cpt(pos + 1))?;
        if matches!(n1, 's' | 't' | 'm' | 'd') {
            return Some(2);
        }
        let n2 = low(self.cpt(pos + 2))?;
        matches!((n1, n2), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
    }
}

fn punct(f: Flags) -> bool {
    !(f.whitespace || f.letter || f.number) && f.defined
}

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2(cs: &[(usize, char)], out: &mut Vec<(usize, usize)>) {
    let n = cs.len();
    let mut s = Seg { cs, prev_end: 0, out };
    let mut pos = 0;
    while pos < n {
        let cpt = s.cpt(pos);
        if let Some(len) = s.contraction(pos, false) {
            pos += s.add(pos + len);
            continue;
        }
        let sp = usize::from(cpt == Some(' '));
        let f2 = if sp == 1 { s.flags(pos + 1) } else { s.flags(pos) };
        let class: Option<fn(Flags) -> bool> = if f2.letter {
            Some(|f| f.letter)
        } else if f2.number {
            Some(|f| f.number)
        } else if punct(f2) {
            Some(punct)
        } else {
            None
        };
        if let Some(class) = class {
            pos += sp;
            while pos < n && class(s.flags(pos)) {
                pos += 1;
            }
            s.add(pos);
            continue;
        }
        let mut ws = 0;
        while s.flags(pos + ws).whitespace {
            ws += 1;
        }
        if ws > 1 && pos + ws < n {
            pos += ws - 1;
            s.add(pos);
            continue;
        }
        if ws > 0 {
            pos += ws;
            s.add(pos);
            continue;
        }
        pos += 1;
        s.add(pos);
    }
}

/// llama3 / qwen2:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3(cs: &[(usize, char)], out: &mut Vec<(usize, usize)>, max_digits: Option<usize>) {
    let n = cs.len();
    let mut s = Seg { cs, prev_end: 0, out };
    let mut pos = 0;
    let nl = |c: Option<char>| matches!(c, Some('\r') | Some('\n'));
    while pos < n {
        let cpt = s.cpt(pos);
        let f = s.flags(pos);
        if let Some(len) = s.contraction(pos, true) {
            pos += s.add(pos + len);
            continue;
        }
        if !(nl(cpt) || f.number) && (f.letter || s.flags(pos + 1).letter) {
            pos += 1;
            while s.flags(pos).letter {
                pos += 1;
            }
            s.add(pos);
            continue;
        }
        if f.number {
            let max = max_digits.unwrap_or(usize::MAX);
            let mut ini = pos;
            while s.flags(pos).number {
                pos += 1;
                if pos - ini >= max {
                    s.add(pos);
                    ini = pos;
                }
            }
            s.add(pos);
            continue;
        }
        let mut f2 = if cpt == Some(' ') { s.flags(pos + 1) } else { f };
        if punct(f2) && f.defined {
            pos += usize::from(cpt == Some(' '));
            while punct(f2) {
                pos += 1;
                f2 = s.flags(pos);
            }
            while nl(s.cpt(pos)) {
                pos += 1;
            }
            s.add(pos);
            continue;
        }
        let mut ws = 0;
        let mut last_nl_end = 0;
        while s.flags(pos + ws).whitespace {
            if nl(s.cpt(pos + ws)) {
                last_nl_end = pos + ws + 1;
            }
            ws += 1;
        }
        if last_nl_end > 0 {
            pos = last_nl_end;
            s.add(pos);
            continue;
        }
        if ws > 1 && pos + ws < n {
            pos += ws - 1;
            s.add(pos);
            continue;
        }
        if ws > 0 {
            pos += ws;
            s.add(pos);
            continue;
        }
        pos += 1;
        s.add(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(p: PreTokenizer, t: &str) -> Vec<&str> {
        let text: &'static str = Box::leak(t.to_owned().into_boxed_str());
        p.split(text).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn gpt2_rules() {
        assert_eq!(words(PreTokenizer::Gpt2, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            words(PreTokenizer::Gpt2, "I'm  here!!\n"),
            ["I", "'m", " ", " here", "!!", "\n"]
        );
        assert_eq!(words(PreTokenizer::Gpt2, "a  b"), ["a", " ", " b"]);
        assert_eq!(
            words(PreTokenizer::Smollm, "year 2024"),
            ["year", " ", "2", "0", "2", "4"]
        );
    }

    #[test]
    fn llama3_and_qwen2_rules() {
        assert_eq!(words(PreTokenizer::Llama3, "x 12345"), ["x", " ", "123", "45"]);
        assert_eq!(words(PreTokenizer::Qwen2, "x 123"), ["x", " ", "1", "2", "3"]);
        assert_eq!(
            words(PreTokenizer::Qwen2, "I'M ok.\n\nNext"),
            ["I", "'M", " ok", ".\n\n", "Next"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "a \n\n b"), ["a", " \n\n", " b"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        for p in [
            PreTokenizer::Gpt2,
            PreTokenizer::Smollm,
            PreTokenizer::Llama3,
            PreTokenizer::Qwen2,
            PreTokenizer::Default,
        ] {
            let t = "Café 3.14 — 今天 😀👨\u{200d}👩 \t\n x";
            assert_eq!(words(p, t).concat(), t, "{p:?}");
        }
    }
}
