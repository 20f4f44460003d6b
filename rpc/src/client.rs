//! A blocking client over a Unix socket: no async runtime, one thread, usable from
//! firmware-side Rust. Several requests may be in flight on one [`Client`]
//! ([`send`](Client::send) / [`recv`](Client::recv)); [`generate`](Client::generate) and the
//! other helpers run one request to its answer.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, RpcError};
use crate::frame::{decode, encode_into, read_frame};
use crate::protocol::*;

/// The socket path a client uses when none is given: `$TENSORSHARP_SOCKET`, else
/// `$XDG_RUNTIME_DIR/tensorsharp/tsharpd.sock` for a user, `/run/tensorsharp/tsharpd.sock` for
/// root (or without `XDG_RUNTIME_DIR`): the daemon's own default.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TENSORSHARP_SOCKET") {
        return PathBuf::from(p);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc_geteuid() } == 0;
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !root => PathBuf::from(dir).join("tensorsharp/tsharpd.sock"),
        _ => PathBuf::from("/run/tensorsharp/tsharpd.sock"),
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A connection to `tsharpd` after the handshake.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    welcome: Welcome,
    out: Vec<u8>,
    input: Vec<u8>,
    next_id: u64,
}

/// What [`Client::generate`] returns: the whole reply and its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text.
    pub text: String,
    /// The token ids.
    pub tokens: Vec<u32>,
    /// The `Done` frame.
    pub done: Done,
}

impl Client {
    /// Connects to the daemon's socket at `path` and says hello as `name`.
    pub fn connect(path: impl AsRef<Path>, name: &str) -> Result<Client> {
        let stream = UnixStream::connect(path)?;
        Client::handshake(stream, name)
    }

    /// Says hello over an already connected stream.
    pub fn handshake(stream: UnixStream, name: &str) -> Result<Client> {
        let mut c = Client {
            stream,
            welcome: Welcome {
                version: 0,
                server: String::new(),
                max_frame: DEFAULT_MAX_FRAME,
                models: Vec::new(),
            },
            out: Vec::with_capacity(256),
            input: Vec::with_capacity(256),
            next_id: 1,
        };
        c.send(&ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            min_version: MIN_PROTOCOL_VERSION,
            client: name.into(),
        }))?;
        match c.recv()? {
            ServerMsg::Welcome(w) => {
                c.welcome = w;
                Ok(c)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The daemon's handshake answer (version, server, models).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// A fresh request id (1, 2, ... on this connection).
    pub fn next_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sets a timeout for each read (`None`: wait for ever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_read_timeout(t)?)
    }

    /// The underlying stream (to shut it down from another thread, for example).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends one message.
    pub fn send(&mut self, msg: &ClientMsg) -> Result<()> {
        use std::io::Write;
        self.out.clear();
        encode_into(msg, &mut self.out, self.welcome.max_frame)?;
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Receives one message (borrowing this client's buffer until the next call).
    pub fn recv(&mut self) -> Result<ServerMsg<'_>> {
        if !read_frame(&mut self.stream, &mut self.input, u32::MAX)? {
            return Err(RpcError::Closed);
        }
        decode(&self.input)
    }

    /// Runs one generation (`req.id` 0 picks a fresh id), calling `on_text` with each piece of
    /// text as it arrives; returns the whole reply. Frames of other requests in flight on this
    /// connection are skipped: use [`send`](Self::send) / [`recv`](Self::recv) to multiplex.
    pub fn generate(&mut self, mut req: Generate, mut on_text: impl FnMut(&str)) -> Result<Reply> {
        if req.id == 0 {
            req.id = self.next_id();
        }
        let id = req.id;
        self.send(&ClientMsg::Generate(req))?;
        let (mut text, mut tokens) = (String::new(), Vec::new());
        loop {
            match self.recv()? {
                ServerMsg::Token {
                    id: i,
                    text: t,
                    tokens: ts,
                } if i == id => {
                    on_text(&t);
                    text.push_str(&t);
                    tokens.extend_from_slice(&ts);
                }
                ServerMsg::Done(done) if done.id == id => return Ok(Reply { text, tokens, done }),
                ServerMsg::Busy { id: i, queue_len } if i == id => return Err(RpcError::Busy { queue_len }),
                ServerMsg::Error { id: i, code, message } if i == Some(id) || i.is_none() => {
                    return Err(RpcError::Server { id: i, code, message })
                }
                _ => {}
            }
        }
    }

    /// A one-shot request and its single answer.
    fn call(&mut self, msg: ClientMsg, id: RequestId) -> Result<ServerMsg<'static>> {
        self.send(&msg)?;
        loop {
            let m = self.recv()?.into_owned();
            match m {
                ServerMsg::Error { id: i, code, message } if i == Some(id) || i.is_none() => {
                    return Err(RpcError::Server { id: i, code, message })
                }
                m if m.id() == Some(id) => return Ok(m),
                _ => {}
            }
        }
    }

    /// The daemon's state.
    pub fn status(&mut self) -> Result<Status> {
        let id = self.next_id();
        match self.call(ClientMsg::Status { id }, id)? {
            ServerMsg::Status { status, .. } => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// The models served.
    pub fn models(&mut self) -> Result<Vec<ModelInfo>> {
        let id = self.next_id();
        match self.call(ClientMsg::Models { id }, id)? {
            ServerMsg::Models { models, .. } => Ok(models),
            other => Err(unexpected(other)),
        }
    }

    /// Round trip.
    pub fn ping(&mut self) -> Result<()> {
        let id = self.next_id();
        match self.call(ClientMsg::Ping { id }, id)? {
            ServerMsg::Pong { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Text to token ids with a model's tokenizer.
    pub fn tokenize(&mut self, model: Option<&str>, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let id = self.next_id();
        let msg = ClientMsg::Tokenize {
            id,
            model: model.map(Into::into),
            text: text.into(),
            add_special,
        };
        match self.call(msg, id)? {
            ServerMsg::Tokens { tokens, .. } => Ok(tokens),
            other => Err(unexpected(other)),
        }
    }

    /// Token ids to text.
    pub fn detokenize(&mut self, model: Option<&str>, tokens: &[u32]) -> Result<String> {
        let id = self.next_id();
        let msg = ClientMsg::Detokenize {
            id,
            model: model.map(Into::into),
            tokens: tokens.to_vec(),
        };
        match self.call(msg, id)? {
            ServerMsg::Text { text, .. } => Ok(text),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(m: ServerMsg) -> RpcError {
    match m {
        ServerMsg::Error { id, code, message } => RpcError::Server { id, code, message },
        other => RpcError::Protocol(format!("unexpected message {other:?}")),
    }
}
