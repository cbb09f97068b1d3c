//! Model providers. An engine asks for a structured completion from a model
//! id; the [`ModelCatalog`] says which provider serves it at what price, and
//! the provider speaks its own wire protocol.

pub mod anthropic;
pub mod catalog;
pub mod gemini;
mod http;
pub mod limits;
pub mod metered;
pub mod openai;
pub mod registry;
pub mod retry;
pub mod strict;

use std::time::Duration;

use agentd_domain::Usage;
use async_trait::async_trait;
use serde_json::Value;

pub use catalog::{Capability, ModelCatalog, ModelSpec};
pub(crate) use http::Connection;
pub use http::{HttpSettings, DEFAULT_MAX_RESPONSE_BYTES};
pub use metered::MeteredProvider;
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
    #[error("provider's answer is larger than {0} bytes")]
    TooLarge(usize),
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

/// Non-system turns as `(role, parts)`, empty text parts dropped and
/// consecutive turns of one role merged (Anthropic and Gemini want roles to
/// alternate).
pub(crate) fn merged_turns(
    messages: &[Message],
    assistant_role: &'static str,
    part_json: fn(&ContentPart) -> Value,
) -> Vec<(&'static str, Vec<Value>)> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = match message.role {
            Role::System => continue,
            Role::User => "user",
            Role::Assistant => assistant_role,
        };
        let parts: Vec<Value> = message
            .parts
            .iter()
            .filter(|part| !matches!(part, ContentPart::Text(t) if t.is_empty()))
            .map(part_json)
            .collect();
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    turns
}

/// Standard base64, as every provider takes inline images.
pub(crate) fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Parses `Retry-After` (seconds; HTTP dates are not worth honouring here).
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let seconds: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}
