//! TensorSharp RPC: protocol v1 of `tsharpd` (its messages and framing) and a blocking client.
//!
//! The normative description is `docs/protocol.md`; this crate is the reference encoding. It
//! depends on serde, postcard and thiserror only, so firmware-side Rust can link it without the
//! runtime.
//!
//! ```no_run
//! use tensorsharp_rpc::{Client, Generate, Input};
//! let mut c = Client::connect(tensorsharp_rpc::default_socket_path(), "example")?;
//! let reply = c.generate(Generate::prompt("The capital of France is", 16), |t| print!("{t}"))?;
//! println!("\n{:?}", reply.done.stop);
//! # Ok::<(), tensorsharp_rpc::RpcError>(())
//! ```
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod frame;
pub mod protocol;

pub use client::{default_socket_path, Client, Reply};
pub use error::{Result, RpcError};
pub use protocol::*;

impl Generate {
    /// A request for `max_tokens` tokens after `prompt`, every other field at its default
    /// (greedy unless the daemon's model defaults say otherwise; id 0: the client picks one).
    pub fn prompt(prompt: &str, max_tokens: u32) -> Generate {
        Generate {
            id: 0,
            model: None,
            input: Input::Prompt(prompt.into()),
            sampling: None,
            max_tokens,
            stop: Vec::new(),
            constraint: None,
            session: None,
            priority: 0,
            preempt: false,
        }
    }
}
