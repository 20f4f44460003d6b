//! Structured output: sampling constrained by a JSON schema or a grammar, so that the reply
//! always parses (and validates). Built on `llguidance` (the constraint engine llama.cpp, vLLM
//! and others use): the schema or grammar is compiled against the model's vocabulary, and each
//! step masks the tokens that could not continue a valid output; at the end only
//! end-of-generation is allowed.
//!
//! Grammars: llguidance's Lark syntax, or llama.cpp's GBNF (`root ::= ...`, translated to Lark by
//! [`gbnf`]). The constraint lives in the [`Sampler`](crate::Sampler)
//! ([`Sampler::set_constraint`](crate::Sampler::set_constraint)); unconstrained sampling does
//! not touch it. Constrained steps allocate (llguidance's mask); measured in the README.

pub mod gbnf;

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use crate::error::{Result, RuntimeError};
use crate::model::Model;
use crate::tokenizer::{Token, TokenType};

/// The model's vocabulary as llguidance sees it: every token's bytes (control tokens marked
/// special, so text never matches them) and the tokenizer for its lexer.
struct Vocabulary {
    trie: TokTrie,
    model: Arc<Model>,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.model
            .tokenizer()
            .tokenize(&String::from_utf8_lossy(s), false, false)
    }
}

/// What constraints of one model share: the vocabulary trie and llguidance's parser factory
/// (building them takes tens of milliseconds on a 150k vocabulary: keep one per model).
pub struct ConstraintFactory {
    factory: ParserFactory,
    n_vocab: usize,
}

impl std::fmt::Debug for ConstraintFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintFactory")
            .field("n_vocab", &self.n_vocab)
            .finish_non_exhaustive()
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidParameter {
        name: "structured output",
        problem: format!("{what}: {e}"),
    }
}

impl ConstraintFactory {
    /// The factory for `model`'s vocabulary.
    pub fn new(model: &Arc<Model>) -> Result<ConstraintFactory> {
        let tok = model.tokenizer();
        let n_vocab = tok.n_vocab();
        let eos = tok
            .eos()
            .or_else(|| tok.eog_tokens().first().copied())
            .ok_or_else(|| bad("the model", "has no end-of-generation token"))?;
        let words: Vec<Vec<u8>> = (0..n_vocab as Token)
            .map(|t| match tok.token_type(t) {
                Some(TokenType::Control) | Some(TokenType::Unused) | Some(TokenType::Unknown) => {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(tok.token_text(t).unwrap_or_default().as_bytes());
                    w
                }
                _ => tok.piece(t, false).to_vec(),
            })
            .collect();
        let mut info = TokRxInfo::new(n_vocab as u32, eos);
        info.tok_bos = tok.bos();
        let env: TokEnv = Arc::new(Vocabulary {
            trie: TokTrie::from(&info, &words),
            model: Arc::clone(model),
        });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| bad("llguidance", e))?;
        factory.quiet();
        Ok(ConstraintFactory { factory, n_vocab })
    }

    fn build(&self, what: &str, grammar: TopLevelGrammar) -> Result<Constraint> {
        let parser = self.factory.create_parser(grammar).map_err(|e| bad(what, e))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(bad(what, e));
        }
        Ok(Constraint {
            matcher,
            n_vocab: self.n_vocab,
        })
    }

    /// A constraint to JSON that validates against `schema` (JSON Schema text). The JSON is
    /// written with single spaces after `:` and `,` and no other whitespace (a reply cannot
    /// wander into whitespace until its token limit), unless the schema's own `x-guidance`
    /// options say otherwise.
    pub fn json_schema(&self, schema: &str) -> Result<Constraint> {
        let mut v: serde_json::Value =
            serde_json::from_str(schema).map_err(|e| bad("the JSON schema is not JSON", e))?;
        if let Some(o) = v.as_object_mut() {
            o.entry("x-guidance").or_insert_with(
                || serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
            );
        }
        self.build("JSON schema", TopLevelGrammar::from_json_schema(v))
    }

    /// A constraint to a grammar: GBNF (llama.cpp's syntax, recognised by `::=`) or Lark
    /// (llguidance's syntax).
    pub fn grammar(&self, text: &str) -> Result<Constraint> {
        if gbnf::looks_like_gbnf(text) {
            let lark = gbnf::to_lark(text).map_err(|e| bad("GBNF grammar", e))?;
            self.build("GBNF grammar", TopLevelGrammar::from_lark(lark))
        } else {
            self.build("Lark grammar", TopLevelGrammar::from_lark(text.to_string()))
        }
    }
}

/// One generation's constraint: which tokens may come next.
pub struct Constraint {
    matcher: Matcher,
    n_vocab: usize,
}

impl Clone for Constraint {
    fn clone(&self) -> Self {
        Constraint {
            matcher: self.matcher.deep_clone(),
            n_vocab: self.n_vocab,
        }
    }
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("stopped", &self.matcher.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Constraint {
    /// Sets the logits of every token that cannot come next to -inf (only end-of-generation
    /// once the output is complete). After an error in the engine only end-of-generation is
    /// left, and [`error`](Self::error) says why.
    pub fn mask(&mut self, logits: &mut [f32]) {
        match self.matcher.compute_mask_or_eos() {
            Ok(m) => {
                for (t, l) in logits.iter_mut().enumerate().take(self.n_vocab) {
                    if !m.is_allowed(t as TokenId) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            Err(_) => {
                let eos = self.matcher.tok_env().map(|e| e.tok_trie().eos_token()).ok();
                for (t, l) in logits.iter_mut().enumerate() {
                    if Some(t as TokenId) != eos {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }

    /// Records the token that was sampled.
    pub fn commit(&mut self, t: Token) {
        // An error puts the matcher in its error state: reported by `error`, the next mask
        // leaves only end-of-generation.
        let _ = self.matcher.consume_token(t);
    }

    /// Whether the output so far is complete (end-of-generation allowed).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// The engine's error, if it failed.
    pub fn error(&self) -> Option<String> {
        self.matcher.get_error()
    }

    /// Starts over (a new generation under the same schema or grammar).
    pub fn reset(&mut self) -> Result<()> {
        self.matcher.reset().map_err(|e| bad("reset", e))
    }
}
