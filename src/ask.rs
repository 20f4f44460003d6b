//! `tsharp ask` and `tsharp status`: clients of a running `tsharpd`.

use std::path::PathBuf;

use clap::Args;
use tensorsharp_rpc::{Client, Generate, Input, Message, Sampling};

/// Where the daemon is.
#[derive(Args, Debug)]
pub struct SocketArg {
    /// The daemon's socket (default: $TENSORSHARP_SOCKET, else the daemon's default path).
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl SocketArg {
    fn connect(&self) -> Result<Client, Box<dyn std::error::Error>> {
        let path = self.socket.clone().unwrap_or_else(tensorsharp_rpc::default_socket_path);
        Client::connect(&path, "tsharp").map_err(|e| format!("{}: {e} (is tsharpd running?)", path.display()).into())
    }
}

/// Options of `tsharp ask`.
#[derive(Args, Debug)]
pub struct AskArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// The prompt.
    prompt: String,
    /// Send the prompt as a user message through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// A system message (implies --chat).
    #[arg(long)]
    system: Option<String>,
    /// Model name (default: the daemon's first).
    #[arg(long)]
    model: Option<String>,
    /// Tokens to generate (0: the daemon's default).
    #[arg(short = 'n', long = "n-predict", default_value_t = 0)]
    n_predict: u32,
    /// Temperature (unset: the daemon's default sampling).
    #[arg(long)]
    temp: Option<f32>,
    /// Random seed (with --temp).
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// A named session: the daemon keeps its KV cache for the next request with this name.
    #[arg(long)]
    session: Option<String>,
    /// Priority (higher first).
    #[arg(long, default_value_t = 0)]
    priority: u8,
    /// Print one JSON object (text, tokens, stop reason, usage, timings) instead of streaming.
    #[arg(long)]
    json: bool,
}

/// `tsharp ask`: streams the daemon's reply to stdout.
pub fn ask(a: AskArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut c = a.socket.connect()?;
    let input = if a.chat || a.system.is_some() {
        let mut m = Vec::new();
        if let Some(s) = &a.system {
            m.push(Message {
                role: "system".into(),
                content: s.clone(),
            });
        }
        m.push(Message {
            role: "user".into(),
            content: a.prompt.clone(),
        });
        Input::Chat(m)
    } else {
        Input::Prompt(a.prompt.clone())
    };
    let req = Generate {
        model: a.model,
        input,
        sampling: a.temp.map(|t| Sampling {
            temperature: t,
            seed: a.seed,
            ..Default::default()
        }),
        stop: a.stop,
        session: a.session,
        priority: a.priority,
        ..Generate::prompt("", a.n_predict)
    };
    let json = a.json;
    let reply = c.generate(req, |t| {
        if !json {
            let _ = out!("{t}");
        }
    })?;
    if json {
        let d = &reply.done;
        outln!(
            "{}",
            serde_json::json!({
                "text": reply.text,
                "tokens": reply.tokens,
                "stop": format!("{:?}", d.stop),
                "prompt_tokens": d.usage.prompt_tokens,
                "cached_tokens": d.usage.cached_tokens,
                "generated_tokens": d.usage.generated_tokens,
                "queued_us": d.timings.queued_us,
                "first_token_us": d.timings.first_token_us,
                "generate_us": d.timings.generate_us,
            })
        )?;
    } else {
        outln!()?;
    }
    Ok(())
}

/// Options of `tsharp status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `tsharp status`: the daemon's models, queues and memory.
pub fn status(a: StatusArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut c = a.socket.connect()?;
    let s = c.status()?;
    if a.json {
        let models: Vec<_> = s
            .models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "queued": m.queued, "active": m.active, "slots": m.slots,
                    "sessions": m.sessions, "completed": m.completed,
                    "generated_tokens": m.generated_tokens, "tokens_per_s": m.tokens_per_s,
                    "cache_hit_ratio": m.cache_hit_ratio, "plan_bytes": m.plan_bytes,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "server": s.server, "uptime_s": s.uptime_s, "connections": s.connections,
                "rss_bytes": s.rss_bytes, "models": models,
            })
        )?;
        return Ok(());
    }
    outln!(
        "{}, up {} s, {} connections, RSS {:.1} MiB",
        s.server,
        s.uptime_s,
        s.connections,
        s.rss_bytes as f64 / 1048576.0
    )?;
    for m in &s.models {
        outln!(
            "  {}: {}/{} slots active, {} queued, {} sessions, {} done, {} tokens, {:.1} tok/s, cache hits {:.0} %, plan {:.1} MiB",
            m.name,
            m.active,
            m.slots,
            m.queued,
            m.sessions,
            m.completed,
            m.generated_tokens,
            m.tokens_per_s,
            m.cache_hit_ratio * 100.0,
            m.plan_bytes as f64 / 1048576.0
        )?;
    }
    Ok(())
}
