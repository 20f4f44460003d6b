//! One client connection: a reader thread (handshake, frames in, requests dispatched) and a
//! writer thread that sends what the engines and the reader queue in the connection's output
//! buffer. The engines never block on a client: they append encoded frames to the buffer (its
//! capacity is kept, so a streamed token allocates nothing) and the writer drains it. A client
//! that leaves more than `max_unread` bytes unread is disconnected.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tensorsharp_rpc::frame::{decode, encode_into, PREFIX};
use tensorsharp_rpc::{ClientMsg, ErrorCode, RequestId, ServerMsg, Welcome, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

use super::engine::Submit;
use super::{lock, Daemon};

/// What is waiting to be written to a client.
struct Out {
    buf: Vec<u8>,
    /// No more frames are accepted; the writer flushes `buf` and shuts the socket down.
    closed: bool,
}

/// A client connection as the engines and the reader see it.
pub struct Conn {
    /// Number of the connection (for logs).
    pub number: u64,
    /// Who is connected (`pid 12 uid 1000 "name"`), for logs.
    pub peer: Mutex<String>,
    out: Mutex<Out>,
    ready: Condvar,
    max_frame: u32,
    max_unread: usize,
    /// Requests in flight: their cancel flags.
    inflight: Mutex<HashMap<RequestId, Arc<AtomicBool>>>,
}

impl Conn {
    /// A connection with an empty output buffer.
    pub fn new(number: u64, max_frame: u32, max_unread: usize) -> Conn {
        Conn {
            number,
            peer: Mutex::new(String::new()),
            out: Mutex::new(Out {
                buf: Vec::with_capacity(64 << 10),
                closed: false,
            }),
            ready: Condvar::new(),
            max_frame,
            max_unread,
            inflight: Mutex::new(HashMap::with_capacity(16)),
        }
    }

    /// Queues one message for the client; `false` when the connection is closed (the message
    /// is dropped). A client that leaves too much unread is closed here.
    pub fn send(&self, msg: &ServerMsg) -> bool {
        let mut out = lock(&self.out);
        if out.closed {
            return false;
        }
        if let Err(e) = encode_into(msg, &mut out.buf, self.max_frame) {
            log::error!("connection {}: reply not sent: {e}", self.number);
            return true;
        }
        if out.buf.len() > self.max_unread {
            log::warn!(
                "connection {}: {} bytes of replies unread (max_unread {}): disconnecting it",
                self.number,
                out.buf.len(),
                self.max_unread
            );
            out.closed = true;
            drop(out);
            self.cancel_all();
        }
        self.ready.notify_one();
        true
    }

    /// Sends an `Error` frame.
    pub fn error(&self, id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) {
        self.send(&ServerMsg::Error {
            id,
            code: code as u16,
            message: message.into(),
        });
    }

    /// Sends a connection-level error and closes the connection after it.
    pub fn fail(&self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        log::info!("connection {}: closed: {message}", self.number);
        self.error(None, code, message);
        self.close();
    }

    /// Accepts no more frames, cancels the requests in flight; the writer flushes what is
    /// queued and shuts the socket down.
    pub fn close(&self) {
        lock(&self.out).closed = true;
        self.ready.notify_one();
        self.cancel_all();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.out).closed
    }

    /// Registers request `id` in flight; `None` when it already is.
    pub fn register(&self, id: RequestId) -> Option<Arc<AtomicBool>> {
        let mut m = lock(&self.inflight);
        if m.contains_key(&id) {
            return None;
        }
        let flag = Arc::new(AtomicBool::new(false));
        m.insert(id, Arc::clone(&flag));
        Some(flag)
    }

    /// Request `id` is over.
    pub fn finish(&self, id: RequestId) {
        lock(&self.inflight).remove(&id);
    }

    /// Raises request `id`'s cancel flag; `false` when it is not in flight.
    pub fn cancel(&self, id: RequestId) -> bool {
        match lock(&self.inflight).get(&id) {
            Some(f) => {
                f.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    fn cancel_all(&self) {
        for f in lock(&self.inflight).values() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// Requests in flight.
    pub fn inflight(&self) -> usize {
        lock(&self.inflight).len()
    }
}

/// The writer thread: drains the output buffer into the socket until the connection closes.
pub fn writer(conn: Arc<Conn>, mut stream: UnixStream) {
    let mut local = Vec::with_capacity(64 << 10);
    loop {
        {
            let mut out = lock(&conn.out);
            while out.buf.is_empty() && !out.closed {
                out = conn.ready.wait(out).unwrap_or_else(|p| p.into_inner());
            }
            if out.buf.is_empty() {
                break;
            }
            std::mem::swap(&mut out.buf, &mut local);
        }
        if let Err(e) = stream.write_all(&local) {
            log::info!("connection {}: write failed ({e}): closing", conn.number);
            conn.close();
            break;
        }
        local.clear();
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Why reading a frame stopped.
enum ReadEnd {
    /// The client closed the connection between frames.
    Eof,
    /// A frame was started and not finished in time.
    Timeout,
    /// The client closed in the middle of a frame.
    Truncated,
    /// A length over the maximum.
    TooLarge(u32),
    /// The socket failed.
    Io(std::io::Error),
}

/// Reads one frame: waits as long as it takes for its first byte, then at most `timeout` for
/// each read of the rest.
fn read_frame(stream: &mut UnixStream, buf: &mut Vec<u8>, max: u32, timeout: Duration) -> Result<(), ReadEnd> {
    let mut prefix = [0u8; PREFIX];
    let _ = stream.set_read_timeout(None);
    loop {
        match stream.read(&mut prefix[..1]) {
            Ok(0) => return Err(ReadEnd::Eof),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadEnd::Io(e)),
        }
    }
    let _ = stream.set_read_timeout(Some(timeout));
    let read_exact = |stream: &mut UnixStream, dst: &mut [u8]| -> Result<(), ReadEnd> {
        stream.read_exact(dst).map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => ReadEnd::Timeout,
            ErrorKind::UnexpectedEof => ReadEnd::Truncated,
            _ => ReadEnd::Io(e),
        })
    };
    read_exact(stream, &mut prefix[1..])?;
    let len = u32::from_le_bytes(prefix);
    if len > max {
        return Err(ReadEnd::TooLarge(len));
    }
    buf.clear();
    buf.resize(len as usize, 0);
    read_exact(stream, buf)
}

/// The reader thread: the handshake, then every request until the connection ends.
pub fn serve(daemon: Arc<Daemon>, conn: Arc<Conn>, mut stream: UnixStream) {
    let cfg = &daemon.config;
    let timeout = Duration::from_millis(cfg.read_timeout_ms);
    let mut buf = Vec::with_capacity(4096);
    let mut greeted = false;
    loop {
        match read_frame(&mut stream, &mut buf, cfg.max_frame, timeout) {
            Ok(()) => {}
            Err(ReadEnd::Eof) => break,
            Err(ReadEnd::Timeout) => {
                conn.fail(
                    ErrorCode::Timeout,
                    format!("a frame was not finished within {} ms", cfg.read_timeout_ms),
                );
                break;
            }
            Err(ReadEnd::Truncated) => {
                log::info!("connection {}: closed in the middle of a frame", conn.number);
                break;
            }
            Err(ReadEnd::TooLarge(len)) => {
                conn.fail(
                    ErrorCode::FrameTooLarge,
                    format!("a frame of {len} bytes is over the maximum of {} bytes", cfg.max_frame),
                );
                break;
            }
            Err(ReadEnd::Io(e)) => {
                log::info!("connection {}: read failed: {e}", conn.number);
                break;
            }
        }
        let msg: ClientMsg = match decode(&buf) {
            Ok(m) => m,
            Err(e) => {
                conn.fail(ErrorCode::BadFrame, format!("not a protocol v1 message: {e}"));
                break;
            }
        };
        if !greeted {
            let ClientMsg::Hello(h) = msg else {
                conn.fail(ErrorCode::Handshake, "the first message must be Hello");
                break;
            };
            let version = h.version.min(PROTOCOL_VERSION);
            if version < h.min_version.max(MIN_PROTOCOL_VERSION) {
                conn.fail(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this daemon speaks protocol versions {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}, the client {}..={}",
                        h.min_version, h.version
                    ),
                );
                break;
            }
            let name: String = h.client.chars().take(64).collect();
            {
                let mut peer = lock(&conn.peer);
                peer.push_str(&format!(" \"{name}\""));
                log::debug!("connection {}: hello from {peer}", conn.number);
            }
            conn.send(&ServerMsg::Welcome(Welcome {
                version,
                server: format!("tsharpd {}", env!("CARGO_PKG_VERSION")),
                max_frame: cfg.max_frame,
                models: daemon.engines.iter().map(|e| e.name.clone()).collect(),
            }));
            greeted = true;
            continue;
        }
        if !dispatch(&daemon, &conn, msg) {
            break;
        }
        if conn.is_closed() {
            break;
        }
    }
    conn.close();
}

/// Handles one request; `false` ends the connection.
fn dispatch(daemon: &Arc<Daemon>, conn: &Arc<Conn>, msg: ClientMsg) -> bool {
    match msg {
        ClientMsg::Hello(_) => {
            conn.fail(ErrorCode::Handshake, "a second Hello");
            return false;
        }
        ClientMsg::Ping { id } => {
            conn.send(&ServerMsg::Pong { id });
        }
        ClientMsg::Models { id } => {
            let models = daemon.engines.iter().map(|e| e.info()).collect();
            conn.send(&ServerMsg::Models { id, models });
        }
        ClientMsg::Status { id } => {
            let status = daemon.status();
            conn.send(&ServerMsg::Status { id, status });
        }
        ClientMsg::Tokenize {
            id,
            model,
            text,
            add_special,
        } => match daemon.engine(model.as_deref()) {
            Ok(e) => {
                let tokens = e.model.tokenizer().tokenize(&text, add_special, add_special);
                conn.send(&ServerMsg::Tokens { id, tokens });
            }
            Err(m) => conn.error(Some(id), ErrorCode::UnknownModel, m),
        },
        ClientMsg::Detokenize { id, model, tokens } => match daemon.engine(model.as_deref()) {
            Ok(e) => {
                let tok = e.model.tokenizer();
                if let Some(bad) = tokens.iter().find(|&&t| t as usize >= tok.n_vocab()) {
                    conn.error(
                        Some(id),
                        ErrorCode::InvalidRequest,
                        format!("token {bad} is outside the vocabulary ({} tokens)", tok.n_vocab()),
                    );
                } else {
                    let text = tok.detokenize(&tokens, false);
                    conn.send(&ServerMsg::Text { id, text });
                }
            }
            Err(m) => conn.error(Some(id), ErrorCode::UnknownModel, m),
        },
        ClientMsg::Cancel { id } => {
            if conn.cancel(id) {
                for e in &daemon.engines {
                    e.cancel_arrived();
                }
            } else {
                conn.error(
                    Some(id),
                    ErrorCode::UnknownId,
                    format!("no request {id} in flight on this connection"),
                );
            }
        }
        ClientMsg::Generate(req) => {
            let id = req.id;
            if daemon.shutting_down.load(Ordering::SeqCst) {
                conn.error(Some(id), ErrorCode::ShuttingDown, "the daemon is shutting down");
                return true;
            }
            let engine = match daemon.engine(req.model.as_deref()) {
                Ok(e) => e,
                Err(m) => {
                    conn.error(Some(id), ErrorCode::UnknownModel, m);
                    return true;
                }
            };
            let Some(cancel) = conn.register(id) else {
                conn.error(
                    Some(id),
                    ErrorCode::DuplicateId,
                    format!("request {id} is already in flight"),
                );
                return true;
            };
            match engine.submit(conn, req, cancel) {
                Submit::Queued => {}
                Submit::Busy(queue_len) => {
                    conn.finish(id);
                    conn.send(&ServerMsg::Busy { id, queue_len });
                }
                Submit::Invalid(message) => {
                    conn.finish(id);
                    conn.error(Some(id), ErrorCode::InvalidRequest, message);
                }
            }
        }
    }
    true
}

/// A token frame borrowing the engine's buffers (no allocation).
pub fn token_msg<'a>(id: RequestId, text: &'a str, tokens: &'a [u32]) -> ServerMsg<'a> {
    ServerMsg::Token {
        id,
        text: Cow::Borrowed(text),
        tokens: Cow::Borrowed(tokens),
    }
}
