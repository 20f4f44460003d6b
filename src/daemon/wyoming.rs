//! The Wyoming adapter (`--wyoming unix://PATH` or `tcp://HOST:PORT`): Home Assistant-style voice
//! pipelines send a `transcript` and get the model's reply as `handled` (or streamed as
//! `handled-start`, `handled-chunk`..., `handled-stop`); `describe` gets `info` with one `handle`
//! program. Each conversation keeps its turns (and, through a named session, its KV cache)
//! under the `conversation_id` the adapter puts in the reply's `context`, which the pipeline
//! sends back with the next transcript.
//!
//! Wyoming events: a JSON line `{"type", "data"?, "data_length"?, "payload_length"?, "version"?}`,
//! then `data_length` bytes of JSON merged into `data`, then `payload_length` bytes of payload.
//! The adapter is a protocol v1 client of the daemon over an in-process socket pair, so requests
//! from voice pipelines share the queue, the priorities and the slots with every other client.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tensorsharp_rpc::{Client, Generate, Input, Message};

use super::{lock, Daemon};

/// Longest event header line, data block and payload the adapter reads.
const MAX_LINE: usize = 64 << 10;
const MAX_DATA: usize = 1 << 20;
const MAX_PAYLOAD: usize = 16 << 20;
/// Conversations remembered (least recently used forgotten) and turns kept per conversation.
const MAX_CONVERSATIONS: usize = 64;
const MAX_MESSAGES: usize = 32;

/// One Wyoming event.
#[derive(Debug)]
struct Event {
    kind: String,
    data: Map<String, Value>,
}

/// Reads one event; `Ok(None)` at a clean end of the stream.
fn read_event(r: &mut impl BufRead) -> Result<Option<Event>, String> {
    let mut line = Vec::new();
    let n = r
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(format!("an event header longer than {MAX_LINE} bytes, or cut short"));
    }
    let header: Value = serde_json::from_slice(&line).map_err(|e| format!("event header: {e}"))?;
    let kind = header["type"].as_str().ok_or("an event without a type")?.to_string();
    let mut data = match &header["data"] {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let length = |key: &str, max: usize| -> Result<usize, String> {
        match header.get(key).and_then(Value::as_u64) {
            None => Ok(0),
            Some(n) if n as usize <= max => Ok(n as usize),
            Some(n) => Err(format!("{key} {n} is over {max}")),
        }
    };
    let (data_len, payload_len) = (length("data_length", MAX_DATA)?, length("payload_length", MAX_PAYLOAD)?);
    if data_len > 0 {
        let mut buf = vec![0; data_len];
        r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        match serde_json::from_slice(&buf).map_err(|e| format!("event data: {e}"))? {
            Value::Object(m) => data.extend(m),
            _ => return Err("event data is not an object".into()),
        }
    }
    if payload_len > 0 {
        std::io::copy(&mut r.take(payload_len as u64), &mut std::io::sink()).map_err(|e| e.to_string())?;
    }
    Ok(Some(Event { kind, data }))
}

/// Writes one event: the header line, then the data as a separate block (as the `wyoming`
/// package writes them).
fn write_event(w: &mut impl Write, kind: &str, data: Value) -> std::io::Result<()> {
    let mut header = json!({"type": kind, "version": "1.5.4"});
    let body = match &data {
        Value::Object(m) if !m.is_empty() => serde_json::to_vec(&data)?,
        _ => Vec::new(),
    };
    if !body.is_empty() {
        header["data_length"] = json!(body.len());
    }
    let mut out = serde_json::to_vec(&header)?;
    out.push(b'\n');
    out.extend_from_slice(&body);
    w.write_all(&out)?;
    w.flush()
}

/// What the adapter remembers across connections.
struct State {
    daemon: Arc<Daemon>,
    streaming: bool,
    next_conversation: AtomicU64,
    /// conversation id → (turn counter of its last use, its messages).
    conversations: Mutex<HashMap<String, (u64, Vec<Message>)>>,
    turns: AtomicU64,
}

/// Starts the adapter's listener on `uri`; its thread serves until the process ends.
pub fn start(daemon: Arc<Daemon>, uri: &str, streaming: bool) -> Result<(), String> {
    let state = Arc::new(State {
        daemon,
        streaming,
        next_conversation: AtomicU64::new(1),
        conversations: Mutex::new(HashMap::new()),
        turns: AtomicU64::new(0),
    });
    if let Some(path) = uri.strip_prefix("unix://") {
        let path = std::path::Path::new(path);
        if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
        let l = UnixListener::bind(path).map_err(|e| format!("--wyoming {uri}: {e}"))?;
        log::info!("wyoming: listening on {uri}");
        spawn_accept(move || l.accept().map(|(s, _)| s), state)
    } else if let Some(addr) = uri.strip_prefix("tcp://") {
        let l = TcpListener::bind(addr).map_err(|e| format!("--wyoming {uri}: {e}"))?;
        log::info!("wyoming: listening on {uri}");
        spawn_accept(
            move || {
                l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    s
                })
            },
            state,
        )
    } else {
        Err(format!("--wyoming {uri}: expected unix://PATH or tcp://HOST:PORT"))
    }
}

