//! The messages of protocol v1 (`docs/protocol.md` is the normative description). Every frame
//! carries one [`ClientMsg`] (client to daemon) or one [`ServerMsg`] (daemon to client) encoded
//! with postcard: enums as a varint variant index, integers as varints (`f32` as 4 bytes LE),
//! strings and sequences as a varint length and their items, `Option` as a 0/1 byte and the
//! value. **Variant and field order is the wire format**: append, never reorder.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks (the highest; it speaks no other yet).
pub const PROTOCOL_VERSION: u16 = 1;
/// The oldest protocol version this crate speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// The default largest frame (payload bytes) either side accepts.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// A request id, chosen by the client, unique among its requests in flight on one connection.
pub type RequestId = u64;

/// A message from a client to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// The first message of a connection.
    Hello(Hello),
    /// Generate text.
    Generate(Generate),
    /// Text to token ids.
    Tokenize {
        /// Request id.
        id: RequestId,
        /// Model name (`None`: the default model).
        model: Option<String>,
        /// The text.
        text: String,
        /// Add the model's BOS token where the model wants one.
        add_special: bool,
    },
    /// Token ids to text.
    Detokenize {
        /// Request id.
        id: RequestId,
        /// Model name (`None`: the default model).
        model: Option<String>,
        /// The token ids.
        tokens: Vec<u32>,
    },
    /// Stop a queued or running request of this connection: it ends with
    /// `Done{stop: Cancelled}`. An id not in flight gets an `Error{code: UNKNOWN_ID}`.
    Cancel {
        /// The request to stop.
        id: RequestId,
    },
    /// The daemon's state.
    Status {
        /// Request id.
        id: RequestId,
    },
    /// The models the daemon serves.
    Models {
        /// Request id.
        id: RequestId,
    },
    /// Answered with `Pong`.
    Ping {
        /// Request id.
        id: RequestId,
    },
}

/// The handshake: the versions the client speaks (`min_version..=version`) and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The highest protocol version the client speaks.
    pub version: u16,
    /// The lowest protocol version the client speaks.
    pub min_version: u16,
    /// A name for logs and `Status` (free text, at most 64 bytes are kept).
    pub client: String,
}

/// A generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generate {
    /// Request id.
    pub id: RequestId,
    /// Model name (`None`: the default model).
    pub model: Option<String>,
    /// What to continue.
    pub input: Input,
    /// Sampling (`None`: the model's defaults from the configuration).
    pub sampling: Option<Sampling>,
    /// Most tokens to generate (0: the model's default).
    pub max_tokens: u32,
    /// Stop strings (not part of the reply).
    pub stop: Vec<String>,
    /// Constrain the output to a JSON schema or a grammar.
    pub constraint: Option<Constraint>,
    /// A named session: its KV cache is kept between requests (the next request with the same
    /// key reuses the common prefix), until evicted (least recently used first).
    pub session: Option<String>,
    /// Priority, higher first (0 normal). Queued requests are served by priority, then in order
    /// of arrival.
    pub priority: u8,
    /// When every sequence slot is busy, stop the lowest-priority running request of lower
    /// priority than this one (it ends with `Done{stop: Preempted}`) and start this one.
    pub preempt: bool,
}

/// What a generation continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// Raw text (tokenized with the model's BOS where it wants one).
    Prompt(String),
    /// Chat messages, rendered with the model's chat template and a generation prompt.
    Chat(Vec<Message>),
    /// Token ids as they are.
    Tokens(Vec<u32>),
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Sampling settings (as `tsharp run`'s flags; the defaults are its defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-k (0: off).
    pub top_k: u32,
    /// Top-p (1: off).
    pub top_p: f32,
    /// Min-p (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Presence penalty (0: off).
    pub presence_penalty: f32,
    /// Frequency penalty (0: off).
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    pub repeat_last_n: u32,
    /// Random seed.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_last_n: 64,
            seed: 0x5EED,
        }
    }
}

