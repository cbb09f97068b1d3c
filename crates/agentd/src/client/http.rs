//! The HTTP client of the API: bearer key, `organization_id` on every call
//! (as the Roe SDKs send it), and errors told in the server's own words.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::profile::Server;
use super::ClientError;

/// Most calls answer at once; a sync run is bounded by the server's own
/// sync timeout (it answers 504 with the job id when the run takes longer).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Api {
    server: Server,
    http: reqwest::Client,
}

impl Api {
    pub fn new(server: Server) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("agentd-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::failed(format!("cannot set up HTTP: {error}")))?;
        Ok(Self { server, http })
    }

    /// A request to `path` (which starts with `/v1/`), authenticated.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut builder = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.server.api_key)
            .timeout(DEFAULT_TIMEOUT);
        if let Some(organization) = &self.server.organization_id {
            builder = builder.query(&[("organization_id", organization)]);
        }
        builder
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// Every item of a paginated list at `path` (which has no query), page
    /// after page.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, ClientError> {
        const PAGE_SIZE: usize = 100;
        let mut items = Vec::new();
        for page in 1.. {
            let body = self
                .get(&format!("{path}?page={page}&page_size={PAGE_SIZE}"))
                .await?;
            let results = body["results"].as_array().cloned().unwrap_or_default();
            let done = results.is_empty() || body["next"].is_null();
            items.extend(results);
            if done {
                break;
            }
        }
        Ok(items)
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Sends the request; the JSON body of a 2xx answer (`null` when empty),
    /// else the error the server described.
    pub async fn send(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                detail: error_detail(status, &bytes),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|error| {
            ClientError::failed(format!("the server's answer is not JSON: {error}"))
        })
    }

    fn unreachable(&self, error: reqwest::Error) -> ClientError {
        // The innermost cause says what happened ("Connection refused").
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        if error.is_timeout() {
            reason = format!("no answer in time ({reason})");
        }
        ClientError::Unreachable {
            url: self.server.url.clone(),
            reason,
        }
    }
}

/// The server's `detail` (then `error`, then `message`, as the SDKs read
/// errors), else the start of the body, else the status line.
fn error_detail(status: StatusCode, body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        for key in ["detail", "error", "message"] {
            if let Some(Value::String(text)) = map.get(key) {
                return text.clone();
            }
        }
        return Value::Object(map).to_string();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.to_string()
    } else {
        text.chars().take(500).collect()
    }
}

/// One path segment, percent-encoded (ids come from the command line).
pub fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
