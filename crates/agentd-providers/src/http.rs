//! What the HTTP providers share: a client with its base URL, key and
//! timeout, one request/answer exchange, and the meaning of error statuses.

use std::time::Duration;

use serde_json::Value;

use crate::{parse_retry_after, ProviderError};

/// Largest provider answer read by default: far above any model's answer
/// (a few hundred KiB at most), far below what could hurt the server.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How a provider's HTTP exchanges are bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Time limit of one call.
    pub timeout: Duration,
    /// Largest answer body read; a larger one fails the call.
    pub max_response_bytes: usize,
}

/// A timeout alone: the default answer size cap.
impl From<Duration> for HttpSettings {
    fn from(timeout: Duration) -> Self {
        Self {
            timeout,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A provider's endpoint settings and HTTP client.
pub(crate) struct Connection {
    pub name: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    max_response_bytes: usize,
    client: reqwest::Client,
}

impl Connection {
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<String>,
        settings: impl Into<HttpSettings>,
    ) -> Self {
        let settings = settings.into();
        Self {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeout: settings.timeout,
            max_response_bytes: settings.max_response_bytes,
            client: reqwest::Client::builder()
                .timeout(settings.timeout)
                .build()
                .expect("a TLS backend is compiled in"),
        }
    }

    /// POSTs `body` to `{base_url}{path}`; `headers` adds the provider's
    /// headers, with the key when one is configured.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: impl FnOnce(reqwest::RequestBuilder, Option<&str>) -> reqwest::RequestBuilder,
    ) -> Result<HttpReply, ProviderError> {
        let request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .json(body);
        let settings = HttpSettings {
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
        };
        HttpReply::send(headers(request, self.api_key.as_deref()), settings).await
    }
}

/// A provider's HTTP answer, read whole (up to the size cap).
pub(crate) struct HttpReply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl HttpReply {
    /// Sends a request; transport failures, timeouts and answers over the
    /// size cap become errors.
    pub(crate) async fn send(
        request: reqwest::RequestBuilder,
        settings: HttpSettings,
    ) -> Result<Self, ProviderError> {
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                ProviderError::Timeout(settings.timeout)
            } else {
                ProviderError::Transport(error.without_url().to_string())
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers().get("retry-after"));
        let too_large = || ProviderError::TooLarge(settings.max_response_bytes);
        if response
            .content_length()
            .is_some_and(|length| length > settings.max_response_bytes as u64)
        {
            return Err(too_large());
        }
        // Read in chunks, so that an endless answer stops at the cap instead
        // of filling memory.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > settings.max_response_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Self {
            status,
            retry_after,
            body: String::from_utf8_lossy(&bytes).into_owned(),
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
