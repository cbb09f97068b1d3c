//! Model providers. An engine asks for a structured completion from a model
//! id; the [`ModelCatalog`] says which provider serves it at what price, and
//! the provider speaks its own wire protocol.

pub mod anthropic;
pub mod catalog;
pub mod gemini;
pub mod limits;
pub mod openai;
pub mod registry;
pub mod retry;
pub mod strict;

use std::time::Duration;

use agentd_domain::Usage;
use async_trait::async_trait;
use serde_json::Value;

pub use catalog::{Capability, ModelCatalog, ModelSpec};
pub use registry::{ProviderRegistry, ResolveError, ResolvedModel};
pub use retry::{RetryPolicy, RetryingProvider};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContentPart {
    Text(String),
    /// An image as bytes with its MIME type.
    Image {
        mime_type: String,
        data: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<ContentPart>,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            parts: vec![ContentPart::Text(text.into())],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A request for an answer that must match a JSON Schema.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The provider's own name of the model.
    pub upstream_model: String,
    pub messages: Vec<Message>,
    pub schema_name: String,
    pub schema: Value,
    pub temperature: Option<f64>,
    pub reasoning: Option<ReasoningEffort>,
    pub max_output_tokens: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The answer text (JSON, when the provider honoured the schema).
    pub text: String,
    pub usage: Usage,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider rate limit (HTTP 429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("provider unavailable (HTTP {status}): {message}")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("provider rejected the API key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("provider rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("provider returned a malformed response: {0}")]
    Malformed(String),
    #[error("provider could not be reached: {0}")]
    Transport(String),
    #[error("provider gave no usable answer: {0}")]
    NoAnswer(String),
}

impl ProviderError {
    /// Whether the same request may succeed if sent again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Timeout(_)
                | Self::Transport(_)
                | Self::Malformed(_)
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// One wire protocol to a family of models.
#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// The provider's name in the model table (`openai`, `anthropic`, ...).
    fn name(&self) -> &str;

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError>;

    /// Whether this provider can enforce `schema`; checked when an agent is
    /// created, so that an unsupported schema is a 400 then, not a failed job.
    fn check_schema(&self, _schema: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// A provider's HTTP answer, read whole.
pub(crate) struct HttpReply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl HttpReply {
    /// Sends a request; transport failures and timeouts become errors.
    pub(crate) async fn send(
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                ProviderError::Timeout(timeout)
            } else {
                ProviderError::Transport(error.without_url().to_string())
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers().get("retry-after"));
        let body = response.text().await.map_err(transport)?;
        Ok(Self {
            status,
            retry_after,
            body,
        })
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..=299).contains(&self.status)
    }

    /// The error a non-2xx status means, with the provider's own message.
    pub(crate) fn error(&self, message: String, timeout: Duration) -> ProviderError {
        let (status, retry_after) = (self.status, self.retry_after);
        match status {
            401 | 403 => ProviderError::Unauthorized { status, message },
            408 => ProviderError::Timeout(timeout),
            429 => ProviderError::RateLimited {
                retry_after,
                message,
            },
            // 529 is Anthropic's "overloaded".
            500..=599 => ProviderError::Unavailable {
                status,
                retry_after,
                message,
            },
            _ => ProviderError::Rejected { status, message },
        }
    }
}

/// Parses `Retry-After` (seconds; HTTP dates are not worth honouring here).
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let seconds: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}
