//! The daemon's configuration: `/etc/tensorsharp/tsharpd.toml` (or `--config FILE`), then the
//! `TENSORSHARP_*` environment, then the command line; later sources win (DESIGN.md: request
//! field > flag > environment > file > default; request fields are the protocol's).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tensorsharp_rpc::{Sampling, DEFAULT_MAX_FRAME};

/// The file read when `--config` is not given (absent: defaults).
pub const DEFAULT_CONFIG: &str = "/etc/tensorsharp/tsharpd.toml";

/// Everything the daemon runs with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Socket path (`None`: `$XDG_RUNTIME_DIR/tensorsharp/tsharpd.sock`, or
    /// `/run/tensorsharp/tsharpd.sock` as root).
    pub socket: Option<PathBuf>,
    /// Socket file mode (octal in the file: `socket_mode = 0o660`).
    pub socket_mode: u32,
    /// Peers allowed by uid (with `allowed_gids`; both empty: whoever the socket's file mode
    /// lets connect). The daemon's own uid and root are always allowed.
    pub allowed_uids: Vec<u32>,
    /// Peers allowed by primary gid.
    pub allowed_gids: Vec<u32>,
    /// Largest frame accepted (bytes).
    pub max_frame: u32,
    /// Requests waiting for a slot, per model; one more gets `Busy`.
    pub queue: usize,
    /// A frame started and not finished within this many milliseconds closes the connection.
    pub read_timeout_ms: u64,
    /// Bytes of replies a client may leave unread before it is disconnected.
    pub max_unread: usize,
    /// On SIGTERM: how long in-flight requests may run on before they are cancelled.
    pub shutdown_grace_ms: u64,
    /// Wyoming adapter (`unix://PATH` or `tcp://HOST:PORT`).
    pub wyoming: Option<String>,
    /// The Wyoming adapter streams replies (`handled-start` / `-chunk` / `-stop`) instead of
    /// one `handled`.
    pub wyoming_streaming: bool,
    /// RAM budget for all models' plans together (bytes; `None`: the cgroup limit or
    /// `MemAvailable`).
    pub ram_budget: Option<u64>,
    /// The models (the first is the default).
    #[serde(rename = "model")]
    pub models: Vec<ModelConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: None,
            socket_mode: 0o660,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            queue: 64,
            read_timeout_ms: 5000,
            max_unread: 8 << 20,
            shutdown_grace_ms: 5000,
            wyoming: None,
            wyoming_streaming: true,
            ram_budget: None,
            models: Vec::new(),
        }
    }
}

/// One model and its defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The name requests use (default: the file name without `.gguf`).
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Context per sequence (0: the model's, capped at the board profile's).
    pub ctx: usize,
    /// Sequence slots: requests that generate at once (each its own KV cache).
    pub slots: usize,
    /// Prefill chunk (tokens).
    pub batch: usize,
    /// Threads (0: the board profile's, one per big core, pinned on big.LITTLE).
    pub threads: usize,
    /// KV cache type: f16, f32, q8_0, or auto (the board profile's).
    pub kv_type: String,
    /// Tokens a request generates when it does not say.
    pub max_tokens: u32,
    /// A chat template name or file (default: the model's own).
    pub chat_template: Option<String>,
    /// Sampling when a request does not say.
    pub sampling: Sampling,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: String::new(),
            path: PathBuf::new(),
            ctx: 0,
            slots: 4,
            batch: 64,
            threads: 0,
            kv_type: "auto".into(),
            max_tokens: 256,
            chat_template: None,
            sampling: Sampling::default(),
        }
    }
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `-m`: models by path (replace the file's models).
    pub models: Vec<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--ctx`.
    pub ctx: Option<usize>,
    /// `--slots`.
    pub slots: Option<usize>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--max-tokens`.
    pub max_tokens: Option<u32>,
    /// `--queue`.
    pub queue: Option<usize>,
    /// `--max-frame`.
    pub max_frame: Option<u32>,
    /// `--wyoming`.
    pub wyoming: Option<String>,
    /// `--ram-budget` (bytes).
    pub ram_budget: Option<u64>,
}

fn env<T: std::str::FromStr>(key: &str) -> Result<Option<T>, String> {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("environment {key}={v}: not a valid value")),
        Err(_) => Ok(None),
    }
}

