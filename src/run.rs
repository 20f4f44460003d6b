//! `tsharp run`, `tsharp tokenize`, `tsharp detokenize`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tensorsharp_runtime::plan::parse_budget;
use tensorsharp_runtime::prompt_cache::{self, CacheLoad};
use tensorsharp_runtime::residency::{Placement, Step};
use tensorsharp_runtime::structured::{Constraint, ConstraintFactory};
use tensorsharp_runtime::{
    ChatTemplate, Conversation, Flow, Generator, LockMode, Model, Sampler, SamplerParams, Session, SessionParams,
    StopReason, WeightsMode,
};

use crate::default_model;
use crate::template::TemplateChoice;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Set by SIGINT; the generation loop checks it between tokens.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The session's cancel flag (checked between layers), set by SIGINT too.
static CANCEL: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_sigint(_: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let p = CANCEL.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: `p` comes from an `Arc` that `install_sigint` leaked, so it is never freed;
        // storing to an atomic is async-signal-safe.
        unsafe { (*p).store(true, Ordering::SeqCst) };
    }
}

/// Ctrl-C stops generation within one layer (the session's cancel flag) and the loop at the
/// next token boundary. With `once` a second Ctrl-C kills (SA_RESETHAND: `tsharp run`);
/// without, every Ctrl-C stops the current reply (`tsharp chat`).
pub(crate) fn install_interrupt(cancel: Arc<AtomicBool>, once: bool) {
    CANCEL.store(Arc::into_raw(cancel) as *mut AtomicBool, Ordering::SeqCst);
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let flags = if once {
        SaFlags::SA_RESETHAND | SaFlags::SA_RESTART
    } else {
        SaFlags::SA_RESTART
    };
    let act = SigAction::new(SigHandler::Handler(on_sigint), flags, SigSet::empty());
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
    /// Map the model file instead of reading it into huge-page memory: instant load and pages
    /// shared with other processes, but slower decode.
    #[arg(long)]
    pub mmap: bool,
}

impl ModelArg {
    /// Where the weights go: resident unless --mmap.
    pub fn weights_mode(&self) -> WeightsMode {
        if self.mmap {
            WeightsMode::Mapped
        } else {
            WeightsMode::Resident
        }
    }

    pub fn resolve(&self) -> Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => Ok(default_model::path()?),
        }
    }
}

/// Session options shared by `run`, `plan` and `bench`.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Threads (default: the board profile's, one per big core; `tsharp board`).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Context length (default: the model's, at most the board profile's: 4096, or 2048 on 4 GB boards).
    #[arg(short = 'c', long = "ctx", default_value_t = 0)]
    ctx: usize,
    /// Prompt tokens per prefill batch.
    #[arg(short = 'b', long = "batch", default_value_t = 64)]
    batch: usize,
    /// KV cache type: f16, f32, q8_0, or auto (the board profile's; `tsharp board`).
    #[arg(long = "kv-type", default_value = "auto")]
    kv_type: String,
    /// RAM budget for the whole plan (e.g. 512M, 2G, or 60% of the RAM available). A model whose
    /// plan does not fit keeps what fits in RAM and streams the rest of its weights from the
    /// file. Default: the board profile's share of the cgroup limit or MemAvailable.
    #[arg(long = "ram-budget")]
    ram_budget: Option<String>,
    /// Lock the arena and the weights in RAM: --mlock (warn if not permitted) or --mlock=required.
    #[arg(long = "mlock", num_args = 0..=1, default_missing_value = "on", default_value = "off")]
    mlock: String,
    /// Pin threads to these CPUs (e.g. 2-5 or 0,2): thread i on the i-th listed CPU.
    #[arg(long = "cpus")]
    cpus: Option<String>,
    /// SCHED_FIFO priority 1..99 for the threads (warns and continues when not permitted).
    #[arg(long = "rt-priority", default_value_t = 0)]
    rt_priority: i32,
    /// Back the arena with transparent huge pages.
    #[arg(long = "huge-pages")]
    huge_pages: bool,
    /// How streamed weights are read (under --ram-budget): auto (O_DIRECT when the page cache
    /// cannot keep them between tokens), on (O_DIRECT), off (the page cache).
    #[arg(long = "direct-io", default_value = "auto", value_name = "auto|on|off")]
    direct_io: String,
    /// Microseconds an idle worker spins before parking.
    #[arg(long = "spin-us", default_value_t = 500)]
    spin_us: u64,
}

