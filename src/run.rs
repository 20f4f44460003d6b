//! `tsharp run`, `tsharp tokenize`, `tsharp detokenize`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tensorsharp_runtime::{generate, KvType, Model, Sampler, SamplerParams, Session, SessionParams, StopReason};

use crate::default_model;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Set by SIGINT; the generation loop checks it between tokens.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C stops generation at the next token boundary; a second Ctrl-C kills (SA_RESETHAND).
fn install_sigint() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESETHAND | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &act) } {
        eprintln!("tsharp: warning: could not install the Ctrl-C handler: {e}");
    }
}

/// Which model to use.
#[derive(Args, Debug)]
pub struct ModelArg {
    /// Model file (GGUF). Default: SmolLM2-135M-Instruct Q4_1, fetched on first use.
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
}

impl ModelArg {
    fn resolve(&self) -> Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => Ok(default_model::path()?),
        }
    }
}

/// Options of `tsharp run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The prompt (special tokens such as <|im_start|> are parsed).
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Threads (default: one per CPU).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Context length (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx", default_value_t = 0)]
    ctx: usize,
    /// Prompt tokens per prefill batch.
    #[arg(short = 'b', long = "batch", default_value_t = 64)]
    batch: usize,
    /// KV cache type: f16, f32 or q8_0.
    #[arg(long = "kv-type", default_value = "f16")]
    kv_type: String,
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Presence penalty (0 = off).
    #[arg(long = "presence-penalty", default_value_t = 0.0)]
    presence_penalty: f32,
    /// Frequency penalty (0 = off).
    #[arg(long = "frequency-penalty", default_value_t = 0.0)]
    frequency_penalty: f32,
    /// Tokens the penalties look back over.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    repeat_last_n: usize,
    /// Random seed.
    #[arg(short = 's', long = "seed", default_value_t = 0x5EED)]
    seed: u64,
    /// Stop string (repeatable); not printed.
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Print one JSON object (prompt token ids, generated ids, text, timings) instead of streaming.
    #[arg(long)]
    json: bool,
}

pub fn run(a: RunArgs) -> Result<()> {
    let path = a.model.resolve()?;
    let t0 = Instant::now();
    let model = Arc::new(Model::load(&path)?);
    let kv_type = KvType::from_name(&a.kv_type)?;
    let mut session = Session::new(
        Arc::clone(&model),
        SessionParams {
            n_ctx: a.ctx,
            n_batch: a.batch,
            n_threads: a.threads,
            kv_type,
            ..Default::default()
        },
    )?;
    let sp = SamplerParams {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        presence_penalty: a.presence_penalty,
        frequency_penalty: a.frequency_penalty,
        penalty_last_n: a.repeat_last_n,
        seed: a.seed,
    };
    let mut sampler = Sampler::new(sp, model.tokenizer().n_vocab())?;
    let load_secs = t0.elapsed().as_secs_f64();
    let prompt = model.tokenizer().tokenize(&a.prompt, true, true);
    if prompt.is_empty() {
        return Err("the prompt is empty after tokenization".into());
    }
    install_sigint();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut text = String::new();
    let mut write_err = None;
    let g = generate(
        &mut session,
        &mut sampler,
        &prompt,
        a.n_predict,
        &a.stop,
        &INTERRUPTED,
        |s| {
            if a.json {
                text.push_str(s);
            } else if write_err.is_none() {
                if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    let pp = g.n_prompt as f64 / g.prompt_secs.max(1e-9);
    let n_gen = g.tokens.len().saturating_sub(1);
    let tg = n_gen as f64 / g.gen_secs.max(1e-9);
    let reason = match &g.reason {
        StopReason::EndOfGeneration => "eog".to_owned(),
        StopReason::MaxTokens => "max_tokens".to_owned(),
        StopReason::StopString(i) => format!("stop:{i}"),
        StopReason::ContextFull => "context_full".to_owned(),
        StopReason::Interrupted => "interrupted".to_owned(),
    };
    if a.json {
        let j = json!({
            "model": path.display().to_string(),
            "kernels": model.kernels().tier().name(),
            "threads": session.params().n_threads,
            "prompt_tokens": prompt,
            "tokens": g.tokens,
            "text": text,
            "stop_reason": reason,
            "timings": {
                "load_ms": load_secs * 1e3,
                "prompt_ms": g.prompt_secs * 1e3,
                "prompt_tokens_per_s": pp,
                "gen_ms": g.gen_secs * 1e3,
                "gen_tokens_per_s": tg,
            },
        });
        writeln!(out, "{j}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "tsharp: load {:.0} ms | prompt {} tokens, {:.1} ms, {:.1} tok/s | generation {} tokens, {:.1} tok/s | {} threads, {} kernels | stop: {reason}",
            load_secs * 1e3,
            g.n_prompt,
            g.prompt_secs * 1e3,
            pp,
            g.tokens.len(),
            tg,
            session.params().n_threads,
            model.kernels().tier().name()
        );
    }
    if g.reason == StopReason::Interrupted {
        eprintln!("tsharp: interrupted");
    }
    Ok(())
}

/// Options of `tsharp tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Do not add BOS/EOS and treat special-token text as plain text.
    #[arg(long = "no-special")]
    no_special: bool,
    /// The text.
    text: String,
}

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let f = tensorsharp_models::GgufFile::open(a.model.resolve()?)?;
    let tok = tensorsharp_runtime::Tokenizer::from_gguf(&f)?;
    let ids = tok.tokenize(&a.text, !a.no_special, !a.no_special);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

/// Options of `tsharp detokenize`.
#[derive(Args, Debug)]
pub struct DetokenizeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print control tokens (BOS, <|im_end|>, ...) as their text.
    #[arg(long)]
    special: bool,
    /// Token ids: separate arguments, or one JSON list.
    #[arg(required = true)]
    ids: Vec<String>,
}

pub fn detokenize(a: DetokenizeArgs) -> Result<()> {
    let f = tensorsharp_models::GgufFile::open(a.model.resolve()?)?;
    let tok = tensorsharp_runtime::Tokenizer::from_gguf(&f)?;
    let joined = a.ids.join(" ");
    let mut ids = Vec::new();
    for part in joined
        .split(|c: char| c == ',' || c == '[' || c == ']' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let id: u32 = part.parse().map_err(|_| format!("'{part}' is not a token id"))?;
        if id as usize >= tok.n_vocab() {
            return Err(format!("token id {id} is outside the vocabulary of {}", tok.n_vocab()).into());
        }
        ids.push(id);
    }
    print!("{}", tok.detokenize(&ids, a.special));
    std::io::stdout().flush()?;
    Ok(())
}
