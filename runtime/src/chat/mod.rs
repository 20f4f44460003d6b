//! Chat templates: the conversation (system / user / assistant / tool messages, optional tool
//! definitions) rendered into the prompt text the model was trained on.
//!
//! The template is the GGUF's `tokenizer.chat_template` (Jinja, as on Hugging Face), a named
//! built-in ([`builtin`]) for models without one, or a file. It renders with `minijinja` set up
//! as transformers sets up Jinja2 for `apply_chat_template`: `trim_blocks`, `lstrip_blocks`,
//! loop controls, no auto-escaping, Python's string and dict methods, `tojson` as Python's
//! `json.dumps`, and the globals `raise_exception` and `strftime_now`; the context holds
//! `messages`, `tools`, `add_generation_prompt`, `bos_token` and `eos_token`. A template that
//! fails to compile or render gives [`RuntimeError::Template`] with the line.

pub mod builtin;
pub mod pyjson;
pub mod tool_calls;

use std::path::Path;

use minijinja::{context, Environment, Error, ErrorKind, Value};

use crate::error::{Result, RuntimeError};
use tensorsharp_models::GgufFile;

use crate::model::Model;
use crate::tokenizer::{Token, Tokenizer};

/// Template steps a render may take before it is stopped (a template looping without end).
const FUEL: u64 = 50_000_000;

/// A conversation to render: the JSON shape of OpenAI-style chat requests and of the `chat[]`
/// references (`{"messages": [...], "tools": [...], "add_generation_prompt": true}`).
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The messages, in order: objects with a string `role` and a `content` (a string, or null
    /// for an assistant message that only calls tools), plus whatever else the template reads
    /// (`tool_calls`, `name`, …).
    pub messages: Vec<serde_json::Value>,
    /// Tool definitions passed to the template as `tools` (none when absent).
    pub tools: Option<Vec<serde_json::Value>>,
    /// Whether to end with the opening of the assistant's turn.
    pub add_generation_prompt: bool,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            messages: Vec::new(),
            tools: None,
            add_generation_prompt: true,
        }
    }
}

impl Conversation {
    /// Appends a message with a text content.
    pub fn push(&mut self, role: &str, content: &str) {
        self.messages
            .push(serde_json::json!({ "role": role, "content": content }));
    }

    /// Parses `{"messages": [...], "tools": [...]?, "add_generation_prompt": bool?}` (or a bare
    /// message array), checking every message has a string `role` and a string or null
    /// `content`.
    pub fn from_json(text: &str) -> Result<Conversation> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RuntimeError::Conversation(format!("not valid JSON: {e}")))?;
        Conversation::from_value(v)
    }

    /// [`from_json`](Self::from_json) on a parsed value.
    pub fn from_value(v: serde_json::Value) -> Result<Conversation> {
        let bad = |m: String| RuntimeError::Conversation(m);
        let (messages, tools, add_generation_prompt) = match v {
            serde_json::Value::Array(m) => (m, None, true),
            serde_json::Value::Object(mut o) => {
                let messages = match o.remove("messages") {
                    Some(serde_json::Value::Array(m)) => m,
                    Some(_) => return Err(bad("\"messages\" must be an array".into())),
                    None => return Err(bad("no \"messages\" array".into())),
                };
                let tools = match o.remove("tools") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::Array(t)) => Some(t),
                    Some(_) => return Err(bad("\"tools\" must be an array".into())),
                };
                let agp = match o.remove("add_generation_prompt") {
                    None => true,
                    Some(serde_json::Value::Bool(b)) => b,
                    Some(_) => return Err(bad("\"add_generation_prompt\" must be true or false".into())),
                };
                (messages, tools, agp)
            }
            _ => {
                return Err(bad(
                    "expected an object with \"messages\", or an array of messages".into()
                ))
            }
        };
        for (i, m) in messages.iter().enumerate() {
            let Some(o) = m.as_object() else {
                return Err(bad(format!("message {i} is not an object")));
            };
            match o.get("role") {
                Some(serde_json::Value::String(_)) => {}
                _ => return Err(bad(format!("message {i} has no string \"role\""))),
            }
            match o.get("content") {
                None | Some(serde_json::Value::String(_)) | Some(serde_json::Value::Null) => {}
                // Content parts ([{"type": "text", "text": ...}]) are passed as they are.
                Some(serde_json::Value::Array(_)) => {}
                Some(_) => {
                    return Err(bad(format!(
                        "message {i}: \"content\" must be a string, null or an array of parts"
                    )))
                }
            }
        }
        Ok(Conversation {
            messages,
            tools,
            add_generation_prompt,
        })
    }
}

/// A compiled chat template with the model's special tokens.
pub struct ChatTemplate {
    env: Environment<'static>,
    name: String,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The template error of a minijinja error: its line, and the message with the cause chain.
fn template_error(name: &str, e: &Error) -> RuntimeError {
    let mut message = match e.kind() {
        ErrorKind::InvalidOperation if e.detail().is_some_and(|d| d.starts_with("raise_exception: ")) => {
            e.detail().unwrap_or_default().to_string()
        }
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(&format!(" (caused by: {s})"));
        src = s.source();
    }
    RuntimeError::Template {
        template: name.to_string(),
        line: e.line(),
        message,
    }
}

/// `raise_exception(message)`: the template refuses the conversation.
fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {message}"),
    ))
}

