//! The generation loop: sample, detokenize into complete UTF-8, hold back text that could be the
//! start of a stop string, stop on end-of-generation, a stop string, the token limit, the context
//! limit or an interrupt. Buffers are reserved up front; each step allocates nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, RuntimeError};
use crate::sampler::Sampler;
use crate::session::Session;
use crate::tokenizer::{StreamDecoder, Token};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-generation token (not printed).
    EndOfGeneration,
    /// The requested number of tokens was generated.
    MaxTokens,
    /// Stop string number `i` appeared (it is not printed).
    StopString(usize),
    /// The context is full.
    ContextFull,
    /// The interrupt flag (checked between tokens) or the session's cancel flag (checked
    /// between layers) was raised.
    Cancelled,
    /// The per-token callback of [`Generator::run_tokens`] returned [`Flow::Stop`].
    Callback,
}

/// What the per-token callback of [`Generator::run_tokens`] tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop after this token ([`StopReason::Callback`]).
    Stop,
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

/// Holds back output that might be the beginning of a stop string (the stop strings are passed
/// to each call, so one filter serves any request). Reserve its buffer with
/// [`StopFilter::with_capacity`] (the longest stop string plus the longest token piece) and
/// pushing allocates nothing.
#[derive(Debug, Default)]
pub struct StopFilter {
    held: String,
}

impl StopFilter {
    /// A filter with room for `bytes` of held-back text.
    pub fn with_capacity(bytes: usize) -> StopFilter {
        StopFilter {
            held: String::with_capacity(bytes),
        }
    }

    /// Forgets held text and makes room for `bytes` (allocates only to grow).
    pub fn reset(&mut self, bytes: usize) {
        self.held.clear();
        self.held.reserve(bytes);
    }

    /// Adds text; emits what is safe; returns the index of a stop string that completed (the
    /// text before it is emitted, the rest dropped).
    pub fn push(&mut self, stops: &[String], text: &str, emit: &mut impl FnMut(&str)) -> Option<usize> {
        self.held.push_str(text);
        // A complete stop string: emit what precedes it and stop.
        let mut first: Option<(usize, usize)> = None;
        for (i, s) in stops.iter().enumerate() {
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
        for s in stops {
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

    /// Emits whatever is held (the generation ended without a stop string).
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        emit(&self.held);
        self.held.clear();
    }
}

/// Counts of one generation (the tokens are in [`Generator::tokens`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenStats {
    /// Why it stopped.
    pub reason: StopReason,
    /// Prompt tokens processed (prefilled).
    pub n_prompt: usize,
    /// Prompt tokens not prefilled because the session already held them
    /// ([`Generator::run_conversation`]).
    pub cached_tokens: usize,
    /// Tokens generated.
    pub n_generated: usize,
    /// Seconds spent on the prompt (prefill + first sample).
    pub prompt_secs: f64,
    /// Seconds spent generating after the first token.
    pub gen_secs: f64,
}

/// The generation loop with every buffer reserved up front: after [`Generator::new`], a call
/// to [`Generator::run`] allocates nothing (stop strings no longer than the `max_stop_len`
/// given at creation; a longer one grows the buffer once).
#[derive(Debug)]
pub struct Generator {
    logits: Vec<f32>,
    tokens: Vec<Token>,
    latencies: Vec<f32>,
    /// Text held back while it may be the start of a stop string.
    filter: StopFilter,
    /// The text one token made final.
    text: String,
    decoder: StreamDecoder,
}

impl Generator {
    /// Buffers for generations in `session` (up to its context length) with stop strings of up
    /// to `max_stop_len` bytes.
    pub fn new(session: &Session, max_stop_len: usize) -> Generator {
        let tok = session.model().tokenizer();
        Generator {
            logits: vec![0.0; tok.n_vocab()],
            tokens: Vec::with_capacity(session.n_ctx()),
            latencies: Vec::with_capacity(session.n_ctx()),
            filter: StopFilter::with_capacity(max_stop_len + tok.max_piece_len() + 8),
            text: String::with_capacity(max_stop_len + tok.max_piece_len() + 8),
            decoder: StreamDecoder::new(),
        }
    }