impl SessionArgs {
    /// The session parameters these options describe.
    pub fn params(&self) -> Result<SessionParams> {
        Ok(SessionParams {
            n_ctx: self.ctx,
            n_batch: self.batch,
            n_threads: self.threads,
            kv_type: tensorsharp_runtime::board::kv_type(&self.kv_type)?,
            spin: std::time::Duration::from_micros(self.spin_us),
            ram_budget: self.ram_budget.as_deref().map(parse_budget).transpose()?,
            mlock: LockMode::from_name(&self.mlock)?,
            cpus: match &self.cpus {
                Some(c) => tensorsharp_runtime::pool::parse_cpus(c).map_err(|e| format!("--cpus {e}"))?,
                None => Vec::new(),
            },
            rt_priority: self.rt_priority,
            huge_pages: self.huge_pages,
            direct_io: tensorsharp_runtime::DirectIo::from_name(&self.direct_io)?,
            ..Default::default()
        })
    }
}

/// Sampling options shared by `run` and `chat`.
#[derive(Args, Debug)]
pub struct SamplingArgs {
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
}

impl SamplingArgs {
    /// The sampler parameters these options describe.
    pub fn params(&self) -> SamplerParams {
        SamplerParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }
}

/// Structured output, shared by `run` and `chat`.
#[derive(Args, Debug)]
pub struct StructuredArgs {
    /// Constrain the output to JSON that validates against this JSON Schema (a file, or the
    /// schema itself when it starts with '{').
    #[arg(long = "json-schema")]
    json_schema: Option<String>,
    /// Constrain the output to a grammar file: llama.cpp's GBNF (`root ::= ...`) or Lark.
    #[arg(long = "grammar", conflicts_with = "json_schema")]
    grammar: Option<PathBuf>,
}

impl StructuredArgs {
    /// The constraint these options ask for, compiled for `model`'s vocabulary.
    pub fn constraint(&self, model: &Arc<Model>) -> Result<Option<Constraint>> {
        if self.json_schema.is_none() && self.grammar.is_none() {
            return Ok(None);
        }
        let factory = ConstraintFactory::new(model)?;
        if let Some(s) = &self.json_schema {
            let text = if s.trim_start().starts_with('{') {
                s.clone()
            } else {
                std::fs::read_to_string(s).map_err(|e| format!("--json-schema {s}: {e}"))?
            };
            return Ok(Some(factory.json_schema(&text)?));
        }
        let g = self.grammar.as_ref().expect("checked above");
        let text = std::fs::read_to_string(g).map_err(|e| format!("--grammar {}: {e}", g.display()))?;
        Ok(Some(
            factory
                .grammar(&text)
                .map_err(|e| format!("--grammar {}: {e}", g.display()))?,
        ))
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
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    structured: StructuredArgs,
    /// Stop string (repeatable); not printed.
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// A system message before the prompt (implies --chat).
    #[arg(long)]
    system: Option<String>,
    // --chat-template (implies --chat).
    #[command(flatten)]
    template: TemplateChoice,
    /// Keep the session state after the prompt in this file and start from it next time: a
    /// prompt that starts the same way prefills only the rest.
    #[arg(long = "prompt-cache")]
    prompt_cache: Option<PathBuf>,
    /// Print one JSON object (prompt token ids, generated ids, text, timings) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Also report per-token decode latency (p50 / p90 / p99 / max) and the memory plan total.
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    gpu: crate::gpu::GpuArgs,
}

/// The name `--json` gives a stop reason.
pub fn stop_reason_name(r: &StopReason) -> String {
    match r {
        StopReason::EndOfGeneration => "eog".to_owned(),
        StopReason::MaxTokens => "max_tokens".to_owned(),
        StopReason::StopString(i) => format!("stop:{i}"),
        StopReason::ContextFull => "context_full".to_owned(),
        StopReason::Cancelled => "cancelled".to_owned(),
        StopReason::Callback => "callback".to_owned(),
    }
}

/// How streamed weights are read, for `--json`: "direct" (O_DIRECT), "page cache", or null
/// when nothing streams.
pub fn streamed_reads(session: &Session) -> serde_json::Value {
    match session.streams_direct() {
        Some(true) => json!("direct"),
        Some(false) => json!("page cache"),
        None => serde_json::Value::Null,
    }
}

/// p-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    f64::from(sorted[rank.min(sorted.len()) - 1])
}