impl Config {
    /// Reads the configuration: the file (`path`, or [`DEFAULT_CONFIG`] if it exists), the
    /// environment, then `o`; checks it.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Config, String> {
        let mut c = match path {
            Some(p) => Config::from_file(p)?,
            None if Path::new(DEFAULT_CONFIG).exists() => Config::from_file(Path::new(DEFAULT_CONFIG))?,
            None => Config::default(),
        };
        // Environment.
        if let Some(p) = env::<PathBuf>("TENSORSHARP_SOCKET")? {
            c.socket = Some(p);
        }
        if let Some(p) = env::<PathBuf>("TENSORSHARP_MODEL")? {
            c.models = vec![ModelConfig::for_path(p)];
        }
        let env_ctx = env::<usize>("TENSORSHARP_CTX")?;
        let env_slots = env::<usize>("TENSORSHARP_SLOTS")?;
        let env_threads = env::<usize>("TENSORSHARP_THREADS")?;
        if let Some(q) = env::<usize>("TENSORSHARP_QUEUE")? {
            c.queue = q;
        }
        if let Some(b) = env::<u64>("TENSORSHARP_RAM_BUDGET")? {
            c.ram_budget = Some(b);
        }
        if let Some(w) = env::<String>("TENSORSHARP_WYOMING")? {
            c.wyoming = Some(w);
        }
        // Flags.
        if !o.models.is_empty() {
            c.models = o.models.iter().cloned().map(ModelConfig::for_path).collect();
        }
        for m in &mut c.models {
            for (v, slot) in [
                (o.ctx.or(env_ctx), &mut m.ctx),
                (o.slots.or(env_slots), &mut m.slots),
                (o.threads.or(env_threads), &mut m.threads),
            ] {
                if let Some(v) = v {
                    *slot = v;
                }
            }
            if let Some(n) = o.max_tokens {
                m.max_tokens = n;
            }
        }
        if o.socket.is_some() {
            c.socket = o.socket.clone();
        }
        if let Some(q) = o.queue {
            c.queue = q;
        }
        if let Some(f) = o.max_frame {
            c.max_frame = f;
        }
        if o.wyoming.is_some() {
            c.wyoming = o.wyoming.clone();
        }
        if o.ram_budget.is_some() {
            c.ram_budget = o.ram_budget;
        }
        c.check()?;
        Ok(c)
    }

    fn from_file(p: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        // Relative model paths are relative to the file.
        let dir = p.parent().unwrap_or(Path::new("."));
        for m in &mut c.models {
            if m.path.is_relative() {
                m.path = dir.join(&m.path);
            }
        }
        Ok(c)
    }

    fn check(&mut self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err(format!(
                "no model: give -m MODEL.gguf, TENSORSHARP_MODEL, or [[model]] entries in {DEFAULT_CONFIG}"
            ));
        }
        if !(64..=(256 << 20)).contains(&self.max_frame) {
            return Err(format!("max_frame {} (64 B ..= 256 MiB)", self.max_frame));
        }
        if !(1..=65536).contains(&self.queue) {
            return Err(format!("queue {} (1..=65536)", self.queue));
        }
        if self.read_timeout_ms == 0 {
            return Err("read_timeout_ms must be at least 1".into());
        }
        if self.socket_mode & !0o777 != 0 {
            return Err(format!(
                "socket_mode {:o}: permission bits only (e.g. 0o660)",
                self.socket_mode
            ));
        }
        let mut names = std::collections::HashSet::new();
        for m in &mut self.models {
            if m.name.is_empty() {
                m.name = ModelConfig::name_of(&m.path);
            }
            if !names.insert(m.name.clone()) {
                return Err(format!("two models are named '{}': give them distinct `name`s", m.name));
            }
            if !(1..=tensorsharp_runtime::session::params::MAX_SEQ).contains(&m.slots) {
                return Err(format!(
                    "model '{}': slots {} (1..={})",
                    m.name,
                    m.slots,
                    tensorsharp_runtime::session::params::MAX_SEQ
                ));
            }
            if m.max_tokens == 0 {
                return Err(format!("model '{}': max_tokens must be at least 1", m.name));
            }
        }
        Ok(())
    }

    /// The socket path in force.
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(tensorsharp_rpc::default_socket_path)
    }
}

impl ModelConfig {
    /// A model by path with the defaults.
    pub fn for_path(path: PathBuf) -> ModelConfig {
        ModelConfig {
            name: ModelConfig::name_of(&path),
            path,
            ..Default::default()
        }
    }

    fn name_of(p: &Path) -> String {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocols_sampling_defaults_are_the_runtimes() {
        // The rpc crate does not depend on the runtime, so it repeats the defaults: held equal here.
        let (s, r) = (Sampling::default(), tensorsharp_runtime::SamplerParams::default());
        assert_eq!(
            (s.temperature, s.top_k as usize, s.top_p, s.min_p, s.repeat_penalty),
            (r.temperature, r.top_k, r.top_p, r.min_p, r.repeat_penalty)
        );
        assert_eq!(
            (
                s.presence_penalty,
                s.frequency_penalty,
                s.repeat_last_n as usize,
                s.seed
            ),
            (r.presence_penalty, r.frequency_penalty, r.penalty_last_n, r.seed)
        );
    }

    #[test]
    fn a_file_with_every_field_and_unknown_keys_refused() {
        let dir = std::env::temp_dir().join(format!("tsharpd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tsharpd.toml");
        std::fs::write(
            &f,
            r#"
socket = "/tmp/x.sock"
socket_mode = 0o600
queue = 8
[[model]]
name = "small"
path = "m.gguf"
slots = 2
[model.sampling]
temperature = 0.0
top_k = 1
top_p = 1.0
min_p = 0.0
repeat_penalty = 1.0
presence_penalty = 0.0
frequency_penalty = 0.0
repeat_last_n = 64
seed = 1
"#,
        )
        .unwrap();
        let c = Config::load(Some(&f), &Overrides::default()).unwrap();
        assert_eq!(c.socket_mode, 0o600);
        assert_eq!(c.models[0].path, dir.join("m.gguf"));
        assert_eq!(c.models[0].slots, 2);
        assert_eq!(c.models[0].sampling.temperature, 0.0);
        // Flags win over the file.
        let o = Overrides {
            slots: Some(3),
            queue: Some(9),
            ..Default::default()
        };
        let c = Config::load(Some(&f), &o).unwrap();
        assert_eq!((c.models[0].slots, c.queue), (3, 9));
        std::fs::write(&f, "sockt = \"/x\"\n").unwrap();
        let e = Config::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        std::fs::write(&f, "[[model]]\npath = \"a.gguf\"\nslots = 0\n").unwrap();
        let e = Config::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(e.contains("slots 0"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