    /// The tokens of the last run (the end-of-generation token excluded).
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Seconds each decode step of the last run took (forward pass + sampling + text), one per
    /// token after the first.
    pub fn latencies(&self) -> &[f32] {
        &self.latencies
    }

    /// Generates after `prompt` (already tokenized; the session continues from its current
    /// state). `on_text` receives the text as it becomes final. `interrupt` is checked between
    /// tokens; the session's cancel flag ([`Session::cancel_flag`]) between layers. Either
    /// ends the run with [`StopReason::Cancelled`] (the text so far has been delivered).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        session: &mut Session,
        sampler: &mut Sampler,
        prompt: &[Token],
        max_tokens: usize,
        stops: &[String],
        interrupt: &AtomicBool,
        mut on_text: impl FnMut(&str),
    ) -> Result<GenStats> {
        self.run_tokens(session, sampler, prompt, max_tokens, stops, interrupt, |_, text| {
            if !text.is_empty() {
                on_text(text);
            }
            Flow::Continue
        })
    }

    /// Generates after a whole conversation's tokens, prefilling only what the session does not
    /// already hold: the longest common prefix of `tokens` and the session's cached tokens is
    /// kept ([`Session::keep_common_prefix`]), the rest prefilled (a chat's next turn prefills
    /// the new turn; an edited history, from the first edit). [`GenStats::cached_tokens`] says
    /// how many were reused. Otherwise as [`run_tokens`](Self::run_tokens).
    #[allow(clippy::too_many_arguments)]
    pub fn run_conversation(
        &mut self,
        session: &mut Session,
        sampler: &mut Sampler,
        tokens: &[Token],
        max_tokens: usize,
        stops: &[String],
        interrupt: &AtomicBool,
        on_token: impl FnMut(Option<Token>, &str) -> Flow,
    ) -> Result<GenStats> {
        if tokens.is_empty() {
            return Err(RuntimeError::InvalidParameter {
                name: "prompt",
                problem: "no tokens".into(),
            });
        }
        if tokens.len() > session.n_ctx() {
            return Err(RuntimeError::ContextFull {
                needed: tokens.len(),
                n_ctx: session.n_ctx(),
            });
        }
        let cached = session.keep_common_prefix(tokens);
        for &t in &tokens[..cached] {
            sampler.accept(t);
        }
        let mut st = self.run_tokens(
            session,
            sampler,
            &tokens[cached..],
            max_tokens,
            stops,
            interrupt,
            on_token,
        )?;
        st.cached_tokens = cached;
        Ok(st)
    }

