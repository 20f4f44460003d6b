//! `tsharpd`: the TensorSharp daemon. Loads the configured models once, inside their memory
//! plans, and serves protocol v1 (`docs/protocol.md`) over a Unix socket: streamed tokens,
//! cancellation within a token, named sessions that keep their KV cache, a bounded priority
//! queue, batched decode across clients.

mod config;
mod conn;
mod engine;
mod listener;
mod logger;
mod notify;
mod wyoming;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tensorsharp_rpc::{ErrorCode, Status};

use config::{Config, Overrides};
use conn::Conn;
use engine::Engine;

/// tsharpd: serve GGUF models over a Unix socket (protocol v1).
#[derive(Parser, Debug)]
#[command(name = "tsharpd", version)]
struct Args {
    /// Configuration file (default /etc/tensorsharp/tsharpd.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A model to serve (repeatable; replaces the file's models).
    #[arg(short = 'm', long = "model")]
    models: Vec<PathBuf>,
    /// Socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Context per sequence slot (default: the model's, at most the board profile's).
    #[arg(short = 'c', long)]
    ctx: Option<usize>,
    /// Sequence slots per model (requests generating at once).
    #[arg(long)]
    slots: Option<usize>,
    /// Threads per model (0: the board profile's, one per big core; `tsharp board`).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Tokens a request generates when it does not say (per model).
    #[arg(long = "max-tokens")]
    max_tokens: Option<u32>,
    /// Requests that may wait per model.
    #[arg(long)]
    queue: Option<usize>,
    /// Largest frame accepted (bytes).
    #[arg(long = "max-frame")]
    max_frame: Option<u32>,
    /// RAM budget for all models (bytes; K, M, G suffixes).
    #[arg(long = "ram-budget", value_parser = parse_bytes)]
    ram_budget: Option<u64>,
    /// Wyoming adapter: unix://PATH or tcp://HOST:PORT.
    #[arg(long)]
    wyoming: Option<String>,
    /// Check the configuration and the memory plan, print them, and exit.
    #[arg(long = "check-config")]
    check_config: bool,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.trim().char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}': expected bytes, e.g. 512M"))
}

/// Locks `m`; a thread that panicked while holding it left data that is still usable here
/// (queues, buffers, counters), so the lock is taken anyway.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every connection shares.
pub struct Daemon {
    /// The configuration in force.
    pub config: Config,
    /// One per model; the first is the default.
    pub engines: Vec<Arc<Engine>>,
    /// Set on SIGTERM / SIGINT.
    pub shutting_down: AtomicBool,
    started: Instant,
    connections: AtomicU32,
    /// Connection numbers handed out.
    numbers: AtomicU64,
    /// Every connection and its writer thread, joined at shutdown so replies are flushed.
    conns: Mutex<Vec<(Arc<Conn>, std::thread::JoinHandle<()>)>>,
}

impl Daemon {
    /// The engine for a model name (`None`: the default).
    pub fn engine(&self, name: Option<&str>) -> Result<&Arc<Engine>, String> {
        match name {
            None => Ok(&self.engines[0]),
            Some(n) => self.engines.iter().find(|e| e.name == n).ok_or_else(|| {
                let names: Vec<&str> = self.engines.iter().map(|e| e.name.as_str()).collect();
                format!("no model '{n}' (this daemon serves: {})", names.join(", "))
            }),
        }
    }

    /// Serves a connected stream as a client connection (its reader and writer threads).
    /// `allowed: false` sends `PermissionDenied` and closes it.
    pub fn adopt(self: &Arc<Self>, stream: UnixStream, who: String, allowed: bool) {
        let number = self.numbers.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Conn::new(number, self.config.max_frame, self.config.max_unread));
        *lock(&conn.peer) = who.clone();
        let Ok(write_half) = stream.try_clone() else {
            log::warn!("connection {number}: cannot duplicate the socket");
            return;
        };
        let c = Arc::clone(&conn);
        let writer = std::thread::Builder::new()
            .name(format!("conn {number} out"))
            .spawn(move || conn::writer(c, write_half));
        let Ok(writer) = writer else {
            log::warn!("connection {number}: cannot start a thread");
            return;
        };
        if !allowed {
            log::warn!("connection {number} from {who}: not in allowed_uids / allowed_gids: refused");
            conn.fail(ErrorCode::PermissionDenied, "this user may not use the daemon");
        } else {
            log::debug!("connection {number} from {who}");
            self.connections.fetch_add(1, Ordering::Relaxed);
            let (d, c) = (Arc::clone(self), Arc::clone(&conn));
            let spawned = std::thread::Builder::new()
                .name(format!("conn {number} in"))
                .spawn(move || {
                    conn::serve(Arc::clone(&d), c, stream);
                    d.connections.fetch_sub(1, Ordering::Relaxed);
                });
            if spawned.is_err() {
                log::warn!("connection {number}: cannot start a thread");
                self.connections.fetch_sub(1, Ordering::Relaxed);
                conn.close();
            }
        }
        let mut all = lock(&self.conns);
        all.retain(|(_, h)| !h.is_finished());
        all.push((conn, writer));
    }

    /// A client connection inside the process (the Wyoming adapter's): one end of a socket
    /// pair served as any other connection.
    pub fn connect_in_process(self: &Arc<Self>) -> std::io::Result<UnixStream> {
        let (mine, theirs) = UnixStream::pair()?;
        self.adopt(theirs, "in-process".into(), true);
        Ok(mine)
    }

    /// The daemon's state.
    pub fn status(&self) -> Status {
        Status {
            server: format!("tsharpd {}", env!("CARGO_PKG_VERSION")),
            uptime_s: self.started.elapsed().as_secs(),
            connections: self.connections.load(Ordering::Relaxed),
            models: self.engines.iter().map(|e| e.status()).collect(),
            rss_bytes: rss_bytes(),
        }
    }
}

