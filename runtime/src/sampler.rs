//! Sampling: greedy, temperature, top-k, top-p, min-p; repetition, presence and frequency
//! penalties over a window of recent tokens; a seeded PRNG for reproducibility.
//!
//! All working memory (the candidate index buffer and the recent-token ring) is allocated when
//! the sampler is created; [`Sampler::sample`] allocates nothing.

use crate::error::{Result, RuntimeError};
#[cfg(feature = "structured")]
use crate::structured::Constraint;
use crate::tokenizer::Token;

/// Sampling settings (llama.cpp's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// Temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// Subtract this from the logits of tokens present in the window (0 = off).
    pub presence_penalty: f32,
    /// Subtract this times the count of each token in the window (0 = off).
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0x5EED,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, problem: String| Err(RuntimeError::InvalidParameter { name, problem });
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", format!("{} (must be >= 0)", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} (must be in (0, 1])", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("{} (must be in [0, 1])", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad("repeat_penalty", format!("{} (must be > 0)", self.repeat_penalty));
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("presence/frequency penalty", "must be finite".into());
        }
        if self.penalty_last_n > 1 << 20 {
            return bad("penalty_last_n", format!("{} (at most 1048576)", self.penalty_last_n));
        }
        Ok(())
    }
}

/// A sampler with preallocated working memory.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: u64,
    idx: Vec<u32>,
    probs: Vec<f32>,
    recent: Vec<Token>,
    recent_len: usize,
    recent_pos: usize,
    n_vocab: usize,
    /// Structured output: the tokens allowed next ([`set_constraint`](Self::set_constraint)).
    #[cfg(feature = "structured")]
    constraint: Option<Box<Constraint>>,
}

