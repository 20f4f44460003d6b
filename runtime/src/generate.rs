//! The generation loop: sample, detokenize into complete UTF-8, hold back text that could be the
//! start of a stop string, stop on end-of-generation, a stop string, the token limit, the context
//! limit or an interrupt. Buffers are reserved up front; each step allocates nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, RuntimeError};
use crate::sampler::Sampler;
use crate::session::Session;
use crate::tokenizer::{StreamDecoder, Token};

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-generation token (not printed).
    EndOfGeneration,
    /// The requested number of tokens was generated.
    MaxTokens,
    /// Stop string number `i` appeared (it is not printed).
    StopString(usize),
    /// The context is full.
    ContextFull,
    /// The interrupt flag was raised (checked between tokens).
    Interrupted,
}

/// What a generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated tokens (the end-of-generation token excluded).
    pub tokens: Vec<Token>,
    /// Why it stopped.
    pub reason: StopReason,
    /// Prompt tokens processed.
    pub n_prompt: usize,
    /// Seconds spent on the prompt (prefill + first sample).
    pub prompt_secs: f64,
    /// Seconds spent generating after the first token.
    pub gen_secs: f64,
}

/// Holds back output that might be the beginning of a stop string.
struct StopFilter<'a> {
    stops: &'a [String],
    held: String,
}

impl StopFilter<'_> {
    /// Adds text; emits what is safe; returns the index of a stop string that completed.
    fn push(&mut self, text: &str, emit: &mut impl FnMut(&str)) -> Option<usize> {
        self.held.push_str(text);
        // A complete stop string: emit what precedes it and stop.
        let mut first: Option<(usize, usize)> = None;
        for (i, s) in self.stops.iter().enumerate() {
            if let Some(at) = self.held.find(s.as_str()) {
                if first.is_none_or(|(a, _)| at < a) {
                    first = Some((at, i));
                }
            }
        }
        if let Some((at, i)) = first {
            emit(&self.held[..at]);
            self.held.clear();
            return Some(i);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let mut keep = 0;
        for s in self.stops {
            for (n, _) in s.char_indices().skip(1).chain(std::iter::once((s.len(), ' '))) {
                if n <= self.held.len()
                    && n > keep
                    && self.held.is_char_boundary(self.held.len() - n)
                    && self.held.ends_with(&s[..n])
                    && n < s.len()
                {
                    keep = n;
                }
            }
        }
        let cut = self.held.len() - keep;
        if cut > 0 {
            emit(&self.held[..cut]);
            self.held.drain(..cut);
        }
        None
    }

    fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        emit(&self.held);
        self.held.clear();
    }
}

/// Generates after `prompt` (already tokenized; the session continues from its current state).
/// `on_text` receives the text as it becomes final; `interrupt` is checked between tokens.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    session: &mut Session,
    sampler: &mut Sampler,
    prompt: &[Token],
    max_tokens: usize,
    stops: &[String],
    interrupt: &AtomicBool,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    let model = std::sync::Arc::clone(session.model());
    let tok = model.tokenizer();
    if session.n_past() + prompt.len() > session.n_ctx() {
        return Err(RuntimeError::ContextFull {
            needed: session.n_past() + prompt.len(),
            n_ctx: session.n_ctx(),
        });
    }
    let max_stop = stops.iter().map(String::len).max().unwrap_or(0);
    let mut filter = StopFilter {
        stops,
        held: String::with_capacity(max_stop + tok.max_piece_len() + 8),
    };
    let mut decoder = StreamDecoder::new();
    let mut tokens = Vec::with_capacity(max_tokens);
    for &t in prompt {
        sampler.accept(t);
    }
    let t0 = std::time::Instant::now();
    let mut logits = session.prefill(prompt)?.to_vec();
    let mut t_first = None;
    let reason = loop {
        if tokens.len() >= max_tokens {
            break StopReason::MaxTokens;
        }
        if interrupt.load(Ordering::Relaxed) {
            break StopReason::Interrupted;
        }
        let next = sampler.sample(&mut logits);
        if t_first.is_none() {
            t_first = Some(std::time::Instant::now());
        }
        if tok.is_eog(next) {
            break StopReason::EndOfGeneration;
        }
        sampler.accept(next);
        tokens.push(next);
        let mut stopped = None;
        decoder.push(tok.piece(next, false), &mut |s| {
            if stopped.is_none() {
                stopped = filter.push(s, &mut on_text);
            }
        });
        if let Some(i) = stopped {
            break StopReason::StopString(i);
        }
        if tokens.len() >= max_tokens {
            break StopReason::MaxTokens;
        }
        if session.n_past() >= session.n_ctx() {
            break StopReason::ContextFull;
        }
        logits.copy_from_slice(session.decode(next)?);
    };
    if !matches!(reason, StopReason::StopString(_)) {
        decoder.flush(&mut |s| {
            filter.push(s, &mut on_text);
        });
        filter.flush(&mut on_text);
    }
    let t_end = std::time::Instant::now();
    let first = t_first.unwrap_or(t_end);
    Ok(Generation {
        tokens,
        reason,
        n_prompt: prompt.len(),
        prompt_secs: (first - t0).as_secs_f64(),
        gen_secs: (t_end - first).as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter {
            stops: &stops,
            held: String::new(),
        };
        let mut out = String::new();
        for p in pieces {
            if let Some(i) = f.push(p, &mut |s| out.push_str(s)) {
                return (out, Some(i));
            }
        }
        f.flush(&mut |s| out.push_str(s));
        (out, None)
    }

    #[test]
    fn stop_strings_across_tokens_are_never_printed() {
        assert_eq!(run(&["\n\n"], &["Hello", "\n", "\nWorld"]), ("Hello".into(), Some(0)));
        assert_eq!(run(&["STOP"], &["abc ST", "O", "Pxyz"]), ("abc ".into(), Some(0)));
        assert_eq!(run(&["STOP"], &["abc ST", "ART"]), ("abc START".into(), None));
        assert_eq!(run(&["ab", "b"], &["xxab"]), ("xx".into(), Some(0)));
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".into(), Some(0)));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), None));
    }
}
