//! One model's scheduler: a bounded priority queue in front of a session with one KV sequence
//! per slot, and the thread that serves them. Each turn of the loop admits queued requests to
//! free slots (a named session to the slot that holds it; an unnamed request to the free slot
//! that holds most of its prompt), prefills one chunk of one newly admitted prompt, then runs
//! one batched decode step for every generating slot (one pass reads the weights once for all
//! of them, and each sequence gets the bits it would get decoded alone). Cancellation, a closed connection and pre-emption are checked every turn, so a
//! request stops within one token or one prefill chunk; a cancel with only its request running
//! stops the pass in progress at its next layer.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tensorsharp_rpc::{
    Done, ErrorCode, Generate, Input, ModelInfo, ModelStatus, ServerMsg, StopReason, Timings, Usage,
};
use tensorsharp_runtime::structured::{Constraint, ConstraintFactory};
use tensorsharp_runtime::{
    BatchRow, ChatTemplate, Conversation, Model, RuntimeError, Sampler, SamplerParams, Session, SessionParams,
    StopFilter, StreamDecoder, Token,
};

use super::config::ModelConfig;
use super::conn::{token_msg, Conn};
use super::lock;

/// A request waiting for a slot.
struct Job {
    conn: Arc<Conn>,
    id: u64,
    tokens: Vec<Token>,
    sampler: SamplerParams,
    constraint: Option<Constraint>,
    max_tokens: u32,
    stops: Vec<String>,
    session: Option<String>,
    priority: u8,
    preempt: bool,
    arrived: Instant,
    /// Arrival order (ties between equal priorities go to the earlier).
    order: u64,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    next_order: u64,
    /// The daemon is stopping: queued requests are refused, running ones finish or, after the
    /// grace period, are cancelled.
    draining: Option<Instant>,
}

/// Totals for `Status`, updated by the scheduler without a lock.
#[derive(Default)]
struct Stats {
    completed: AtomicU64,
    generated: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    /// Generated tokens per second, smoothed over decode steps (`f32` bits).
    rate: AtomicU32,
}

/// What [`Engine::submit`] did with a request.
pub enum Submit {
    /// Queued; the engine answers.
    Queued,
    /// The queue is full (its length).
    Busy(u32),
    /// Not a valid request (why).
    Invalid(String),
}

/// One model, its queue and its scheduler thread.
pub struct Engine {
    /// The name requests use.
    pub name: String,
    /// The model.
    pub model: Arc<Model>,
    /// Its configuration.
    pub cfg: ModelConfig,
    /// Context per sequence (resolved).
    pub n_ctx: usize,
    /// Bytes of the memory plan (weights, arena, tables).
    pub plan_bytes: u64,
    /// Most sequences decoded in one pass (all slots, within the session's batch).
    pub decode_pass: usize,
    template: Option<ChatTemplate>,
    factory: Mutex<Option<Arc<ConstraintFactory>>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    queue_max: usize,
    active: AtomicU32,
    sessions: AtomicU32,
    /// The scheduler thread has ended (after [`drain`](Self::drain)).
    stopped: AtomicBool,
    /// The session's cancel flag: raised, the forward pass in progress stops at its next layer
    /// (nothing advances; the scheduler clears it and goes on).
    abort_pass: Arc<AtomicBool>,
    stats: Stats,
    /// When the scheduler last began a turn or woke while idle (ms since `epoch`): the
    /// watchdog's evidence that the thread is not stuck.
    heartbeat: AtomicU64,
    epoch: Instant,
    /// How often an idle scheduler wakes to show it is alive (None: it sleeps until work).
    tick: Option<Duration>,
}

/// The engine thread's per-slot state.
struct Slot {
    /// The named session the slot's sequence holds.
    key: Option<String>,
    /// When it was last used (the scheduler's turn counter), for LRU eviction.
    last_used: u64,
    run: Option<Running>,
    decoder: StreamDecoder,
    filter: StopFilter,
    /// The text one token made final.
    text: String,
}