/// Decode latency summary in milliseconds: p50, p90, p99, max.
pub fn latency_summary(lat: &[f32]) -> [f64; 4] {
    let mut v = lat.to_vec();
    v.sort_by(f32::total_cmp);
    [50.0, 90.0, 99.0, 100.0].map(|p| percentile(&v, p) * 1e3)
}

/// (peak RSS bytes, major page faults so far) of this process.
pub fn rusage() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        // ru_maxrss is in KiB on Linux.
        Ok(u) => (u.max_rss() as u64 * 1024, u.major_page_faults() as u64),
        Err(_) => (0, 0),
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    let path = a.model.resolve()?;
    let t0 = Instant::now();
    let params = a.session.params()?;
    let model = Arc::new(Model::load_for(&path, a.model.weights_mode(), None, &params)?);
    let mut session = Session::new(Arc::clone(&model), params)?;
    for w in session.warnings() {
        eprintln!("tsharp: warning: {w}");
    }
    a.gpu.attach(&model, &mut session)?;
    if a.prompt_cache.is_some() && session.backend_name().is_some() {
        return Err(
            "--prompt-cache saves the KV cache to a file, and with --gpu it is on the device: leave one of them out"
                .into(),
        );
    }
    let mut sampler = Sampler::new(a.sampling.params(), model.tokenizer().n_vocab())?;
    sampler.set_constraint(a.structured.constraint(&model)?);
    let max_stop = a.stop.iter().map(String::len).max().unwrap_or(0);
    let mut generator = Generator::new(&session, max_stop);
    if session.params().mlock != LockMode::Off {
        // The session locked the arena and the weights; a real-time process also locks its code
        // and everything it maps later, so nothing it runs faults after load.
        use nix::sys::mman::{mlockall, MlockAllFlags};
        if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            if session.params().mlock == LockMode::Required {
                return Err(format!("mlockall: {e} (raise the locked-memory limit or drop --mlock=required)").into());
            }
            eprintln!("tsharp: warning: mlockall: {e}; code pages may still fault");
        }
    }
    let load_secs = t0.elapsed().as_secs_f64();
    let (_, majflt_loaded) = rusage();
    let prompt = if a.chat || a.system.is_some() || a.template.chat_template.is_some() {
        let template = ChatTemplate::for_model(&model, a.template.chat_template.as_deref())?;
        let mut conv = Conversation::default();
        if let Some(system) = &a.system {
            conv.push("system", system);
        }
        conv.push("user", &a.prompt);
        template.tokenize(model.tokenizer(), &template.render(&conv)?)
    } else {
        model.tokenizer().tokenize(&a.prompt, true, true)
    };
    if prompt.is_empty() {
        return Err("the prompt is empty after tokenization".into());
    }
    let mut save_cache = false;
    let t_cache = Instant::now();
    if let Some(pc) = &a.prompt_cache {
        let loaded = prompt_cache::load(&mut session, pc).map_err(|e| {
            format!(
                "--prompt-cache {}: {e}; pass another file for this model and session, or delete it",
                pc.display()
            )
        })?;
        if let CacheLoad::Ignored { reason } = &loaded {
            eprintln!(
                "tsharp: warning: prompt cache {}: {reason}; rebuilding it",
                pc.display()
            );
        }
        save_cache = !prompt_cache::covers(session.cached_tokens(), &prompt);
    }
    let cache_load_secs = t_cache.elapsed().as_secs_f64();
    install_interrupt(session.cancel_flag(), true);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut text = String::new();
    let mut write_err = None;
    let g = generator.run_conversation(
        &mut session,
        &mut sampler,
        &prompt,
        a.n_predict,
        &a.stop,
        &INTERRUPTED,
        |_, s| {
            if a.json {
                text.push_str(s);
            } else if write_err.is_none() && !s.is_empty() {
                if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
                    write_err = Some(e);
                }
            }
            Flow::Continue
        },
    )?;
    // The state after the prompt and the reply: the next run keeps what its prompt shares
    // with it. Saved after the reply, so the save is not on the first token's path.
    if let Some(pc) = a.prompt_cache.as_ref().filter(|_| save_cache) {
        prompt_cache::save(&session, pc)?;
    }
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    let pp = g.n_prompt as f64 / g.prompt_secs.max(1e-9);
    let n_gen = g.n_generated.saturating_sub(1);
    let tg = n_gen as f64 / g.gen_secs.max(1e-9);
    let reason = stop_reason_name(&g.reason);
    let (peak_rss, majflt_end) = rusage();
    let lat = latency_summary(generator.latencies());
    let plan_total = session.full_plan().total();
    let image = tensorsharp_runtime::plan::program_image_bytes(&path);
    if a.json {
        let j = json!({
            "model": path.display().to_string(),
            "kernels": model.kernels().tier().name(),
            "threads": session.params().n_threads,
            "prompt_tokens": prompt,
            "cached_tokens": g.cached_tokens,
            "tokens": generator.tokens(),
            "text": text,
            "stop_reason": reason,
            "plan_total_bytes": plan_total,
            "peak_rss_bytes": peak_rss,
            "program_image_bytes": image,
            "streamed_reads": streamed_reads(&session),
            "major_faults_after_load": majflt_end - majflt_loaded,
            "timings": {
                "load_ms": load_secs * 1e3,
                "prompt_ms": g.prompt_secs * 1e3,
                "prompt_cache_load_ms": cache_load_secs * 1e3,
                "first_token_ms": (cache_load_secs + g.prompt_secs) * 1e3,
                "prompt_tokens_per_s": pp,
                "gen_ms": g.gen_secs * 1e3,
                "gen_tokens_per_s": tg,
                "decode_latency_ms": {"p50": lat[0], "p90": lat[1], "p99": lat[2], "max": lat[3]},
            },
        });
        writeln!(out, "{j}")?;
    } else {
        writeln!(out)?;
        out.flush()?;
        eprintln!(
            "tsharp: load {:.0} ms | prompt {} tokens ({} cached), {:.1} ms, {:.1} tok/s | generation {} tokens, {:.1} tok/s | {} threads, {} kernels | stop: {reason}",
            load_secs * 1e3,
            g.n_prompt,
            g.cached_tokens,
            g.prompt_secs * 1e3,
            pp,
            g.n_generated,
            tg,
            session.params().n_threads,
            model.kernels().tier().name()
        );
        if a.timings {
            eprintln!(
                "tsharp: decode latency ms: p50 {:.2} | p90 {:.2} | p99 {:.2} | max {:.2} ({} tokens) | memory plan total {:.1} MiB + program image {:.1} MiB, peak RSS {:.1} MiB, major faults after load {}",
                lat[0],
                lat[1],
                lat[2],
                lat[3],
                generator.latencies().len(),
                plan_total as f64 / (1 << 20) as f64,
                image as f64 / (1 << 20) as f64,
                peak_rss as f64 / (1 << 20) as f64,
                majflt_end - majflt_loaded
            );
        }
    }
    if let Some(e) = sampler.constraint_mut().and_then(|c| c.error()) {
        eprintln!("tsharp: warning: structured output: {e}");
    }
    if g.reason == StopReason::Cancelled {
        eprintln!("tsharp: interrupted");
    }
    Ok(())
}

