//! `tsharp template`: a conversation rendered through the model's chat template, printed exactly
//! (nothing added: no newline, no BOS the tokenizer would add).

use std::path::PathBuf;

use clap::Args;
use tensorsharp_runtime::{ChatTemplate, Conversation, Tokenizer};

use crate::run::ModelArg;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Options of `tsharp template`.
#[derive(Args, Debug)]
pub struct TemplateArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The conversation: JSON with `messages`, optional `tools` and optional
    /// `add_generation_prompt` (default true); `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    #[command(flatten)]
    template: TemplateChoice,
}

/// `--chat-template`, shared by `run`, `chat` and `template`.
#[derive(Args, Debug)]
pub struct TemplateChoice {
    /// Chat template: a built-in (chatml, llama3, gemma, phi3) or a Jinja file, instead of the
    /// model's own.
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
}

/// Reads a conversation file (`-`: standard input).
pub fn read_conversation(path: &std::path::Path) -> Result<Conversation> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    Ok(Conversation::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

pub fn template(a: TemplateArgs) -> Result<()> {
    let conv = read_conversation(&a.file)?;
    let f = tensorsharp_models::GgufFile::open(a.model.resolve()?)?;
    let tok = Tokenizer::from_gguf(&f)?;
    let t = ChatTemplate::for_file(&f, &tok, a.template.chat_template.as_deref())?;
    let text = t.render(&conv)?;
    out!("{text}")?;
    {
        use std::io::Write as _;
        std::io::stdout().flush()?;
    }
    Ok(())
}
