//! The Gemini provider against a loopback server speaking generateContent:
//! path with the model, key header, and a 429 that `RetryingProvider` rides out.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_providers::gemini::GeminiProvider;
use agentd_providers::{CompletionRequest, ModelProvider, ProviderError, RetryingProvider};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<Vec<Response>>>,
    seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
}

async fn generate(
    State(fake): State<Fake>,
    Path(model_call): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.seen
        .lock()
        .unwrap()
        .push((model_call.clone(), headers.clone(), body.clone()));
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some("AIza-test") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com"}]}})),
        )
            .into_response();
    }
    let Some(model) = model_call.strip_suffix(":generateContent") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut script = fake.script.lock().unwrap();
    if !script.is_empty() {
        return script.remove(0);
    }
    Json(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "{\"ok\": true}"}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 4, "thoughtsTokenCount": 6,
            "cachedContentTokenCount": 8, "totalTokenCount": 30},
        "modelVersion": model,
    }))
    .into_response()
}

async fn serve(fake: Fake) -> String {
    support::serve(
        Router::new()
            .route("/v1beta/models/{model_call}", post(generate))
            .with_state(fake),
    )
    .await
}

fn request() -> CompletionRequest {
    support::request("gemini-3-flash-preview")
}

#[tokio::test]
async fn the_key_header_is_sent_and_a_rate_limit_is_retried() {
    let fake = Fake::default();
    fake.script.lock().unwrap().push(
        (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}]}})),
        )
            .into_response(),
    );
    let base = serve(fake.clone()).await;
    let provider = GeminiProvider::new(
        "gemini",
        &format!("{base}/"),
        Some("AIza-test".into()),
        Duration::from_secs(10),
    );
    let retrying = RetryingProvider::new(Arc::new(provider), support::fast_retries());
    let completion = retrying.complete(&request()).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&completion.text).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(completion.usage.input_tokens, 20);
    assert_eq!(completion.usage.output_tokens, 10);
    assert_eq!(completion.usage.cached_input_tokens, 8);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one 429, then one success");
    let (path, headers, body) = &seen[1];
    assert_eq!(path, "gemini-3-flash-preview:generateContent");
    assert!(headers.get("authorization").is_none());
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Extract.");
    assert_eq!(
        body["generationConfig"]["responseJsonSchema"],
        request().schema
    );
}

#[tokio::test]
async fn an_invalid_key_is_unauthorized_and_not_retried() {
    let fake = Fake::default();
    let base = serve(fake.clone()).await;
    let provider = GeminiProvider::new(
        "gemini",
        &base,
        Some("wrong".into()),
        Duration::from_secs(10),
    );
    let retrying = RetryingProvider::new(Arc::new(provider), support::fast_retries());
    let error = retrying.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unauthorized { status: 400, message } if message.contains("API key not valid")),
        "{error:?}"
    );
    assert_eq!(fake.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn overload_is_unavailable() {
    let fake = Fake::default();
    fake.script.lock().unwrap().push(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE"}})),
        )
            .into_response(),
    );
    let base = serve(fake.clone()).await;
    let provider = GeminiProvider::new(
        "gemini",
        &base,
        Some("AIza-test".into()),
        Duration::from_secs(10),
    );
    let error = provider.complete(&request()).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { status: 503, .. }),
        "{error:?}"
    );
}
