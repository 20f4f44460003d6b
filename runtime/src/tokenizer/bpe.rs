//! Byte-level BPE (GPT-2 style): pre-tokenize, map bytes to tokens, apply merges by rank.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::pretokenize::PreTokenizer;
use super::unicode::byte_to_char_table;
use super::Token;

#[derive(Debug)]
pub(super) struct Bpe {
    pre: PreTokenizer,
    /// (left, right) -> (rank, merged token).
    merges: HashMap<(Token, Token), (u32, Token)>,
    /// The token of each single byte (its GPT-2 character).
    byte_token: [Option<Token>; 256],
    byte_char: [char; 256],
}

impl Bpe {
    /// Heap bytes of the merge table.
    pub(super) fn heap_bytes(&self) -> usize {
        let buckets = (self.merges.capacity() * 8 / 7 + 1).next_power_of_two();
        tensorsharp_models::gguf::malloc_bytes(
            buckets * (std::mem::size_of::<((Token, Token), (u32, Token))>() + 1) + 16,
        )
    }

    pub(super) fn new(pre: PreTokenizer, merges: &[String], vocab: &HashMap<String, Token>) -> Bpe {
        let byte_char = byte_to_char_table();
        let mut byte_token = [None; 256];
        let mut buf = [0u8; 4];
        for (b, c) in byte_char.iter().enumerate() {
            byte_token[b] = vocab.get(&*c.encode_utf8(&mut buf)).copied();
        }
        let mut map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            // The separator is the first space after the first character.
            let Some(sp) = m.char_indices().skip(1).find(|&(_, c)| c == ' ').map(|(i, _)| i) else {
                continue;
            };
            let (l, r) = (&m[..sp], &m[sp + 1..]);
            let (Some(&lt), Some(&rt)) = (vocab.get(l), vocab.get(r)) else {
                continue;
            };
            let mut joined = String::with_capacity(l.len() + r.len());
            joined.push_str(l);
            joined.push_str(r);
            if let Some(&jt) = vocab.get(&joined) {
                map.entry((lt, rt)).or_insert((rank as u32, jt));
            }
        }
        Bpe {
            pre,
            merges: map,
            byte_token,
            byte_char,
        }
    }

    pub(super) fn encode(&self, text: &str, vocab: &HashMap<String, Token>, out: &mut Vec<Token>) {
        for (s, e) in self.pre.split(text) {
            self.encode_word(&text.as_bytes()[s..e], vocab, out);
        }
    }

    fn encode_word(&self, word: &[u8], vocab: &HashMap<String, Token>, out: &mut Vec<Token>) {
        if self.pre.ignores_merges() {
            let mapped: String = word.iter().map(|&b| self.byte_char[b as usize]).collect();
            if let Some(&t) = vocab.get(&mapped) {
                out.push(t);
                return;
            }
        }
        // Symbols: a doubly linked list over the word's bytes.
        let n = word.len();
        let mut tok: Vec<Option<Token>> = word.iter().map(|&b| self.byte_token[b as usize]).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let push =
            |heap: &mut BinaryHeap<Reverse<(u32, usize, Token, Token)>>, l: usize, r: usize, tok: &[Option<Token>]| {
                if let (Some(a), Some(b)) = (tok[l], tok[r]) {
                    if let Some(&(rank, _)) = self.merges.get(&(a, b)) {
                        heap.push(Reverse((rank, l, a, b)));
                    }
                }
            };
        for i in 1..n {
            push(&mut heap, i - 1, i, &tok);
        }
        while let Some(Reverse((_, l, a, b))) = heap.pop() {
            let r = next[l];
            // Skip stale entries: either side changed since the pair was queued.
            if !alive[l] || r >= n || tok[l] != Some(a) || tok[r] != Some(b) {
                continue;
            }
            tok[l] = Some(self.merges[&(a, b)].1);
            alive[r] = false;
            next[l] = next[r];
            if next[r] < n {
                prev[next[r]] = l;
            }
            if prev[l] < n {
                push(&mut heap, prev[l], l, &tok);
            }
            if next[l] < n {
                push(&mut heap, l, next[l], &tok);
            }
        }
        let mut i = 0;
        while i < n {
            if let Some(t) = tok[i] {
                out.push(t);
            }
            i = next[i];
        }
    }
}