impl Sampler {
    /// A sampler for a vocabulary of `n_vocab` tokens.
    pub fn new(params: SamplerParams, n_vocab: usize) -> Result<Sampler> {
        params.validate()?;
        let rng = params.seed ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Sampler {
            recent: vec![0; params.penalty_last_n.max(1)],
            params,
            rng,
            idx: Vec::with_capacity(n_vocab),
            probs: Vec::with_capacity(n_vocab),
            recent_len: 0,
            recent_pos: 0,
            n_vocab,
            #[cfg(feature = "structured")]
            constraint: None,
        })
    }

    /// Bytes a sampler for `n_vocab` tokens holds with a penalty window of `penalty_last_n`.
    pub fn planned_bytes(n_vocab: usize, penalty_last_n: usize) -> usize {
        n_vocab * (std::mem::size_of::<u32>() + std::mem::size_of::<f32>())
            + penalty_last_n.max(1) * std::mem::size_of::<Token>()
    }

    /// The vocabulary size the sampler was made for.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Forgets the recent tokens and reseeds; a constraint starts over.
    pub fn reset(&mut self) {
        self.recent_len = 0;
        self.recent_pos = 0;
        self.rng = self.params.seed ^ 0x9E37_79B9_7F4A_7C15;
        #[cfg(feature = "structured")]
        if let Some(c) = &mut self.constraint {
            let _ = c.reset();
        }
    }

    /// Constrains what [`sample`](Self::sample) may pick (a JSON schema or a grammar, see
    /// [`crate::structured`]), or lifts the constraint (`None`). The constraint follows the
    /// tokens given to [`commit`](Self::commit).
    #[cfg(feature = "structured")]
    pub fn set_constraint(&mut self, c: Option<Constraint>) {
        self.constraint = c.map(Box::new);
    }

    /// The constraint, if any (its error, whether the output is complete).
    #[cfg(feature = "structured")]
    pub fn constraint_mut(&mut self) -> Option<&mut Constraint> {
        self.constraint.as_deref_mut()
    }

    /// Records a token this sampler picked and that was kept: for the penalties, and for the
    /// constraint. (Prompt tokens go to [`accept`](Self::accept) only.)
    pub fn commit(&mut self, t: Token) {
        self.accept(t);
        #[cfg(feature = "structured")]
        if let Some(c) = &mut self.constraint {
            c.commit(t);
        }
    }

    /// Records a token (prompt or generated) for the penalties.
    pub fn accept(&mut self, t: Token) {
        if self.params.penalty_last_n == 0 {
            return;
        }
        self.recent[self.recent_pos] = t;
        self.recent_pos = (self.recent_pos + 1) % self.recent.len();
        self.recent_len = (self.recent_len + 1).min(self.recent.len());
    }

    fn next_f32(&mut self) -> f32 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let v = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks the next token from `logits` (which the penalties modify in place).
    pub fn sample(&mut self, logits: &mut [f32]) -> Token {
        #[cfg(feature = "structured")]
        if let Some(c) = &mut self.constraint {
            c.mask(logits);
        }
        self.apply_penalties(logits);
        // A temperature so small that 1/T overflows (a subnormal) is greedy's limit: take it as
        // greedy (the softmax below would compute 0 * inf = NaN for the top token).
        if self.params.temperature <= 0.0 || self.params.top_k == 1 || !(1.0 / self.params.temperature).is_finite() {
            return argmax(logits);
        }
        // Candidates sorted by logit (top-k first). Tokens at -inf (a constraint's mask: most of
        // the vocabulary under a JSON schema) have probability 0 and would only be sorted: they
        // are left out, which changes no draw.
        self.idx.clear();
        self.idx
            .extend((0..logits.len() as u32).filter(|&i| logits[i as usize] > f32::NEG_INFINITY));
        if self.idx.is_empty() {
            return argmax(logits);
        }
        let k = if self.params.top_k == 0 {
            self.idx.len()
        } else {
            self.params.top_k.min(self.idx.len())
        };
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        if k < self.idx.len() {
            self.idx.select_nth_unstable_by(k - 1, by_logit);
            self.idx.truncate(k);
        }
        self.idx.sort_unstable_by(by_logit);
        // Softmax with temperature over the candidates.
        let inv_t = 1.0 / self.params.temperature;
        let max = logits[self.idx[0] as usize];
        self.probs.clear();
        let mut sum = 0.0;
        for &i in &self.idx {
            let p = ((logits[i as usize] - max) * inv_t).exp();
            self.probs.push(p);
            sum += p;
        }
        self.probs.iter_mut().for_each(|p| *p /= sum);
        // min-p, then top-p (both keep at least one token).
        let mut n = self.probs.len();
        if self.params.min_p > 0.0 {
            let floor = self.probs[0] * self.params.min_p;
            n = self.probs.iter().take_while(|&&p| p >= floor).count().max(1);
        }
        if self.params.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = n;
            for (i, &p) in self.probs[..n].iter().enumerate() {
                cum += p;
                if cum >= self.params.top_p {
                    keep = i + 1;
                    break;
                }
            }
            n = keep.max(1);
        }
        let total: f32 = self.probs[..n].iter().sum();
        let mut r = self.next_f32() * total;
        for i in 0..n {
            r -= self.probs[i];
            if r <= 0.0 {
                return self.idx[i];
            }
        }
        self.idx[n - 1]
    }

    fn apply_penalties(&mut self, logits: &mut [f32]) {
        let p = &self.params;
        if self.recent_len == 0 || (p.repeat_penalty == 1.0 && p.presence_penalty == 0.0 && p.frequency_penalty == 0.0)
        {
            return;
        }
        let window = &self.recent[..self.recent_len.min(self.recent.len())];
        for (i, &t) in window.iter().enumerate() {
            // Each distinct token once: skip if it appeared earlier in the window.
            if window[..i].contains(&t) {
                continue;
            }
            let Some(l) = logits.get_mut(t as usize) else { continue };
            let count = window.iter().filter(|&&u| u == t).count() as f32;
            if p.repeat_penalty != 1.0 {
                *l = if *l > 0.0 {
                    *l / p.repeat_penalty
                } else {
                    *l * p.repeat_penalty
                };
            }
            *l -= count * p.frequency_penalty + p.presence_penalty;
        }
    }
}

