//! SentencePiece-style tokenization (llama.cpp's `llm_tokenizer_spm`): start from UTF-8
//! characters, repeatedly merge the adjacent pair whose concatenation is the highest-scoring
//! vocabulary entry, and fall back to `<0xNN>` byte tokens for characters not in the vocabulary.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::Token;

#[derive(Debug)]
pub(super) struct Spm {
    add_space_prefix: bool,
    byte_token: [Option<Token>; 256],
}

/// `<0xAB>` -> 0xAB.
pub(super) fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok()).flatten()
}

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}
impl Eq for Bigram {}
impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> Ordering {
        // Highest score first; among equal scores, the leftmost pair.
        self.score.total_cmp(&o.score).then_with(|| o.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Spm {
    pub(super) fn new(add_space_prefix: bool, vocab: &HashMap<String, Token>) -> Spm {
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            *slot = vocab.get(&format!("<0x{b:02X}>")).copied();
        }
        Spm {
            add_space_prefix,
            byte_token,
        }
    }

    pub(super) fn encode(
        &self,
        text: &str,
        prev_special: bool,
        vocab: &HashMap<String, Token>,
        scores: &[f32],
        out: &mut Vec<Token>,
    ) {
        let mut s = String::with_capacity(text.len() + 4);
        if self.add_space_prefix && prev_special {
            s.push('\u{2581}');
        }
        for c in text.chars() {
            s.push(if c == ' ' { '\u{2581}' } else { c });
        }
        // Symbols are byte ranges [start, end) of `s`, linked left to right.
        let mut start: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let n = start.len();
        let mut end: Vec<usize> = start.iter().skip(1).copied().chain(std::iter::once(s.len())).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, l: usize, r: usize, start: &[usize], end: &[usize]| {
            let piece = &s[start[l]..end[r]];
            if let Some(&t) = vocab.get(piece) {
                heap.push(Bigram {
                    score: scores[t as usize],
                    left: l,
                    right: r,
                    len: piece.len(),
                });
            }
        };
        for i in 1..n {
            try_add(&mut heap, i - 1, i, &start, &end);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            // Stale if either symbol was merged away or grew since.
            if start[l] == usize::MAX || start[r] == usize::MAX || next[l] != r || end[r] - start[l] != b.len {
                continue;
            }
            end[l] = end[r];
            start[r] = usize::MAX;
            next[l] = next[r];
            if next[r] < n {
                prev[next[r]] = l;
            }
            if prev[l] < n {
                try_add(&mut heap, prev[l], l, &start, &end);
            }
            if next[l] < n {
                try_add(&mut heap, l, next[l], &start, &end);
            }
        }
        let mut i = 0;
        while i < n {
            let piece = &s[start[i]..end[i]];
            match vocab.get(piece) {
                Some(&t) => out.push(t),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_token[b as usize])),
            }
            i = next[i];
        }
    }
}
