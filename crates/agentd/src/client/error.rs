//! What can go wrong in a client command, and the exit code each maps to.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments, configuration or input files: exit 2 (as clap does).
    #[error("{0}")]
    Usage(String),
    /// No answer from the server (connection refused, DNS, timeout): exit 3.
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error; `detail` is its own words: exit 1.
    #[error("the server answered {status}: {detail}")]
    Api { status: u16, detail: String },
    /// Anything else that stops the command (a local file that cannot be
    /// written, an answer that is not what the API promises): exit 1.
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: exit 130, as shells report a SIGINT.
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
}

impl ClientError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) => 2,
            Self::Unreachable { .. } => 3,
            Self::Api { .. } | Self::Failed(_) => 1,
            Self::Interrupted => 130,
        })
    }

    /// Worth trying again: the server may be back in a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}
