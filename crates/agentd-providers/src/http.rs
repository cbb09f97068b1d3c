//! What the HTTP providers share: a client with its base URL, key and
//! timeout, one request/answer exchange, and the meaning of error statuses.

use std::time::Duration;

use serde_json::Value;

use crate::{parse_retry_after, ProviderError};

/// A provider's endpoint settings and HTTP client.
pub(crate) struct Connection {
    pub name: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    client: reqwest::Client,
}

impl Connection {
    pub fn new(name: &str, base_url: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeout,
            client: reqwest::Client::builder()
                .timeout(timeout)
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
        HttpReply::send(headers(request, self.api_key.as_deref()), self.timeout).await
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