/// `strftime_now(format)`: the local time now, formatted by the C library's `strftime` (the C
/// locale, as Python's `datetime.strftime` in transformers).
fn strftime_now(format: String) -> std::result::Result<Value, Error> {
    use nix::libc;
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "strftime_now: the format contains a NUL byte",
        )
    };
    let cfmt = std::ffi::CString::new(format.as_str()).map_err(|_| bad())?;
    // SAFETY: time(NULL) only reads the clock.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data; localtime_r writes it from `now` and returns null on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return Err(Error::new(ErrorKind::InvalidOperation, "strftime_now: no local time"));
    }
    let mut buf = vec![0u8; 64 + 16 * format.len()];
    // SAFETY: buf is writable for buf.len() bytes, cfmt is NUL-terminated, tm initialised;
    // strftime writes at most buf.len() bytes and returns the length without the NUL (0 when
    // it did not fit, or for an empty result).
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm) };
    buf.truncate(n);
    Ok(Value::from(String::from_utf8_lossy(&buf).into_owned()))
}

/// `s | ctrim`: llama.cpp's `trim` (the C `isspace` set), for the built-ins.
fn ctrim(s: String) -> String {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
    s.trim_matches(ws).to_string()
}

impl ChatTemplate {
    /// Compiles `source` as the template called `name`, with the special tokens' text.
    pub fn new(name: &str, source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(FUEL));
        env.add_filter("tojson", pyjson::tojson);
        env.add_filter("ctrim", ctrim);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| template_error(name, &e))?;
        Ok(ChatTemplate {
            env,
            name: name.to_string(),
            bos: bos_token.to_string(),
            eos: eos_token.to_string(),
        })
    }

    /// The built-in template called `name` (see [`builtin::BUILTINS`]).
    pub fn builtin(name: &str, tok: &Tokenizer) -> Result<ChatTemplate> {
        let src = builtin::BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| RuntimeError::InvalidParameter {
                name: "chat template",
                problem: format!(
                    "'{name}' is neither a built-in ({}) nor a file",
                    builtin::BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            })?;
        let (bos, eos) = special_texts(tok);
        ChatTemplate::new(name, src, &bos, &eos)
    }

    /// The template for `model`: `choice` is a built-in name or a template file; without one,
    /// the model's own `tokenizer.chat_template`, else the built-in for its architecture.
    pub fn for_model(model: &Model, choice: Option<&str>) -> Result<ChatTemplate> {
        ChatTemplate::for_file(model.file(), model.tokenizer(), choice)
    }

    /// [`for_model`](Self::for_model) from the GGUF file and its tokenizer (no weights needed).
    pub fn for_file(file: &GgufFile, tok: &Tokenizer, choice: Option<&str>) -> Result<ChatTemplate> {
        let (bos, eos) = special_texts(tok);
        if let Some(c) = choice {
            if builtin::BUILTINS.iter().any(|(n, _)| *n == c) {
                return ChatTemplate::builtin(c, tok);
            }
            let path = Path::new(c);
            if path.is_file() {
                let src = std::fs::read_to_string(path).map_err(|e| RuntimeError::InvalidParameter {
                    name: "chat template",
                    problem: format!("{}: {e}", path.display()),
                })?;
                return ChatTemplate::new(&path.display().to_string(), &src, &bos, &eos);
            }
            return ChatTemplate::builtin(c, tok);
        }
        if let Some(src) = file.get_str("tokenizer.chat_template")? {
            return ChatTemplate::new("tokenizer.chat_template", src, &bos, &eos);
        }
        let arch = file.architecture().unwrap_or_default();
        ChatTemplate::builtin(builtin::for_architecture(arch, |t| tok.token_id(t).is_some()), tok)
    }

    /// The template's name: the model's key, a built-in's name or the file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders `conv` into the prompt text.
    pub fn render(&self, conv: &Conversation) -> Result<String> {
        let tmpl = self
            .env
            .get_template(&self.name)
            .map_err(|e| template_error(&self.name, &e))?;
        let tools = conv.tools.as_ref().map(Value::from_serialize);
        let ctx = context! {
            messages => Value::from_serialize(&conv.messages),
            tools => tools,
            documents => Value::from(()),
            add_generation_prompt => conv.add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        };
        tmpl.render(ctx).map_err(|e| template_error(&self.name, &e))
    }

    /// The tokens of a rendered prompt: special-token text parsed as special tokens, and the
    /// model's BOS added by its rule unless the template already wrote it.
    pub fn tokenize(&self, tok: &Tokenizer, rendered: &str) -> Vec<Token> {
        let has_bos = !self.bos.is_empty() && rendered.starts_with(&self.bos);
        tok.tokenize(rendered, !has_bos, true)
    }
}

/// The text of the BOS and EOS tokens ("" where the model has none).
fn special_texts(tok: &Tokenizer) -> (String, String) {
    let text = |t: Option<Token>| t.and_then(|t| tok.token_text(t)).unwrap_or_default().to_string();
    (text(tok.bos()), text(tok.eos()))
}
