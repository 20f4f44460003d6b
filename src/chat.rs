//! `tsharp chat`: an interactive conversation with the model through its chat template, the
//! session keeping its KV cache between turns so that each turn prefills only what is new.
//!
//! Input: one line per message; a line ending in `\` continues on the next, and `"""` opens and
//! closes a block of several lines. Commands: `/reset`, `/system TEXT`, `/save FILE`,
//! `/load FILE`, `/stats`, `/help`, `/exit`. Ctrl-C during a reply stops the reply (the text so
//! far stays in the conversation); at the prompt it clears the line; Ctrl-D leaves. History
//! with the arrow keys (rustyline). `-f FILE` renders a conversation, prints one reply and exits.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;
use rustyline::error::ReadlineError;
use tensorsharp_runtime::chat::tool_calls;
use tensorsharp_runtime::{ChatTemplate, Conversation, Flow, GenStats, Generator, Model, Sampler, Session, StopReason};

use crate::run::{self, ModelArg, SamplingArgs, SessionArgs, StructuredArgs};
use crate::template::{read_conversation, TemplateChoice};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Options of `tsharp chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    structured: StructuredArgs,
    /// A system message to start with.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    template: TemplateChoice,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n_predict: usize,
    /// One-shot: reply to the conversation in this JSON file (`messages`, `tools`), then exit.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[command(flatten)]
    gpu: crate::gpu::GpuArgs,
    /// With -f: print one JSON object (the reply, its tool calls parsed, the counts) instead of
    /// the text.
    #[arg(long, requires = "file")]
    json: bool,
}

/// The conversation and everything a turn needs.
struct Chat {
    model: Arc<Model>,
    session: Session,
    sampler: Sampler,
    generator: Generator,
    template: ChatTemplate,
    conv: Conversation,
    n_predict: usize,
    last: Option<GenStats>,
}

impl Chat {
    /// One assistant turn after the conversation so far: renders it, prefills what the session
    /// does not hold yet, streams the reply to stdout and appends it to the conversation.
    fn reply(&mut self) -> Result<StopReason> {
        self.reply_to(true)
    }

    /// [`reply`](Self::reply), streaming the text to stdout or not.
    fn reply_to(&mut self, stream: bool) -> Result<StopReason> {
        if let Some(c) = self.sampler.constraint_mut() {
            c.reset()?;
        }
        self.conv.add_generation_prompt = true;
        let text = self.template.render(&self.conv)?;
        let tokens = self.template.tokenize(self.model.tokenizer(), &text);
        let n_ctx = self.session.n_ctx();
        if tokens.len() >= n_ctx {
            return Err(format!(
                "the conversation is {} tokens, the context holds {n_ctx}: /reset, or start with a larger --ctx",
                tokens.len()
            )
            .into());
        }
        let max = self.n_predict.min(n_ctx - tokens.len());
        run::INTERRUPTED.store(false, Ordering::SeqCst);
        self.session.clear_cancel();
        let mut reply = String::new();
        let mut out = std::io::stdout().lock();
        let st = self.generator.run_conversation(
            &mut self.session,
            &mut self.sampler,
            &tokens,
            max,
            &[],
            &run::INTERRUPTED,
            |_, piece| {
                reply.push_str(piece);
                if stream {
                    let _ = out.write_all(piece.as_bytes()).and_then(|_| out.flush());
                }
                Flow::Continue
            },
        )?;
        if stream {
            let _ = writeln!(
                out,
                "{}",
                if st.reason == StopReason::Cancelled {
                    " [stopped]"
                } else {
                    ""
                }
            );
        }
        self.conv.push("assistant", &reply);
        self.last = Some(st);
        Ok(st.reason)
    }

    fn system(&mut self, text: &str) {
        let first_is_system = self.conv.messages.first().is_some_and(|m| m["role"] == "system");
        let msg = serde_json::json!({"role": "system", "content": text});
        if first_is_system {
            self.conv.messages[0] = msg;
        } else {
            self.conv.messages.insert(0, msg);
        }
    }

    fn stats(&self) -> String {
        let mut s = format!(
            "context {} / {} tokens | {} messages | template {} | {} kernels, {} threads",
            self.session.n_past(),
            self.session.n_ctx(),
            self.conv.messages.len(),
            self.template.name(),
            self.model.kernels().tier().name(),
            self.session.params().n_threads
        );
        if let Some(g) = &self.last {
            s.push_str(&format!(
                "\nlast turn: {} prompt tokens prefilled, {} cached, {:.1} ms to the first token | {} tokens generated, {:.1} tok/s",
                g.n_prompt,
                g.cached_tokens,
                g.prompt_secs * 1e3,
                g.n_generated,
                g.n_generated.saturating_sub(1) as f64 / g.gen_secs.max(1e-9)
            ));
        }
        s
    }
}

const HELP: &str = "commands: /reset  /system TEXT  /save FILE  /load FILE  /stats  /help  /exit
a line ending in \\ continues on the next; \"\"\" opens and closes a block of lines
Ctrl-C stops a reply; Ctrl-D leaves";

/// Reads one message: a line, `\`-continued lines, or a `"""` block. `None` at end of input.
fn read_message(rl: &mut rustyline::DefaultEditor) -> Result<Option<String>> {
    let mut text = String::new();
    let mut block = false;
    loop {
        let prompt = if text.is_empty() && !block { "> " } else { ". " };
        match rl.readline(prompt) {
            Ok(line) => {
                if !block && text.is_empty() && line.trim() == "\"\"\"" {
                    block = true;
                    continue;
                }
                if block {
                    if line.trim_end().ends_with("\"\"\"") {
                        text.push_str(line.trim_end().trim_end_matches("\"\"\""));
                        return Ok(Some(text));
                    }
                    text.push_str(&line);
                    text.push('\n');
                    continue;
                }
                if let Some(head) = line.strip_suffix('\\') {
                    text.push_str(head);
                    text.push('\n');
                    continue;
                }
                text.push_str(&line);
                return Ok(Some(text));
            }
            // Ctrl-C at the prompt: drop what was typed, as a shell does.
            Err(ReadlineError::Interrupted) => {
                text.clear();
                block = false;
            }
            Err(ReadlineError::Eof) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn chat(a: ChatArgs) -> Result<()> {
    let params = a.session.params()?;
    let model = Arc::new(Model::load_for(
        a.model.resolve()?,
        a.model.weights_mode(),
        None,
        &params,
    )?);
    let mut session = Session::new(Arc::clone(&model), params)?;
    for w in session.warnings() {
        eprintln!("tsharp: warning: {w}");
    }
    a.gpu.attach(&model, &mut session)?;
    let mut sampler = Sampler::new(a.sampling.params(), model.tokenizer().n_vocab())?;
    sampler.set_constraint(a.structured.constraint(&model)?);
    let generator = Generator::new(&session, 0);
    let template = ChatTemplate::for_model(&model, a.template.chat_template.as_deref())?;
    run::install_interrupt(session.cancel_flag(), false);
    let mut chat = Chat {
        model,
        session,
        sampler,
        generator,
        template,
        conv: Conversation::default(),
        n_predict: a.n_predict,
        last: None,
    };
    if let Some(f) = &a.file {
        chat.conv = read_conversation(f)?;
        if let Some(s) = &a.system {
            chat.system(s);
        }
        chat.reply_to(!a.json)?;
        if a.json {
            let reply = chat
                .conv
                .messages
                .last()
                .map(|m| m["content"].clone())
                .unwrap_or_default();
            let text = reply.as_str().unwrap_or_default();
            let st = chat.last.expect("a reply ran");
            let j = serde_json::json!({
                "text": text,
                "tool_calls": tool_calls::parse(text),
                "stop_reason": run::stop_reason_name(&st.reason),
                "prompt_tokens": st.n_prompt + st.cached_tokens,
                "generated_tokens": st.n_generated,
            });
            outln!("{j}")?;
        }
        return Ok(());
    }
    if let Some(s) = &a.system {
        chat.system(s);
    }
    let mut rl = rustyline::DefaultEditor::new()?;
    eprintln!(
        "tsharp chat: {} ({} template); /help for commands, Ctrl-D to leave",
        chat.model.path().display(),
        chat.template.name()
    );
    while let Some(line) = read_message(&mut rl)? {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(trimmed);
        let (cmd, arg) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        let arg = arg.trim();
        match cmd {
            "/exit" | "/quit" => break,
            "/help" => println!("{HELP}"),
            "/reset" => {
                chat.conv.messages.retain(|m| m["role"] == "system");
                chat.session.reset();
                chat.last = None;
                println!("(conversation cleared)");
            }
            "/system" if !arg.is_empty() => {
                chat.system(arg);
                println!("(system message set)");
            }
            "/save" if !arg.is_empty() => {
                let j = serde_json::json!({ "messages": chat.conv.messages });
                match std::fs::write(arg, serde_json::to_string_pretty(&j)? + "\n") {
                    Ok(()) => println!("(saved {} messages to {arg})", chat.conv.messages.len()),
                    Err(e) => eprintln!("tsharp: {arg}: {e}"),
                }
            }
            "/load" if !arg.is_empty() => match read_conversation(std::path::Path::new(arg)) {
                Ok(c) => {
                    chat.conv.messages = c.messages;
                    chat.conv.tools = c.tools;
                    println!("(loaded {} messages from {arg})", chat.conv.messages.len());
                }
                Err(e) => eprintln!("tsharp: {e}"),
            },
            "/stats" => println!("{}", chat.stats()),
            c if c.len() > 1 && c.starts_with('/') && c[1..].chars().all(|ch| ch.is_ascii_alphabetic()) => {
                eprintln!("tsharp: unknown command or missing argument: {trimmed} (/help)");
            }
            _ => {
                chat.conv.push("user", &line);
                if let Err(e) = chat.reply() {
                    // The turn failed (context full, a template error): take the message back.
                    chat.conv.messages.pop();
                    eprintln!("tsharp: {e}");
                }
            }
        }
    }
    Ok(())
}
