//! A provider's answer is read up to a size cap: a larger one, announced or
//! endless, fails the call with a clear error instead of filling memory.

#[allow(dead_code)] // the axum helpers are not needed here
mod support;

use std::time::Duration;

use agentd_providers::openai::OpenAiProvider;
use agentd_providers::{HttpSettings, ModelProvider, ProviderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CAP: usize = 64 * 1024;

/// A loopback "provider" that answers every request with `head` and then
/// `chunk` repeated `repeat` times (forever when `None`) until the client
/// goes away; returns its base URL.
async fn serve(head: String, chunk: Vec<u8>, repeat: Option<usize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (head, chunk) = (head.clone(), chunk.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then the JSON body (small): read until it stops coming.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut sent = 0;
                while repeat.is_none_or(|n| sent < n) {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
            });
        }
    });
    base
}

fn provider(base_url: &str) -> OpenAiProvider {
    let settings = HttpSettings {
        timeout: Duration::from_secs(60),
        max_response_bytes: CAP,
    };
    OpenAiProvider::new("openai", base_url, Some("sk-test".into()), settings)
}

#[tokio::test]
async fn an_answer_announced_over_the_cap_fails_the_call() {
    let length = CAP + 1;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    let base = serve(head, b" ".to_vec(), Some(length)).await;
    let error = provider(&base)
        .complete(&support::request("gpt-4.1"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::TooLarge(CAP)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("provider's answer is larger than {CAP} bytes")
    );
    assert!(!error.is_transient());
}

/// One chunk of a chunked body: 1 KiB of spaces.
fn spaces_chunk() -> Vec<u8> {
    let mut chunk = b"400\r\n".to_vec();
    chunk.extend_from_slice(&[b' '; 1024]);
    chunk.extend_from_slice(b"\r\n");
    chunk
}

#[tokio::test]
async fn an_endless_answer_stops_at_the_cap() {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let base = serve(head.into(), spaces_chunk(), None).await;
    let error = provider(&base)
        .complete(&support::request("gpt-4.1"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::TooLarge(CAP)), "{error:?}");
}

#[tokio::test]
async fn an_answer_within_the_cap_is_read() {
    let body = r#"{"choices":[{"message":{"role":"assistant","content":"{\"ok\": true}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let base = serve(head, Vec::new(), Some(0)).await;
    let completion = provider(&base)
        .complete(&support::request("gpt-4.1"))
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&completion.text).unwrap();
    assert_eq!(answer, serde_json::json!({"ok": true}));
}