/// Options of `tsharp plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    session: SessionArgs,
    /// Also plan the weights' placement on a GPU with this much device memory for weights
    /// (e.g. 2G): which matrices stay on the device and which are copied per token through two
    /// device slots (what `--gpu-budget` of run/chat/bench gives the weights after the KV cache
    /// and activations).
    #[arg(long = "gpu-budget")]
    gpu_budget: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `tsharp plan`: prints the memory plan; exits non-zero when it is over budget.
pub fn plan(a: PlanArgs) -> Result<()> {
    // Planning reads no weights: map the file rather than copy it.
    let params = a.session.params()?;
    let model = Model::load_opts(a.model.resolve()?, WeightsMode::Mapped, None)?;
    let gpu = match &a.gpu_budget {
        Some(g) => Some(model.residency_for(tensorsharp_runtime::plan::parse_size(g)?)?),
        None => None,
    };
    // Over budget with every weight in RAM: the placement `run` would stream under.
    let model = model.planned_for(&params)?;
    let p = Session::plan_for(&model, &params)?;
    let residency_json = |r: &tensorsharp_runtime::residency::ResidencyPlan| {
        let homes: Vec<_> = r
            .matrices
            .iter()
            .zip(&r.placements)
            .map(|(m, pl)| {
                json!({"name": m.name, "bytes": m.bytes, "home": match pl {
                    Placement::Ram { .. } => "ram",
                    Placement::Stream { .. } => "streamed",
                    Placement::Rows => "rows from storage",
                }})
            })
            .collect();
        json!({
            "resident_bytes": r.resident_bytes,
            "staging_bytes": r.staging_bytes(),
            "staging_slots": r.ring,
            "streamed_units": r.units.len(),
            "streamed_bytes_per_token": r.streamed_bytes_per_token(),
            "matrices": homes,
        })
    };
    let residency = model.residency().map(residency_json);
    if a.json {
        let items: Vec<_> = p
            .arena
            .items()
            .iter()
            .map(|i| json!({"name": i.name, "offset": i.offset, "bytes": i.bytes}))
            .collect();
        let j = json!({
            "n_ctx": p.n_ctx, "n_batch": p.n_batch, "n_threads": p.n_threads, "kv_type": p.kv_type.name(),
            "weights": {"bytes": p.weights, "residency": if p.lock == LockMode::Off { "mapped" } else { "pinned" }},
            "arena": {"bytes": p.arena_bytes, "items": items},
            "kv_cache_bytes": p.kv_bytes(),
            "model_tables_bytes": p.model_tables,
            "tokenizer_bytes": p.tokenizer,
            "sampler_bytes": p.sampler,
            "thread_stack_bytes": p.thread_stacks,
            "total_bytes": p.total(),
            "budget": p.budget.as_ref().map(|b| json!({"bytes": b.bytes, "source": b.source})),
            "fits": p.budget.as_ref().is_none_or(|b| p.total() <= b.bytes),
            "residency": residency,
            "gpu_residency": gpu.as_ref().map(residency_json),
        });
        outln!("{j}")?;
    } else {
        out!("{}", p.to_table())?;
        if let Some(r) = model.residency() {
            out!(
                "{}",
                residency_table(r, "weights under the budget", "in RAM", "from storage")
            )?;
        }
        if let Some(g) = &gpu {
            out!(
                "{}",
                residency_table(
                    g,
                    "weights on the GPU (planning only: no CUDA backend yet)",
                    "on GPU",
                    "copied to the GPU"
                )
            )?;
        }
    }
    p.check_budget()?;
    Ok(())
}

