//! `tsharp`: the TensorSharp command-line tool.

mod info;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { model, json, max_items } => info::run(&model, json, max_items),
        Command::Kernels => {
            info::kernels();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsharp: error: {e}");
            ExitCode::FAILURE
        }
    }
}