fn spawn_accept<S, F>(mut accept: F, state: Arc<State>) -> Result<(), String>
where
    S: Read + Write + Send + 'static,
    F: FnMut() -> std::io::Result<S> + Send + 'static,
{
    std::thread::Builder::new()
        .name("wyoming".into())
        .spawn(move || loop {
            match accept() {
                Ok(stream) => {
                    let st = Arc::clone(&state);
                    let _ = std::thread::Builder::new()
                        .name("wyoming conn".into())
                        .spawn(move || serve(&st, stream));
                }
                Err(e) => {
                    log::warn!("wyoming: accept: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("wyoming: cannot start its thread: {e}"))
}

/// One Wyoming connection.
fn serve<S: Read + Write>(state: &State, stream: S) {
    let mut stream = BufReader::new(stream);
    let mut client: Option<Client> = None;
    loop {
        let ev = match read_event(&mut stream) {
            Ok(Some(ev)) => ev,
            Ok(None) => return,
            Err(e) => {
                log::info!("wyoming: closing a connection: {e}");
                return;
            }
        };
        let out = stream.get_mut();
        let written = match ev.kind.as_str() {
            "describe" => write_event(out, "info", info(state)),
            "ping" => write_event(out, "pong", json!({"text": ev.data.get("text")})),
            "transcript" => {
                if client.is_none() {
                    client = state
                        .daemon
                        .connect_in_process()
                        .map_err(|e| e.to_string())
                        .and_then(|s| Client::handshake(s, "wyoming").map_err(|e| e.to_string()))
                        .map_err(|e| log::error!("wyoming: {e}"))
                        .ok();
                }
                match client.as_mut() {
                    Some(c) => transcript(state, c, &ev.data, out),
                    None => write_event(out, "not-handled", json!({"text": "the daemon is not available"})),
                }
            }
            // Servers drop events they do not handle (the protocol's rule).
            _ => Ok(()),
        };
        if let Err(e) = written {
            log::info!("wyoming: write failed: {e}");
            return;
        }
    }
}

/// The `info` event: one `handle` program, the daemon's models as its models.
fn info(state: &State) -> Value {
    let attribution = json!({"name": "TensorSharp", "url": "https://example.invalid/tensorsharp"});
    let models: Vec<Value> = state
        .daemon
        .engines
        .iter()
        .map(|e| {
            json!({"name": e.name, "attribution": attribution, "installed": true,
                   "description": format!("{} ({})", e.name, e.cfg.path.display()),
                   "version": null, "languages": []})
        })
        .collect();
    json!({
        "asr": [], "tts": [], "intent": [], "wake": [], "mic": [], "snd": [],
        "handle": [{
            "name": "tensorsharp",
            "attribution": attribution,
            "installed": true,
            "description": "TensorSharp on-device LLM (tsharpd)",
            "version": env!("CARGO_PKG_VERSION"),
            "models": models,
            "supports_handled_streaming": state.streaming,
        }],
    })
}

/// A `transcript`: the conversation's turns plus this one, through the chat template; the
/// reply as `handled` or streamed; the turn remembered.
fn transcript(
    state: &State,
    client: &mut Client,
    data: &Map<String, Value>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let Some(text) = data.get("text").and_then(Value::as_str) else {
        return write_event(out, "not-handled", json!({"text": "a transcript without text"}));
    };
    let given = data
        .get("context")
        .and_then(|c| c.get("conversation_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = given.unwrap_or_else(|| format!("wyoming-{}", state.next_conversation.fetch_add(1, Ordering::Relaxed)));
    let mut messages = lock(&state.conversations)
        .get(&id)
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    messages.push(Message {
        role: "user".into(),
        content: text.into(),
    });
    let context = json!({"conversation_id": id});
    let req = Generate {
        input: Input::Chat(messages.clone()),
        session: Some(id.clone()),
        ..Generate::prompt("", 0)
    };
    let mut io_error = None;
    let reply = if state.streaming {
        write_event(out, "handled-start", json!({"context": context}))?;
        let r = client.generate(req, |piece| {
            if !piece.is_empty() && io_error.is_none() {
                if let Err(e) = write_event(out, "handled-chunk", json!({"text": piece})) {
                    io_error = Some(e);
                }
            }
        });
        if let Some(e) = io_error {
            return Err(e);
        }
        write_event(out, "handled-stop", json!({}))?;
        r
    } else {
        client.generate(req, |_| {})
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            log::warn!("wyoming: {e}");
            if state.streaming {
                return Ok(());
            }
            return write_event(out, "not-handled", json!({"text": e.to_string(), "context": context}));
        }
    };
    if !state.streaming {
        write_event(out, "handled", json!({"text": reply.text.trim(), "context": context}))?;
    }
    messages.push(Message {
        role: "assistant".into(),
        content: reply.text.trim().to_string(),
    });
    if messages.len() > MAX_MESSAGES {
        messages.drain(..messages.len() - MAX_MESSAGES);
    }
    let turn = state.turns.fetch_add(1, Ordering::Relaxed);
    let mut all = lock(&state.conversations);
    all.insert(id, (turn, messages));
    if all.len() > MAX_CONVERSATIONS {
        if let Some(oldest) = all.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone()) {
            all.remove(&oldest);
        }
    }
    Ok(())
}