/// The placement of a model's matrices under a RAM budget, for `tsharp plan`: per layer (or the
/// output / embedding) what is in RAM and what streams, and the bytes read per token.
fn residency_table(r: &tensorsharp_runtime::residency::ResidencyPlan, title: &str, home: &str, source: &str) -> String {
    use std::fmt::Write as _;
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut s = format!(
        "{title}: {:.2} MiB {home}, {} staging slots of {:.2} MiB, {:.2} MiB {source} per token\n",
        mib(r.resident_bytes),
        r.ring,
        mib(r.slot_bytes),
        mib(r.streamed_bytes_per_token())
    );
    let mut i = 0;
    while i < r.matrices.len() {
        // The output matrix's chunks on one line.
        let group = |s: Step| if let Step::Output(_) = s { Step::Output(0) } else { s };
        let step = group(r.matrices[i].step);
        let (mut ram, mut streamed, mut rows) = (0u64, 0u64, 0u64);
        while i < r.matrices.len() && group(r.matrices[i].step) == step {
            match r.placements[i] {
                Placement::Ram { .. } => ram += r.matrices[i].bytes,
                Placement::Stream { .. } => streamed += r.matrices[i].bytes,
                Placement::Rows => rows += r.matrices[i].bytes,
            }
            i += 1;
        }
        let what = match step {
            Step::Layer(l) => format!("layer {l}"),
            Step::Output(_) => "output".into(),
            Step::Embedding => "token embedding".into(),
        };
        let _ = writeln!(
            s,
            "  {what:<16} {:>9.2} MiB {home} {:>9.2} MiB streamed{}",
            mib(ram),
            mib(streamed),
            if rows > 0 {
                format!(", {:.2} MiB not held (its rows {source} at lookup)", mib(rows))
            } else {
                String::new()
            }
        );
    }
    s
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
    outln!("{}", serde_json::to_string(&ids)?)?;
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
    out!("{}", tok.detokenize(&ids, a.special))?;
    std::io::stdout().flush()?;
    Ok(())
}