/// A request in a slot.
struct Running {
    job: Job,
    sampler: Sampler,
    /// Next prompt token to prefill.
    prompt_at: usize,
    cached: usize,
    generated: u32,
    /// The token to decode next (sampled, not yet in the cache).
    pending: Option<Token>,
    admitted: Instant,
    first_token: Option<Instant>,
}

impl Engine {
    /// Loads the model, checks the plan of its slots against `budget` (bytes left for this
    /// model), creates its session, runs one warm-up pass (every weight page touched, the
    /// kernels' first-use costs paid before the first request) and starts its thread, which
    /// wakes at least every `tick` when idle (for the watchdog).
    pub fn start(
        cfg: ModelConfig,
        budget: Option<u64>,
        queue_max: usize,
        tick: Option<Duration>,
    ) -> Result<Arc<Engine>, String> {
        let params = SessionParams {
            n_ctx: cfg.ctx,
            n_batch: cfg.batch,
            n_seq: cfg.slots,
            n_threads: cfg.threads,
            kv_type: tensorsharp_runtime::board::kv_type(&cfg.kv_type)
                .map_err(|e| format!("model '{}': {e}", cfg.name))?,
            ram_budget: budget,
            ..Default::default()
        };
        // Over its budget with every weight in RAM, the model keeps what fits and streams the
        // rest from the file (`Model::load_for`).
        let model = Arc::new(
            Model::load_for(&cfg.path, tensorsharp_runtime::WeightsMode::Resident, None, &params)
                .map_err(|e| format!("{}: {e}", cfg.path.display()))?,
        );
        if let Some(r) = model.residency() {
            log::info!(
                "model '{}': over the RAM budget with every weight in RAM: {:.1} MiB of weights in RAM, {:.1} MiB streamed from the file per pass",
                cfg.name,
                r.resident_bytes as f64 / 1048576.0,
                r.streamed_bytes_per_token() as f64 / 1048576.0
            );
        }
        let mut session = Session::new(Arc::clone(&model), params).map_err(|e| format!("model '{}': {e}", cfg.name))?;
        let warm = model.tokenizer().bos().unwrap_or(0);
        session
            .prefill_seq(0, &[warm])
            .map_err(|e| format!("model '{}': warm-up pass: {e}", cfg.name))?;
        session.truncate_seq(0, 0);
        let template = match ChatTemplate::for_model(&model, cfg.chat_template.as_deref()) {
            Ok(t) => Some(t),
            Err(e) if cfg.chat_template.is_some() => return Err(format!("model '{}': {e}", cfg.name)),
            Err(e) => {
                log::warn!(
                    "model '{}': no chat template ({e}); chat requests are refused",
                    cfg.name
                );
                None
            }
        };
        let engine = Arc::new(Engine {
            name: cfg.name.clone(),
            n_ctx: session.n_ctx(),
            plan_bytes: session.full_plan().total(),
            decode_pass: cfg.slots.clamp(1, session.params().n_batch),
            model,
            cfg,
            template,
            factory: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            queue_max,
            active: AtomicU32::new(0),
            sessions: AtomicU32::new(0),
            stopped: AtomicBool::new(false),
            abort_pass: session.cancel_flag(),
            stats: Stats::default(),
            heartbeat: AtomicU64::new(0),
            epoch: Instant::now(),
            tick,
        });
        let e = Arc::clone(&engine);
        std::thread::Builder::new()
            .name(format!("engine {}", engine.name))
            .spawn(move || e.run(session))
            .map_err(|err| format!("model '{}': cannot start its thread: {err}", engine.name))?;
        Ok(engine)
    }