/// The index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> Token {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as Token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 5.0, 3.0, 4.0, -2.0, 4.5]
    }

    #[test]
    fn greedy_picks_the_max() {
        let mut s = Sampler::new(SamplerParams::greedy(), 6).unwrap();
        assert_eq!(s.sample(&mut logits()), 1);
    }

    #[test]
    fn masked_tokens_are_never_drawn_and_the_draws_are_those_of_the_unmasked_logits() {
        // The full distribution (no top-k/top-p/min-p cut), as constrained sampling runs it.
        let p = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 3,
            ..Default::default()
        };
        let n = 4096;
        let mut masked = vec![f32::NEG_INFINITY; n];
        let allowed = [7usize, 300, 301, 4095];
        for (j, &t) in allowed.iter().enumerate() {
            masked[t] = j as f32 * 0.5;
        }
        // The same four logits in a four-token vocabulary, drawn with the same seed.
        let small: Vec<f32> = allowed.iter().map(|&t| masked[t]).collect();
        let (mut a, mut b) = (Sampler::new(p.clone(), n).unwrap(), Sampler::new(p, 4).unwrap());
        for _ in 0..200 {
            let got = a.sample(&mut masked.clone()) as usize;
            let want = allowed[b.sample(&mut small.clone()) as usize];
            assert_eq!(got, want);
        }
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(
            SamplerParams {
                temperature: 5.0,
                top_k: 1,
                ..Default::default()
            },
            6,
        )
        .unwrap();
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits()), 1);
        }
    }

    #[test]
    fn a_subnormal_temperature_is_greedy() {
        // 1/T overflows to infinity: the top token's softmax term was 0 * inf = NaN and the
        // draw picked arbitrary tokens.
        for t in [1e-40f32, f32::MIN_POSITIVE / 4.0, 2e-39] {
            let mut s = Sampler::new(
                SamplerParams {
                    temperature: t,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    ..Default::default()
                },
                6,
            )
            .unwrap();
            for _ in 0..50 {
                assert_eq!(s.sample(&mut logits()), 1, "temperature {t:e}");
            }
        }
    }

    #[test]
    fn top_k_restricts_the_candidates() {
        let mut s = Sampler::new(
            SamplerParams {
                temperature: 100.0,
                top_k: 2,
                top_p: 1.0,
                min_p: 0.0,
                ..Default::default()
            },
            6,
        )
        .unwrap();
        for _ in 0..200 {
            assert!([1, 5].contains(&s.sample(&mut logits())));
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_sufficient_set() {
        // With T=1: p(1) ~ 0.49, p(5) ~ 0.30 -> top_p 0.5 keeps tokens 1 and 5 only.
        let mut s = Sampler::new(
            SamplerParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.5,
                min_p: 0.0,
                ..Default::default()
            },
            6,
        )
        .unwrap();
        let mut seen = [0; 6];
        for _ in 0..500 {
            seen[s.sample(&mut logits()) as usize] += 1;
        }
        assert!(seen[1] > 0 && seen[5] > 0);
        assert_eq!(seen[0] + seen[2] + seen[3] + seen[4], 0);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        // p(x)/p(max) = exp(x - 5): min_p 0.3 keeps 5.0 and 4.5 (0.61) but not 4.0 (0.37)? it does (0.37 > 0.3); drops 3.0 (0.14).
        let mut s = Sampler::new(
            SamplerParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.3,
                ..Default::default()
            },
            6,
        )
        .unwrap();
        let mut seen = [0; 6];
        for _ in 0..1000 {
            seen[s.sample(&mut logits()) as usize] += 1;
        }
        assert!(seen[1] > 0 && seen[5] > 0 && seen[3] > 0);
        assert_eq!(seen[0] + seen[2] + seen[4], 0);
    }

    #[test]
    fn penalties_change_the_logits_of_recent_tokens() {
        let mut s = Sampler::new(
            SamplerParams {
                temperature: 0.0,
                repeat_penalty: 2.0,
                presence_penalty: 0.5,
                frequency_penalty: 0.25,
                penalty_last_n: 3,
                ..Default::default()
            },
            6,
        )
        .unwrap();
        for t in [1, 1, 4, 9] {
            s.accept(t); // window of 3: [1, 4, 9] after the ring wraps (9 is out of vocabulary: ignored)
        }
        let mut l = logits();
        let t = s.sample(&mut l);
        assert_eq!(l[1], 5.0 / 2.0 - 0.5 - 0.25);
        assert_eq!(l[4], -2.0 * 2.0 - 0.5 - 0.25);
        assert_eq!(l[5], 4.5);
        assert_eq!(t, 5);
        s.reset();
        let mut l = logits();
        assert_eq!(s.sample(&mut l), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_different_seed_differs() {
        let run = |seed| {
            let mut s = Sampler::new(
                SamplerParams {
                    temperature: 1.5,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed,
                    ..Default::default()
                },
                6,
            )
            .unwrap();
            (0..64).map(|_| s.sample(&mut logits())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn out_of_range_parameters_are_rejected() {
        for p in [
            SamplerParams {
                temperature: -1.0,
                ..Default::default()
            },
            SamplerParams {
                top_p: 0.0,
                ..Default::default()
            },
            SamplerParams {
                top_p: 1.5,
                ..Default::default()
            },
            SamplerParams {
                min_p: 2.0,
                ..Default::default()
            },
            SamplerParams {
                repeat_penalty: 0.0,
                ..Default::default()
            },
            SamplerParams {
                temperature: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(Sampler::new(p, 6), Err(RuntimeError::InvalidParameter { .. })));
        }
    }
}
