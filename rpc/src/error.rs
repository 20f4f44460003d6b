//! The crate's error type.

/// What went wrong talking protocol v1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's length prefix is over the maximum.
    #[error("frame of {len} bytes is over the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length.
        len: u64,
        /// The maximum.
        max: u32,
    },
    /// The stream ended inside a frame.
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    /// A payload that is not a message.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A message that could not be encoded.
    #[error("unencodable message: {0}")]
    Encode(String),
    /// The daemon answered with an `Error` frame.
    #[error("daemon error {code} ({}): {message}", crate::protocol::ErrorCode::from_u16(*code).map(|c| format!("{c:?}")).unwrap_or_else(|| "unknown".into()))]
    Server {
        /// The request, if the error is about one.
        id: Option<u64>,
        /// [`ErrorCode`](crate::protocol::ErrorCode) value.
        code: u16,
        /// The daemon's message.
        message: String,
    },
    /// The queue was full.
    #[error("the daemon is busy ({queue_len} requests queued); try again")]
    Busy {
        /// Requests queued.
        queue_len: u32,
    },
    /// The daemon sent something the protocol does not allow here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
}

/// `Result` with [`RpcError`].
pub type Result<T> = std::result::Result<T, RpcError>;
