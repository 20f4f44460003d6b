//! The one error type of `tensorsharp-runtime`.

use tensorsharp_kernels::KernelError;
use tensorsharp_models::ModelError;

/// Everything that can go wrong while loading a model or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The model file is malformed or unreadable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A kernel was called with inconsistent sizes (a bug) or no kernel tier can run.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The tokenizer model or pre-tokenizer is not one we implement.
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),
    /// A caller-supplied parameter is out of range.
    #[error("invalid parameter {name}: {problem}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// The prompt plus the tokens to generate do not fit in the context.
    #[error(
        "context full: {needed} tokens needed, the context holds {n_ctx} (use a larger --ctx or a shorter prompt)"
    )]
    ContextFull {
        /// Tokens needed.
        needed: usize,
        /// Context size.
        n_ctx: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    BadToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// The mapped model file shrank or was rewritten in place while in use (reading it raised
    /// SIGBUS, see [`crate::fault`]): the result of the call is void and the model must be
    /// loaded again.
    #[error(
        "{path}: the model file was truncated or rewritten while mapped (--mmap); the model must be loaded again (replace model files with a rename, never in place)"
    )]
    ModelFileChanged {
        /// The model file.
        path: std::path::PathBuf,
    },
    /// The system refused an allocation the plan had room for (an address-space limit such as
    /// `ulimit -v`, overcommit settings); nothing was kept.
    #[error("out of memory: could not allocate {bytes} bytes for {what} ({hint})")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// What to change.
        hint: &'static str,
    },
    /// The calling thread has less stack left than the kernels need.
    #[error(
        "the calling thread has {available} bytes of stack left, the kernels need {needed}: run the call on a thread with a larger stack"
    )]
    StackTooSmall {
        /// Bytes left below the caller's frame.
        available: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The memory plan exceeds the RAM budget (nothing was allocated).
    #[error("over budget: {message}")]
    OverBudget {
        /// Bytes the plan needs.
        needed: u64,
        /// Bytes the budget allows.
        budget: u64,
        /// The numbers and what to change.
        message: String,
    },
    /// Locking memory (`--mlock=required`) or another real-time setting failed.
    #[error("{what}: {errno} ({hint})")]
    System {
        /// What was attempted.
        what: String,
        /// The OS error.
        errno: nix::errno::Errno,
        /// What to change.
        hint: &'static str,
    },
    /// A caller's buffer cannot hold the result; nothing useful was written.
    #[error("the {what} needs {needed} bytes, the buffer holds {got}")]
    BufferTooSmall {
        /// What was to be written.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A saved session state belongs to another model or session shape (the session is unchanged).
    #[error("the state was saved for another {what}: {saved}, this session has {here}")]
    StateMismatch {
        /// What differs: "model", "context size", "KV cache type", ...
        what: &'static str,
        /// The state's value.
        saved: String,
        /// This session's value.
        here: String,
    },
    /// A saved session state is not one, or is damaged (the session is unchanged).
    #[error("corrupt session state: {0}")]
    CorruptState(String),
    /// A chat template failed to compile or render (the template's own `raise_exception`
    /// included); `line` is the template line where it failed, when known.
    #[error("chat template '{template}'{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        /// The template's name (the model's own, a built-in, or the file it came from).
        template: String,
        /// Line in the template source.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// A conversation (messages, tools) is not of the expected shape.
    #[error("conversation: {0}")]
    Conversation(String),
    /// The GPU backend failed or cannot run this model (the CPU can).
    #[error("GPU: {0}")]
    Gpu(String),
    /// Generation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// An I/O error outside the model file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;

pub(crate) fn bad_hparam(key: impl Into<String>, problem: impl Into<String>) -> RuntimeError {
    RuntimeError::Model(ModelError::BadHyperparameter {
        key: key.into(),
        problem: problem.into(),
    })
}