    /// The model's description for `Models`.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            path: self.cfg.path.display().to_string(),
            arch: self.model.spec().arch.name().into(),
            n_ctx: self.n_ctx as u32,
            slots: self.cfg.slots as u32,
            n_vocab: self.model.spec().n_vocab as u32,
        }
    }

    /// The scheduler's state for `Status`.
    pub fn status(&self) -> ModelStatus {
        let queued = lock(&self.queue).jobs.len() as u32;
        let s = &self.stats;
        let (prompt, cached) = (
            s.prompt_tokens.load(Ordering::Relaxed),
            s.cached_tokens.load(Ordering::Relaxed),
        );
        ModelStatus {
            name: self.name.clone(),
            queued,
            active: self.active.load(Ordering::Relaxed),
            slots: self.cfg.slots as u32,
            sessions: self.sessions.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            generated_tokens: s.generated.load(Ordering::Relaxed),
            tokens_per_s: f32::from_bits(s.rate.load(Ordering::Relaxed)),
            cache_hit_ratio: if prompt == 0 {
                0.0
            } else {
                cached as f32 / prompt as f32
            },
            plan_bytes: self.plan_bytes,
        }
    }

    /// A cancel arrived: wakes the scheduler, and when at most one request is running (most
    /// likely the cancelled one) stops the forward pass in progress at its next layer instead of
    /// letting it finish the token. With several running, the pass finishes (aborting it would
    /// cost the others their step); the request ends after it either way.
    pub fn cancel_arrived(&self) {
        if self.active.load(Ordering::Relaxed) <= 1 {
            self.abort_pass.store(true, Ordering::SeqCst);
        }
        self.wake.notify_one();
    }

    /// Stops taking requests: queued ones are refused, running ones may finish until `grace`
    /// has passed, then they are cancelled; the thread then ends.
    pub fn drain(&self, grace: Duration) {
        lock(&self.queue).draining = Some(Instant::now() + grace);
        self.wake.notify_one();
    }

    /// Whether the scheduler thread has ended after [`drain`](Self::drain).
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Checks a request and queues it. Tokenizing, rendering the chat template and compiling a
    /// constraint happen here, on the client's thread, not in the scheduler.
    pub fn submit(&self, conn: &Arc<Conn>, req: Generate, cancel: Arc<AtomicBool>) -> Submit {
        let job = match self.prepare(conn, req, cancel) {
            Ok(j) => j,
            Err(m) => return Submit::Invalid(m),
        };
        let mut q = lock(&self.queue);
        if q.draining.is_some() {
            return Submit::Invalid("the daemon is shutting down".into());
        }
        if q.jobs.len() >= self.queue_max {
            // Full: a request displaces the lowest-priority queued one below it (the latest of
            // equals), which gets the `Busy` instead; otherwise it gets it.
            let lowest = (0..q.jobs.len())
                .filter(|&i| q.jobs[i].priority < job.priority)
                .min_by_key(|&i| (q.jobs[i].priority, std::cmp::Reverse(q.jobs[i].order)));
            let Some(i) = lowest else {
                return Submit::Busy(q.jobs.len() as u32);
            };
            let out = q.jobs.remove(i);
            out.conn.finish(out.id);
            out.conn.send(&ServerMsg::Busy {
                id: out.id,
                queue_len: q.jobs.len() as u32 + 1,
            });
        }
        let mut job = job;
        job.order = q.next_order;
        q.next_order += 1;
        q.jobs.push(job);
        drop(q);
        self.wake.notify_one();
        Submit::Queued
    }

    fn prepare(&self, conn: &Arc<Conn>, req: Generate, cancel: Arc<AtomicBool>) -> Result<Job, String> {
        let tok = self.model.tokenizer();
        let tokens = match req.input {
            Input::Prompt(text) => tok.tokenize(&text, true, true),
            Input::Tokens(t) => {
                if let Some(bad) = t.iter().find(|&&t| t as usize >= tok.n_vocab()) {
                    return Err(format!(
                        "token {bad} is outside the vocabulary ({} tokens)",
                        tok.n_vocab()
                    ));
                }
                t
            }
            Input::Chat(messages) => {
                let Some(template) = &self.template else {
                    return Err(format!("model '{}' has no chat template", self.name));
                };
                let mut conv = Conversation::default();
                for m in &messages {
                    conv.push(&m.role, &m.content);
                }
                let rendered = template.render(&conv).map_err(|e| e.to_string())?;
                template.tokenize(tok, &rendered)
            }
        };
        if tokens.is_empty() {
            return Err("the prompt is empty".into());
        }
        if tokens.len() > self.n_ctx {
            return Err(format!(
                "the prompt has {} tokens, more than the context of {} per sequence",
                tokens.len(),
                self.n_ctx
            ));
        }
        let s = req.sampling.unwrap_or_else(|| self.cfg.sampling.clone());
        let sampler = SamplerParams {
            temperature: s.temperature,
            top_k: s.top_k as usize,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            penalty_last_n: s.repeat_last_n as usize,
            seed: s.seed,
        };
        sampler.validate().map_err(|e| e.to_string())?;
        if let Some(i) = req.stop.iter().position(String::is_empty) {
            return Err(format!("stop string {i} is empty"));
        }
        let constraint = match req.constraint {
            None => None,
            Some(c) => {
                let factory = self.factory()?;
                Some(
                    match c {
                        tensorsharp_rpc::Constraint::JsonSchema(s) => factory.json_schema(&s),
                        tensorsharp_rpc::Constraint::Gbnf(g) => factory.grammar(&g),
                    }
                    .map_err(|e| e.to_string())?,
                )
            }
        };
        Ok(Job {
            conn: Arc::clone(conn),
            id: req.id,
            tokens,
            sampler,
            constraint,
            max_tokens: if req.max_tokens == 0 {
                self.cfg.max_tokens
            } else {
                req.max_tokens
            },
            stops: req.stop,
            session: req.session,
            priority: req.priority,
            preempt: req.preempt,
            arrived: Instant::now(),
            order: 0,
            cancel,
        })
    }

    /// The constraint compiler, built on first use (it indexes the vocabulary).
    fn factory(&self) -> Result<Arc<ConstraintFactory>, String> {
        let mut f = lock(&self.factory);
        if let Some(f) = &*f {
            return Ok(Arc::clone(f));
        }
        let made = Arc::new(ConstraintFactory::new(&self.model).map_err(|e| e.to_string())?);
        *f = Some(Arc::clone(&made));
        Ok(made)
    }

    /// The scheduler loop (the engine's thread).
    fn run(self: Arc<Engine>, mut session: Session) {
        let tok = self.model.tokenizer();
        let n_vocab = tok.n_vocab();
        let text_room = tok.max_piece_len() + 64;
        let mut slots: Vec<Slot> = (0..session.n_seq())
            .map(|_| Slot {
                key: None,
                last_used: 0,
                run: None,
                decoder: StreamDecoder::new(),
                filter: StopFilter::with_capacity(text_room),
                text: String::with_capacity(text_room),
            })
            .collect();
        let mut rows: Vec<BatchRow> = Vec::with_capacity(slots.len());
        let mut logits = vec![0f32; n_vocab];
        let mut turn = 0u64;
        loop {
            turn += 1;
            self.beat();
            if !self.admit(&mut session, &mut slots, turn) {
                break;
            }
            // Cancelled requests, closed connections.
            for slot in slots.iter_mut() {
                if slot.run.as_ref().is_some_and(|r| r.job.cancel.load(Ordering::Relaxed)) {
                    self.finish(slot, turn, StopReason::Cancelled);
                }
            }
            // One prefill chunk: the earliest admitted prompt first.
            let prefilling = (0..slots.len())
                .filter(|&i| slots[i].run.as_ref().is_some_and(|r| r.prompt_at < r.job.tokens.len()))
                .min_by_key(|&i| slots[i].run.as_ref().map(|r| r.job.order));
            if let Some(i) = prefilling {
                let r = slots[i].run.as_mut().expect("filtered above");
                let end = (r.prompt_at + session.params().n_batch).min(r.job.tokens.len());
                let last = end == r.job.tokens.len();
                let result = session.prefill_chunk(i, &r.job.tokens[r.prompt_at..end], last);
                match result {
                    Ok(()) => {
                        r.prompt_at = end;
                        if last {
                            self.sample(&mut session, &mut slots[i], i, turn, &mut logits);
                        }
                    }
                    // Stopped for a cancel: the chunk is redone, or the request ends, next turn.
                    Err(RuntimeError::Cancelled) => session.clear_cancel(),
                    Err(e) => self.fail(&mut slots[i], turn, &e.to_string()),
                }
            }
            // One batched decode step (each sequence gets the bits it would get decoded alone,
            // so a greedy reply does not depend on the load); slot i decodes in sequence i.
            rows.clear();
            for (i, s) in slots.iter().enumerate() {
                if let Some(t) = s.run.as_ref().and_then(|r| r.pending) {
                    rows.push(BatchRow {
                        seq: i as u32,
                        token: t,
                        logits: true,
                    });
                }
            }
            if rows.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            for part in rows.chunks(self.decode_pass) {
                match session.forward_batch(part) {
                    Ok(()) => {
                        for r in part {
                            let i = r.seq as usize;
                            self.sample(&mut session, &mut slots[i], i, turn, &mut logits);
                        }
                    }
                    // Stopped for a cancel: the step is redone next turn for those still running.
                    Err(RuntimeError::Cancelled) => session.clear_cancel(),
                    Err(e) => {
                        let msg = e.to_string();
                        for r in part {
                            self.fail(&mut slots[r.seq as usize], turn, &msg);
                        }
                    }
                }
            }
            let rate = rows.len() as f32 / t0.elapsed().as_secs_f32().max(1e-6);
            let old = f32::from_bits(self.stats.rate.load(Ordering::Relaxed));
            let smoothed = if old == 0.0 { rate } else { 0.9 * old + 0.1 * rate };
            self.stats.rate.store(smoothed.to_bits(), Ordering::Relaxed);
        }
        self.stopped.store(true, Ordering::SeqCst);
        log::info!("model '{}': scheduler stopped", self.name);
    }

    /// Admits queued requests to free slots (pre-empting where a request asks and may); drops
    /// cancelled queued requests; waits while there is nothing to do. `false`: drained, stop.
    fn admit(&self, session: &mut Session, slots: &mut [Slot], turn: u64) -> bool {
        let mut q = lock(&self.queue);
        loop {
            // Cancelled while queued, or refused because the daemon is stopping.
            let draining = q.draining.is_some();
            let mut i = 0;
            while i < q.jobs.len() {
                let cancelled = q.jobs[i].cancel.load(Ordering::Relaxed);
                if !cancelled && !draining {
                    i += 1;
                    continue;
                }
                let job = q.jobs.swap_remove(i);
                if cancelled {
                    send_done(&job, StopReason::Cancelled, Usage::default(), Timings::default());
                } else {
                    job.conn
                        .error(Some(job.id), ErrorCode::ShuttingDown, "the daemon is shutting down");
                    job.conn.finish(job.id);
                }
            }
            if let Some(deadline) = q.draining {
                if Instant::now() >= deadline {
                    for s in slots.iter_mut() {
                        if let Some(r) = &s.run {
                            r.job.cancel.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
            // Highest priority first, then arrival; a job whose named session is busy waits
            // without holding up the others.
            loop {
                let best = q
                    .jobs
                    .iter()
                    .enumerate()
                    .filter_map(|(ji, job)| {
                        let slot = pick_slot(session, slots, job)
                            .or_else(|| job.preempt.then(|| preemptible(slots, job.priority)).flatten())?;
                        Some(((job.priority, std::cmp::Reverse(job.order)), ji, slot))
                    })
                    .max_by_key(|(rank, _, _)| *rank)
                    .map(|(_, ji, si)| (ji, si));
                let Some((ji, si)) = best else { break };
                let job = q.jobs.remove(ji);
                if slots[si].run.is_some() {
                    log::info!(
                        "model '{}': request {} (priority {}) pre-empts the one in slot {si}",
                        self.name,
                        job.id,
                        job.priority
                    );
                    self.finish(&mut slots[si], turn, StopReason::Preempted);
                }
                self.start_job(session, &mut slots[si], si, job, turn);
            }
            let active = slots.iter().filter(|s| s.run.is_some()).count();
            self.sessions.store(
                slots.iter().filter(|s| s.key.is_some()).count() as u32,
                Ordering::Relaxed,
            );
            if active > 0 {
                return true;
            }
            if q.draining.is_some() {
                return false;
            }
            q = match self.tick {
                Some(t) => {
                    let (q, _) = self.wake.wait_timeout(q, t).unwrap_or_else(|p| p.into_inner());
                    self.beat();
                    q
                }
                None => self.wake.wait(q).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Records that the scheduler is turning (or idle and awake).
    fn beat(&self) {
        self.heartbeat
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long ago the scheduler last turned or woke.
    pub fn since_heartbeat(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.heartbeat.load(Ordering::Relaxed)))
    }

    /// Puts `job` in slot `si`: keeps the part of its prompt the slot's sequence already holds.
    fn start_job(&self, session: &mut Session, slot: &mut Slot, si: usize, mut job: Job, turn: u64) {
        slot.key = job.session.take();
        slot.last_used = turn;
        let cached = session.keep_common_prefix_seq(si, &job.tokens);
        let mut sampler = match Sampler::new(job.sampler.clone(), self.model.tokenizer().n_vocab()) {
            Ok(s) => s,
            Err(e) => {
                job.conn.error(Some(job.id), ErrorCode::InvalidRequest, e.to_string());
                job.conn.finish(job.id);
                return;
            }
        };
        sampler.set_constraint(job.constraint.take());
        for &t in &job.tokens {
            sampler.accept(t);
        }
        let longest_stop = job.stops.iter().map(String::len).max().unwrap_or(0);
        slot.filter
            .reset(longest_stop + self.model.tokenizer().max_piece_len() + 8);
        slot.decoder = StreamDecoder::new();
        let st = &self.stats;
        st.prompt_tokens.fetch_add(job.tokens.len() as u64, Ordering::Relaxed);
        st.cached_tokens.fetch_add(cached as u64, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        slot.run = Some(Running {
            job,
            sampler,
            prompt_at: cached,
            cached,
            generated: 0,
            pending: None,
            admitted: Instant::now(),
            first_token: None,
        });
    }

    /// Samples slot `si`'s next token from its logits, streams it, and ends the request when it
    /// is over.
    fn sample(&self, session: &mut Session, slot: &mut Slot, si: usize, turn: u64, logits: &mut [f32]) {
        let Some(r) = slot.run.as_mut() else { return };
        let Some(l) = session.seq_logits(si) else {
            self.fail(slot, turn, "no logits after the forward pass");
            return;
        };
        logits.copy_from_slice(l);
        let t = r.sampler.sample(logits);
        r.first_token.get_or_insert_with(Instant::now);
        r.pending = None;
        let tok = self.model.tokenizer();
        if tok.is_eog(t) {
            return self.finish(slot, turn, StopReason::EndOfGeneration);
        }
        r.sampler.commit(t);
        r.generated += 1;
        slot.text.clear();
        let (text, filter, stops) = (&mut slot.text, &mut slot.filter, &r.job.stops);
        let mut stopped = None;
        slot.decoder.push(tok.piece(t, false), &mut |s| {
            if stopped.is_none() {
                stopped = filter.push(stops, s, &mut |x: &str| text.push_str(x));
            }
        });
        r.job
            .conn
            .send(&token_msg(r.job.id, &slot.text, std::slice::from_ref(&t)));
        self.stats.generated.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = stopped {
            return self.finish(slot, turn, StopReason::StopString(i as u32));
        }
        if r.generated >= r.job.max_tokens {
            return self.finish(slot, turn, StopReason::MaxTokens);
        }
        if session.seq_len(si) >= session.n_ctx() {
            return self.finish(slot, turn, StopReason::ContextFull);
        }
        if r.sampler.constraint_mut().and_then(|c| c.error()).is_some() {
            return self.finish(slot, turn, StopReason::ConstraintEnded);
        }
        r.pending = Some(t);
    }

    /// Ends the slot's request with `reason`: the text still held back, then `Done`.
    fn finish(&self, slot: &mut Slot, turn: u64, reason: StopReason) {
        let Some(mut r) = slot.run.take() else { return };
        slot.last_used = turn;
        if !matches!(reason, StopReason::StopString(_)) {
            slot.text.clear();
            let (text, filter, stops) = (&mut slot.text, &mut slot.filter, &r.job.stops);
            slot.decoder.flush(&mut |s| {
                filter.push(stops, s, &mut |x: &str| text.push_str(x));
            });
            filter.flush(&mut |x: &str| text.push_str(x));
            if !slot.text.is_empty() {
                r.job.conn.send(&token_msg(r.job.id, &slot.text, &[]));
            }
        }
        if let Some(c) = r.sampler.constraint_mut() {
            if let Some(e) = c.error() {
                log::warn!("model '{}': request {}: constraint: {e}", self.name, r.job.id);
            }
        }
        let now = Instant::now();
        let first = r.first_token.unwrap_or(now);
        let usage = Usage {
            prompt_tokens: r.job.tokens.len() as u32,
            cached_tokens: r.cached as u32,
            generated_tokens: r.generated,
        };
        let timings = Timings {
            queued_us: (r.admitted - r.job.arrived).as_micros() as u64,
            first_token_us: (first - r.admitted).as_micros() as u64,
            generate_us: (now - first).as_micros() as u64,
        };
        // Counted before the client hears of it: a Status sent after Done sees it.
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
        send_done(&r.job, reason, usage, timings);
    }

    /// Ends the slot's request with an `Error` (a failed forward pass: a bug, or the model file
    /// changed under the daemon) and forgets its sequence.
    fn fail(&self, slot: &mut Slot, turn: u64, message: &str) {
        let Some(r) = slot.run.take() else { return };
        log::error!("model '{}': request {}: {message}", self.name, r.job.id);
        slot.last_used = turn;
        slot.key = None;
        self.active.fetch_sub(1, Ordering::Relaxed);
        r.job.conn.error(Some(r.job.id), ErrorCode::Internal, message);
        r.job.conn.finish(r.job.id);
    }
}

fn send_done(job: &Job, stop: StopReason, usage: Usage, timings: Timings) {
    job.conn.send(&ServerMsg::Done(Done {
        id: job.id,
        stop,
        usage,
        timings,
    }));
    job.conn.finish(job.id);
}

/// The slot `job` can start in now, if any: its named session's slot when that is free;
/// otherwise a free slot without a named session, the one holding most of the prompt (then the
/// least recently used); otherwise the least recently used free named session, evicted.
fn pick_slot(session: &Session, slots: &[Slot], job: &Job) -> Option<usize> {
    if let Some(key) = &job.session {
        if let Some(i) = slots.iter().position(|s| s.key.as_deref() == Some(key.as_str())) {
            return slots[i].run.is_none().then_some(i);
        }
    }
    let free = |keyed: bool| {
        slots
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.run.is_none() && s.key.is_some() == keyed)
    };
    free(false)
        .max_by_key(|(i, s)| {
            (
                session.common_prefix_seq(*i, &job.tokens),
                std::cmp::Reverse(s.last_used),
            )
        })
        .or_else(|| free(true).min_by_key(|(_, s)| s.last_used))
        .map(|(i, _)| i)
}

/// The running request a request of `priority` may pre-empt: the lowest priority below it,
/// the latest admitted among equals.
fn preemptible(slots: &[Slot], priority: u8) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.run.as_ref().map(|r| (i, r)))
        .filter(|(_, r)| r.job.priority < priority)
        .min_by_key(|(_, r)| (r.job.priority, std::cmp::Reverse(r.admitted)))
        .map(|(i, _)| i)
}