    /// [`run`](Self::run) with a callback per token: `on_token(Some(token), text)` after each
    /// generated token, with the text it made final (empty while a character is split over
    /// tokens or a stop string may be starting), and once `on_token(None, text)` at the end when
    /// text was still held back (an incomplete character at the end, as U+FFFD). Returning
    /// [`Flow::Stop`] ends the run with [`StopReason::Callback`].
    #[allow(clippy::too_many_arguments)]
    pub fn run_tokens(
        &mut self,
        session: &mut Session,
        sampler: &mut Sampler,
        prompt: &[Token],
        max_tokens: usize,
        stops: &[String],
        interrupt: &AtomicBool,
        mut on_token: impl FnMut(Option<Token>, &str) -> Flow,
    ) -> Result<GenStats> {
        if let Some(i) = stops.iter().position(String::is_empty) {
            return Err(RuntimeError::InvalidParameter {
                name: "stop",
                problem: format!("stop string {i} is empty (it would match at once; give at least one character)"),
            });
        }
        let model = std::sync::Arc::clone(session.model());
        let tok = model.tokenizer();
        if session.n_past() + prompt.len() > session.n_ctx() {
            return Err(RuntimeError::ContextFull {
                needed: session.n_past() + prompt.len(),
                n_ctx: session.n_ctx(),
            });
        }
        let max_stop = stops.iter().map(String::len).max().unwrap_or(0);
        self.filter.reset(max_stop + tok.max_piece_len() + 8);
        self.text.clear();
        self.text.reserve(max_stop + tok.max_piece_len() + 8);
        let filter = &mut self.filter;
        self.decoder = StreamDecoder::new();
        self.tokens.clear();
        self.latencies.clear();
        for &t in prompt {
            sampler.accept(t);
        }
        let t0 = std::time::Instant::now();
        let cancelled = |r: &Result<&[f32]>| matches!(r, Err(RuntimeError::Cancelled));
        let mut t_first = None;
        let reason = 'gen: {
            let r = session.prefill(prompt);
            if cancelled(&r) {
                break 'gen StopReason::Cancelled;
            }
            self.logits.copy_from_slice(r?);
            loop {
                if self.tokens.len() >= max_tokens {
                    break StopReason::MaxTokens;
                }
                if interrupt.load(Ordering::Relaxed) {
                    break StopReason::Cancelled;
                }
                let next = sampler.sample(&mut self.logits);
                let now = std::time::Instant::now();
                if t_first.is_none() {
                    t_first = Some(now);
                }
                if tok.is_eog(next) {
                    break StopReason::EndOfGeneration;
                }
                sampler.commit(next);
                if self.tokens.len() < self.tokens.capacity() {
                    self.tokens.push(next);
                }
                let mut stopped = None;
                let text = &mut self.text;
                text.clear();
                self.decoder.push(tok.piece(next, false), &mut |s| {
                    if stopped.is_none() {
                        stopped = filter.push(stops, s, &mut |t: &str| text.push_str(t));
                    }
                });
                let flow = on_token(Some(next), &self.text);
                if let Some(i) = stopped {
                    break StopReason::StopString(i);
                }
                if flow == Flow::Stop {
                    break StopReason::Callback;
                }
                if self.tokens.len() >= max_tokens {
                    break StopReason::MaxTokens;
                }
                if session.n_past() >= session.n_ctx() {
                    break StopReason::ContextFull;
                }
                let r = session.decode(next);
                if cancelled(&r) {
                    break StopReason::Cancelled;
                }
                self.logits.copy_from_slice(r?);
                if self.latencies.len() < self.latencies.capacity() {
                    self.latencies.push(now.elapsed().as_secs_f32());
                }
            }
        };
        if !matches!(reason, StopReason::StopString(_)) {
            let text = &mut self.text;
            text.clear();
            self.decoder.flush(&mut |s| {
                filter.push(stops, s, &mut |t: &str| text.push_str(t));
            });
            filter.flush(&mut |t: &str| text.push_str(t));
            if !self.text.is_empty() {
                on_token(None, &self.text);
            }
        }
        let t_end = std::time::Instant::now();
        let first = t_first.unwrap_or(t_end);
        Ok(GenStats {
            reason,
            n_prompt: prompt.len(),
            cached_tokens: 0,
            n_generated: self.tokens.len(),
            prompt_secs: (first - t0).as_secs_f64(),
            gen_secs: (t_end - first).as_secs_f64(),
        })
    }
}

/// One-shot convenience over [`Generator`]: generates after `prompt` and returns the tokens.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    session: &mut Session,
    sampler: &mut Sampler,
    prompt: &[Token],
    max_tokens: usize,
    stops: &[String],
    interrupt: &AtomicBool,
    on_text: impl FnMut(&str),
) -> Result<Generation> {
    let max_stop = stops.iter().map(String::len).max().unwrap_or(0);
    let mut g = Generator::new(session, max_stop);
    let st = g.run(session, sampler, prompt, max_tokens, stops, interrupt, on_text)?;
    Ok(Generation {
        tokens: g.tokens,
        reason: st.reason,
        n_prompt: st.n_prompt,
        prompt_secs: st.prompt_secs,
        gen_secs: st.gen_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::default();
        let mut out = String::new();
        for p in pieces {
            if let Some(i) = f.push(&stops, p, &mut |s| out.push_str(s)) {
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