/// Constrained output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Constraint {
    /// A JSON schema (as JSON text).
    JsonSchema(String),
    /// A GBNF grammar (llama.cpp's format).
    Gbnf(String),
}

/// A message from the daemon to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg<'a> {
    /// The handshake's answer.
    Welcome(Welcome),
    /// A generated token and the text it made final (possibly empty: a character split over
    /// tokens, or text held back while it may be the start of a stop string).
    Token {
        /// Request id.
        id: RequestId,
        /// Text made final by this token.
        #[serde(borrow)]
        text: Cow<'a, str>,
        /// The token ids (one per token; empty for the text flushed at the end).
        #[serde(borrow)]
        tokens: Cow<'a, [u32]>,
    },
    /// The end of a generation.
    Done(Done),
    /// A request, or the connection, failed (`id: None`: the connection; it is closed after).
    Error {
        /// The request, if the error is about one.
        id: Option<RequestId>,
        /// What failed ([`ErrorCode`]).
        code: u16,
        /// A message a person can act on.
        message: String,
    },
    /// The queue is full: the request was not accepted.
    Busy {
        /// Request id.
        id: RequestId,
        /// Requests queued.
        queue_len: u32,
    },
    /// `Tokenize`'s answer.
    Tokens {
        /// Request id.
        id: RequestId,
        /// Token ids.
        tokens: Vec<u32>,
    },
    /// `Detokenize`'s answer.
    Text {
        /// Request id.
        id: RequestId,
        /// The text (invalid UTF-8 replaced by U+FFFD).
        text: String,
    },
    /// `Status`'s answer.
    Status {
        /// Request id.
        id: RequestId,
        /// The state.
        status: Status,
    },
    /// `Models`' answer.
    Models {
        /// Request id.
        id: RequestId,
        /// The models.
        models: Vec<ModelInfo>,
    },
    /// `Ping`'s answer.
    Pong {
        /// Request id.
        id: RequestId,
    },
}

impl ServerMsg<'_> {
    /// The message with owned text (to keep it past the buffer it was decoded from).
    pub fn into_owned(self) -> ServerMsg<'static> {
        match self {
            ServerMsg::Token { id, text, tokens } => ServerMsg::Token {
                id,
                text: Cow::Owned(text.into_owned()),
                tokens: Cow::Owned(tokens.into_owned()),
            },
            ServerMsg::Welcome(w) => ServerMsg::Welcome(w),
            ServerMsg::Done(d) => ServerMsg::Done(d),
            ServerMsg::Error { id, code, message } => ServerMsg::Error { id, code, message },
            ServerMsg::Busy { id, queue_len } => ServerMsg::Busy { id, queue_len },
            ServerMsg::Tokens { id, tokens } => ServerMsg::Tokens { id, tokens },
            ServerMsg::Text { id, text } => ServerMsg::Text { id, text },
            ServerMsg::Status { id, status } => ServerMsg::Status { id, status },
            ServerMsg::Models { id, models } => ServerMsg::Models { id, models },
            ServerMsg::Pong { id } => ServerMsg::Pong { id },
        }
    }

    /// The request id the message answers, if any.
    pub fn id(&self) -> Option<RequestId> {
        match self {
            ServerMsg::Welcome(_) => None,
            ServerMsg::Error { id, .. } => *id,
            ServerMsg::Done(d) => Some(d.id),
            ServerMsg::Token { id, .. }
            | ServerMsg::Busy { id, .. }
            | ServerMsg::Tokens { id, .. }
            | ServerMsg::Text { id, .. }
            | ServerMsg::Status { id, .. }
            | ServerMsg::Models { id, .. }
            | ServerMsg::Pong { id } => Some(*id),
        }
    }
}

/// The handshake's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version of the connection (the highest both speak).
    pub version: u16,
    /// The daemon's name and version (`tsharpd 0.1.0`).
    pub server: String,
    /// The largest frame the daemon accepts (payload bytes).
    pub max_frame: u32,
    /// The names of the models served (the first is the default).
    pub models: Vec<String>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model's end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// Stop string number `n` of the request appeared (it is not part of the reply).
    StopString(u32),
    /// The context (the sequence's `n_ctx`) is full.
    ContextFull,
    /// `Cancel`, or the daemon is shutting down.
    Cancelled,
    /// A request of higher priority took the sequence slot.
    Preempted,
    /// The constraint's grammar allows nothing more, or its engine failed (see the log).
    ConstraintEnded,
}