/// Resident set size from /proc/self/statm.
fn rss_bytes() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * page)
}

/// The write end of the self-pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: i32) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid one-byte array.
        unsafe { nix::libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

fn main() -> ExitCode {
    logger::init();
    let a = Args::parse();
    match run(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("tsharpd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<(), String> {
    let o = Overrides {
        models: a.models,
        socket: a.socket,
        ctx: a.ctx,
        slots: a.slots,
        threads: a.threads,
        max_tokens: a.max_tokens,
        queue: a.queue,
        max_frame: a.max_frame,
        wyoming: a.wyoming,
        ram_budget: a.ram_budget,
    };
    let config = Config::load(a.config.as_deref(), &o)?;
    if a.check_config {
        return check_config(&config);
    }
    // Before any thread starts: it takes the variables out of the environment.
    let systemd = notify::Notifier::from_env();
    // Signals first: a SIGTERM during a slow load still stops the daemon cleanly.
    let (sig_read, sig_write) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    SIGNAL_PIPE.store(sig_write.as_raw_fd(), Ordering::SeqCst);
    for s in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_signal),
            nix::sys::signal::SaFlags::SA_RESTART,
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only writes a byte to a pipe (async-signal-safe).
        unsafe { nix::sys::signal::sigaction(s, &action) }.map_err(|e| format!("sigaction: {e}"))?;
    }
    // SIGPIPE: a client that vanished is a write error on its connection, not the daemon's end.
    // SAFETY: ignoring a signal has no preconditions.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
        .map_err(|e| format!("signal: {e}"))?;
    let listener = listener::open(&config.socket_path(), config.socket_mode)?;
    let mut engines = Vec::new();
    let mut left = config.ram_budget;
    // An idle scheduler wakes four times per watchdog interval to show it is alive.
    let tick = systemd.watchdog().map(|w| w / 4);
    for m in &config.models {
        let t0 = Instant::now();
        // A large model read from slow storage may take longer than TimeoutStartSec: ask for
        // a minute plus a second per 20 MB of the file.
        let bytes = std::fs::metadata(&m.path).map(|md| md.len()).unwrap_or(0);
        systemd.send(&format!(
            "EXTEND_TIMEOUT_USEC={}",
            (60 + bytes / 20_000_000) * 1_000_000
        ));
        systemd.status(&format!("loading model '{}' ({})", m.name, m.path.display()));
        let e = Engine::start(m.clone(), left, config.queue, tick)?;
        log::info!(
            "model '{}': {} loaded in {:.2} s: {} slots of {} positions (decoded {} per pass), plan {:.1} MiB",
            e.name,
            m.path.display(),
            t0.elapsed().as_secs_f64(),
            m.slots,
            e.n_ctx,
            e.decode_pass,
            e.plan_bytes as f64 / 1048576.0
        );
        left = left.map(|b| b.saturating_sub(e.plan_bytes));
        engines.push(e);
    }
    let daemon = Arc::new(Daemon {
        config,
        engines,
        shutting_down: AtomicBool::new(false),
        started: Instant::now(),
        connections: AtomicU32::new(0),
        numbers: AtomicU64::new(0),
        conns: Mutex::new(Vec::new()),
    });
    if let Some(uri) = &daemon.config.wyoming {
        wyoming::start(Arc::clone(&daemon), uri, daemon.config.wyoming_streaming)?;
    }
    log::info!("ready");
    systemd.send(&format!(
        "READY=1\nSTATUS=serving {} model(s) on {}",
        daemon.engines.len(),
        daemon.config.socket_path().display()
    ));
    // The watchdog: pinged at half its interval from this loop, while every scheduler has
    // turned (or woken idle) within the interval; a scheduler stuck in a kernel stops the pings.
    let watchdog = systemd.watchdog();
    let mut last_ping = Instant::now();
    let mut stuck_logged = false;
    loop {
        if let Some(wd) = watchdog {
            if last_ping.elapsed() >= wd / 2 {
                match daemon.engines.iter().find(|e| e.since_heartbeat() >= wd) {
                    None => {
                        systemd.send("WATCHDOG=1");
                        last_ping = Instant::now();
                        stuck_logged = false;
                    }
                    Some(e) if !stuck_logged => {
                        log::error!(
                            "model '{}': its scheduler has not turned for {:.1} s: not pinging the watchdog",
                            e.name,
                            e.since_heartbeat().as_secs_f64()
                        );
                        stuck_logged = true;
                    }
                    Some(_) => {}
                }
            }
        }
        let mut fds = [
            PollFd::new(listener.socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(sig_read.as_fd(), PollFlags::POLLIN),
        ];
        let timeout = match watchdog {
            Some(wd) => PollTimeout::try_from((wd / 4).max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if !fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            continue;
        }
        let stream = match listener.socket.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                // Out of descriptors: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let (who, allowed) = listener::check_peer(&stream, &daemon.config.allowed_uids, &daemon.config.allowed_gids);
        daemon.adopt(stream, who, allowed);
    }
    // SIGTERM / SIGINT: stop accepting, let running requests finish within the grace period,
    // refuse the queued ones, flush every connection, remove the socket file.
    log::info!(
        "stopping: draining requests (grace {} ms)",
        daemon.config.shutdown_grace_ms
    );
    systemd.send("STOPPING=1\nSTATUS=stopping: draining requests");
    daemon.shutting_down.store(true, Ordering::SeqCst);
    drop(listener);
    let grace = Duration::from_millis(daemon.config.shutdown_grace_ms);
    for e in &daemon.engines {
        e.drain(grace);
    }
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    while !daemon.engines.iter().all(|e| e.stopped()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let conns = std::mem::take(&mut *lock(&daemon.conns));
    for (conn, handle) in conns {
        conn.close();
        let _ = handle.join();
    }
    log::info!("stopped");
    Ok(())
}

/// `--check-config`: the effective configuration and each model's memory plan (loading the
/// models' headers, allocating nothing large); fails like a start would.
fn check_config(c: &Config) -> Result<(), String> {
    let board = &tensorsharp_runtime::board::host().defaults;
    println!(
        "board: profile {} (defaults: threads {}, cpus {}, tier {}, ctx {}, kv {}; `tsharp board` says why)",
        board.profile.id,
        board.threads,
        if board.cpus.is_empty() {
            "unpinned".to_string()
        } else {
            format!("{:?}", board.cpus)
        },
        board.tier,
        board.n_ctx,
        board.kv_type
    );
    println!("socket: {}", c.socket_path().display());
    println!(
        "socket_mode: {:o}, max_frame: {}, queue: {}, read_timeout_ms: {}, shutdown_grace_ms: {}",
        c.socket_mode, c.max_frame, c.queue, c.read_timeout_ms, c.shutdown_grace_ms
    );
    let mut total = 0u64;
    for m in &c.models {
        println!(
            "model '{}': {} (ctx {}, slots {}, batch {}, threads {}, kv {}, max_tokens {})",
            m.name,
            m.path.display(),
            m.ctx,
            m.slots,
            m.batch,
            m.threads,
            m.kv_type,
            m.max_tokens
        );
        let model = tensorsharp_runtime::Model::load_opts(&m.path, tensorsharp_runtime::WeightsMode::Mapped, None)
            .map_err(|e| format!("{}: {e}", m.path.display()))?;
        let params = tensorsharp_runtime::SessionParams {
            n_ctx: m.ctx,
            n_batch: m.batch,
            n_seq: m.slots,
            n_threads: m.threads,
            kv_type: tensorsharp_runtime::board::kv_type(&m.kv_type).map_err(|e| e.to_string())?,
            ram_budget: c.ram_budget.map(|b| b.saturating_sub(total)),
            ..Default::default()
        };
        // Over the budget with every weight in RAM: the placement the daemon will stream under.
        let model_err = |e: tensorsharp_runtime::RuntimeError| format!("model '{}': {e}", m.name);
        let model = model.planned_for(&params).map_err(model_err)?;
        if let Some(r) = model.residency() {
            println!(
                "weights streamed: {:.1} MiB in RAM, {} staging slots of {:.1} MiB, {:.1} MiB read from the file per pass",
                r.resident_bytes as f64 / 1048576.0,
                r.ring,
                r.slot_bytes as f64 / 1048576.0,
                r.streamed_bytes_per_token() as f64 / 1048576.0
            );
        }
        let plan = tensorsharp_runtime::Session::plan_for(&model, &params).map_err(model_err)?;
        print!("{}", plan.to_table());
        plan.check_budget().map_err(|e| format!("model '{}': {e}", m.name))?;
        total += plan.total();
    }
    println!("total: {:.1} MiB", total as f64 / 1048576.0);
    // A cgroup limit for the service (packaging/install-service.sh writes it as MemoryMax=): the
    // plans, a quarter more for what requests allocate (chat templates, constraints, connection
    // buffers) and 64 MiB for the process itself, in whole MiB.
    println!("memory_max: {}M", memory_max_mib(total));
    Ok(())
}

/// The `MemoryMax=` (MiB) suggested for plans totalling `plan_bytes`.
fn memory_max_mib(plan_bytes: u64) -> u64 {
    (plan_bytes + plan_bytes / 4).div_ceil(1 << 20) + 64
}
