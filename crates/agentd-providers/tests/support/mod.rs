//! What the loopback provider tests share: a server on a free port, a
//! structured-output request, and a retry policy that does not wait.

use std::time::Duration;

use agentd_providers::{CompletionRequest, Message, RetryPolicy, Role};
use axum::Router;
use serde_json::json;

/// Serves `app` on a free loopback port; returns its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A request for `{"ok": <bool>}` from `model`.
pub fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        upstream_model: model.into(),
        messages: vec![
            Message::text(Role::System, "Extract."),
            Message::text(Role::User, "text"),
        ],
        schema_name: "output".into(),
        schema: json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}),
        temperature: None,
        reasoning: None,
        max_output_tokens: None,
    }
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(10),
    }
}