/// The end of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Request id.
    pub id: RequestId,
    /// Why it ended.
    pub stop: StopReason,
    /// Token counts.
    pub usage: Usage,
    /// Where the time went.
    pub timings: Timings,
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (the whole prompt, cached or not).
    pub prompt_tokens: u32,
    /// Prompt tokens the sequence already held (not prefilled again).
    pub cached_tokens: u32,
    /// Tokens generated.
    pub generated_tokens: u32,
}

/// Microseconds per phase of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timings {
    /// From arrival to a sequence slot.
    pub queued_us: u64,
    /// From the slot to the first token (prefill and first sample).
    pub first_token_us: u64,
    /// From the first token to the end.
    pub generate_us: u64,
}

/// The daemon's state (`Status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Status {
    /// Daemon name and version.
    pub server: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Connections open.
    pub connections: u32,
    /// Per model.
    pub models: Vec<ModelStatus>,
    /// Resident set size of the daemon (bytes, from /proc).
    pub rss_bytes: u64,
}

/// One model's scheduler state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelStatus {
    /// Model name.
    pub name: String,
    /// Requests waiting for a sequence slot.
    pub queued: u32,
    /// Requests generating.
    pub active: u32,
    /// Sequence slots (KV caches).
    pub slots: u32,
    /// Slots holding a named session.
    pub sessions: u32,
    /// Requests finished since start.
    pub completed: u64,
    /// Tokens generated since start.
    pub generated_tokens: u64,
    /// Generated tokens per second over the last few seconds of decoding.
    pub tokens_per_s: f32,
    /// Prompt tokens served from cache / all prompt tokens, since start.
    pub cache_hit_ratio: f32,
    /// The model's memory plan in bytes (weights, KV caches, buffers).
    pub plan_bytes: u64,
}

/// A model the daemon serves (`Models`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name requests use.
    pub name: String,
    /// The GGUF file.
    pub path: String,
    /// Architecture (`llama`, `qwen2`, ...).
    pub arch: String,
    /// Context per sequence.
    pub n_ctx: u32,
    /// Sequence slots.
    pub slots: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
}

/// Error codes of `Error` frames (`docs/protocol.md` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame that does not decode as a message (garbage, an unknown variant, trailing bytes).
    BadFrame = 1,
    /// A length prefix over the daemon's maximum frame size.
    FrameTooLarge = 2,
    /// A request before `Hello`, or a second `Hello`.
    Handshake = 3,
    /// No protocol version both sides speak.
    UnsupportedVersion = 4,
    /// A model name the daemon does not serve.
    UnknownModel = 5,
    /// A request that is well-formed but not valid (an empty prompt, a bad schema, a prompt
    /// longer than the context, sampling settings out of range).
    InvalidRequest = 6,
    /// An id already in flight on this connection.
    DuplicateId = 7,
    /// `Cancel` for an id not in flight on this connection.
    UnknownId = 8,
    /// The daemon is shutting down.
    ShuttingDown = 9,
    /// A frame was started and not finished within the read timeout.
    Timeout = 10,
    /// The peer's uid/gid is not allowed.
    PermissionDenied = 11,
    /// The daemon failed (a bug or an I/O error; see its log).
    Internal = 12,
}

impl ErrorCode {
    /// The code for a wire value, if known.
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            BadFrame,
            FrameTooLarge,
            Handshake,
            UnsupportedVersion,
            UnknownModel,
            InvalidRequest,
            DuplicateId,
            UnknownId,
            ShuttingDown,
            Timeout,
            PermissionDenied,
            Internal,
        ]
        .into_iter()
        .find(|c| *c as u16 == v)
    }
}
