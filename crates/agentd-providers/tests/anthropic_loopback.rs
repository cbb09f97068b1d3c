//! The Anthropic provider against a loopback server speaking the Messages
//! protocol: path, headers, key, and a 429 that `RetryingProvider` rides out.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_providers::anthropic::{AnthropicProvider, API_VERSION};
use agentd_providers::{CompletionRequest, ModelProvider, ProviderError, RetryingProvider};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Fake {
    /// Replies still to give, in order; then a tool call answering `{"ok": true}`.
    script: Arc<Mutex<Vec<Response>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn messages(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.seen
        .lock()
        .unwrap()
        .push((headers.clone(), body.clone()));
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("sk-ant-test") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response();
    }
    let mut script = fake.script.lock().unwrap();
    if !script.is_empty() {
        return script.remove(0);
    }
    let tool = body["tool_choice"]["name"].clone();
    Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"ok": true}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
    }))
    .into_response()
}

async fn serve(fake: Fake) -> String {
    support::serve(
        Router::new()
            .route("/v1/messages", post(messages))
            .with_state(fake),
    )
    .await
}

fn request() -> CompletionRequest {
    support::request("claude-haiku-4-5-20251001")
}

#[tokio::test]
async fn headers_are_sent_and_a_rate_limit_is_retried() {
    let fake = Fake::default();
    fake.script.lock().unwrap().push(
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})),
        )
            .into_response(),
    );
    let base = serve(fake.clone()).await;
    let provider = AnthropicProvider::new(
        "anthropic",
        &format!("{base}/"),
        Some("sk-ant-test".into()),
        Duration::from_secs(10),
    );
    let retrying = RetryingProvider::new(Arc::new(provider), support::fast_retries());
    let completion = retrying.complete(&request()).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&completion.text).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(completion.usage.input_tokens, 16);
    assert_eq!(completion.usage.cached_input_tokens, 4);
    assert_eq!(completion.usage.output_tokens, 3);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one 429, then one success");
    let (headers, body) = &seen[1];
    assert_eq!(headers["anthropic-version"], API_VERSION);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(headers.get("authorization").is_none());
    assert_eq!(body["system"], "Extract.");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "output"})
    );
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let fake = Fake::default();
    let base = serve(fake.clone()).await;
    let provider = AnthropicProvider::new(
        "anthropic",
        &base,
        Some("wrong".into()),
        Duration::from_secs(10),
    );
    let retrying = RetryingProvider::new(Arc::new(provider), support::fast_retries());
    let error = retrying.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unauthorized { status: 401, message } if message.contains("invalid x-api-key")),
        "{error:?}"
    );
    assert_eq!(fake.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn overloaded_is_unavailable() {
    let fake = Fake::default();
    fake.script.lock().unwrap().push(
        (
            StatusCode::from_u16(529).unwrap(),
            Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        )
            .into_response(),
    );
    let base = serve(fake.clone()).await;
    let provider = AnthropicProvider::new(
        "anthropic",
        &base,
        Some("sk-ant-test".into()),
        Duration::from_secs(10),
    );
    let error = provider.complete(&request()).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { status: 529, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}
