//! `tsharp`: the TensorSharp command-line tool.

mod bench;
mod default_model;
mod info;
mod run;

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
    /// Generate text: streams to stdout, timings to stderr (like llama.cpp's CLI).
    Run(run::RunArgs),
    /// Print a session's memory plan (weights, KV cache, activations, scratch, ...) and check
    /// it against the RAM budget; exits with an error when it does not fit.
    Plan(run::PlanArgs),
    /// Measure prompt processing and generation throughput (llama-bench style).
    Bench(bench::BenchArgs),
    /// Print the token ids of a text as a JSON list.
    Tokenize(run::TokenizeArgs),
    /// Print the text of token ids.
    Detokenize(run::DetokenizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { model, json, max_items } => info::run(&model, json, max_items),
        Command::Kernels => {
            info::kernels();
            Ok(())
        }
        Command::Run(a) => run::run(a),
        Command::Plan(a) => run::plan(a),
        Command::Bench(a) => bench::bench(a),
        Command::Tokenize(a) => run::tokenize(a),
        Command::Detokenize(a) => run::detokenize(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsharp: error: {e}");
            ExitCode::FAILURE
        }
    }
}
