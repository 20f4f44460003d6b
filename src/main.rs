//! `tsharp`: the TensorSharp command-line tool.

/// Writes to standard output like `print!`, but returns the `io::Result` (a closed pipe, a full
/// disk) instead of panicking; `main` treats a closed pipe as the reader's choice.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` returning the `io::Result`, as [`out!`].
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod ask;
mod bench;
mod board;
mod chat;
mod default_model;
mod gpu;
mod info;
mod run;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tsharp", version, about = "TensorSharp: on-device LLM runtime", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a GGUF model's architecture, hyperparameters, metadata and tensor table.
    Info {
        /// The model file (GGUF v2 or v3).
        model: PathBuf,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Array values show at most this many items.
        #[arg(long, default_value_t = 8)]
        max_items: usize,
    },
    /// Print the CPU kernel tiers this machine can run and the one that would be used.
    Kernels,
    /// Print the detected board (device tree, L4T, CPU cores and features, memory, CUDA) and
    /// the defaults its profile gives (threads, pinning, tier, context, KV type, RAM budget),
    /// each with its reason.
    Board(board::BoardArgs),
    /// Generate text: streams to stdout, timings to stderr (like llama.cpp's CLI).
    Run(run::RunArgs),
    /// Chat with the model: an interactive conversation through its chat template (streamed
    /// replies, Ctrl-C stops a reply, /help for commands), or one reply to `-f FILE`.
    Chat(chat::ChatArgs),
    /// Print a session's memory plan (weights, KV cache, activations, scratch, ...) and check
    /// it against the RAM budget; exits with an error when it does not fit.
    Plan(run::PlanArgs),
    /// Measure prompt processing and generation throughput (llama-bench style).
    Bench(bench::BenchArgs),
    /// Print a conversation (JSON: messages, tools, add_generation_prompt) rendered through the
    /// model's chat template, exactly.
    Template(template::TemplateArgs),
    /// Print the token ids of a text as a JSON list.
    Tokenize(run::TokenizeArgs),
    /// Print the text of token ids.
    Detokenize(run::DetokenizeArgs),
    /// Ask a running tsharpd: streams its reply.
    Ask(ask::AskArgs),
    /// A running tsharpd's models, queues, sessions and memory.
    Status(ask::StatusArgs),
}

/// The stack of the thread that runs the command: the kernels need ~128 KiB below the caller
/// (`tensorsharp_runtime::stack::STACK_NEEDED`), and the main thread's stack is whatever
/// `ulimit -s` says (64 KiB on some boards' init scripts); a thread's own stack is not bound by it.
/// Small on purpose: `--mlock` makes the whole of it resident, outside the session plan.
const COMMAND_STACK: usize = 2 << 20;

fn main() -> ExitCode {
    // Run the command on a thread with a known stack; should the thread not start (an
    // address-space limit), run it here and let the runtime's stack check speak.
    match std::thread::Builder::new()
        .name("tsharp".into())
        .stack_size(COMMAND_STACK)
        .spawn(command)
    {
        Ok(h) => h.join().unwrap_or(ExitCode::FAILURE),
        Err(_) => command(),
    }
}

fn command() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { model, json, max_items } => info::run(&model, json, max_items),
        Command::Kernels => info::kernels(),
        Command::Board(a) => board::board(a),
        Command::Run(a) => run::run(a),
        Command::Chat(a) => chat::chat(a),
        Command::Plan(a) => run::plan(a),
        Command::Bench(a) => bench::bench(a),
        Command::Template(a) => template::template(a),
        Command::Tokenize(a) => run::tokenize(a),
        Command::Detokenize(a) => run::detokenize(a),
        Command::Ask(a) => ask::ask(a),
        Command::Status(a) => ask::status(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `tsharp tokenize ... | head`: the reader closed the pipe; nothing left to say.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tsharp: error: {e}");
            ExitCode::FAILURE
        }
    }
}
