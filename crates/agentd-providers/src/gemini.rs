//! Google Gemini API (`POST /v1beta/models/{model}:generateContent`, key in
//! `x-goog-api-key`). The schema goes in `generationConfig.responseJsonSchema`
//! with `responseMimeType: application/json`; the answer is the text of the
//! first candidate.

use std::time::Duration;

use agentd_domain::Usage;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    base64, merged_turns, Completion, CompletionRequest, Connection, ContentPart, HttpSettings,
    Message, ModelProvider, ProviderError, ReasoningEffort, Role,
};

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

pub struct GeminiProvider {
    connection: Connection,
}

impl GeminiProvider {
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<String>,
        settings: impl Into<HttpSettings>,
    ) -> Self {
        Self {
            connection: Connection::new(name, base_url, api_key, settings),
        }
    }

    fn path(model: &str) -> String {
        let model = model.strip_prefix("models/").unwrap_or(model);
        format!("/v1beta/models/{model}:generateContent")
    }

    fn body(request: &CompletionRequest) -> Value {
        // `responseJsonSchema` takes JSON Schema as is (anyOf, $ref,
        // additionalProperties, type arrays, "null"), unlike the older
        // OpenAPI-subset `responseSchema`; unsupported keywords are ignored
        // by the service rather than rejected.
        let mut config = json!({
            "responseMimeType": "application/json",
            "responseJsonSchema": request.schema,
        });
        if let Some(temperature) = request.temperature {
            config["temperature"] = json!(temperature);
        }
        if let Some(max) = request.max_output_tokens {
            config["maxOutputTokens"] = json!(max);
        }
        if let Some(reasoning) = request.reasoning {
            config["thinkingConfig"] = thinking_config(&request.upstream_model, reasoning);
        }
        let mut body = json!({
            "contents": contents(&request.messages),
            "generationConfig": config,
        });
        let system: Vec<Value> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .flat_map(|m| m.parts.iter())
            .filter_map(|part| match part {
                ContentPart::Text(text) if !text.is_empty() => Some(json!({"text": text})),
                _ => None,
            })
            .collect();
        if !system.is_empty() {
            body["systemInstruction"] = json!({"parts": system});
        }
        body
    }
}

/// Gemini 2.x takes a token budget; Gemini 3 and later take a level
/// (`thinkingLevel`), and sending both is a 400. The first Gemini 3 Pro
/// knows only `low` and `high`, so `medium` becomes `high` there.
fn thinking_config(model: &str, effort: ReasoningEffort) -> Value {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let budget_era = ["gemini-1", "gemini-2"]
        .iter()
        .any(|prefix| model.starts_with(prefix));
    if budget_era {
        let budget = match effort {
            ReasoningEffort::Low => 1024,
            ReasoningEffort::Medium => 8192,
            ReasoningEffort::High => 24576,
        };
        json!({"thinkingBudget": budget})
    } else {
        let level = match effort {
            ReasoningEffort::Medium if model.starts_with("gemini-3-pro") => "high",
            other => other.as_str(),
        };
        json!({"thinkingLevel": level})
    }
}

fn part_json(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text(text) => json!({"text": text}),
        ContentPart::Image { mime_type, data } => json!({
            "inlineData": {"mimeType": mime_type, "data": base64(data)},
        }),
    }
}

/// The user/model turns; consecutive turns of one role are merged.
fn contents(messages: &[Message]) -> Vec<Value> {
    let turns = merged_turns(messages, "model", part_json);
    turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
    block_reason_message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UsageMetadata {
    prompt_token_count: i64,
    candidates_token_count: i64,
    thoughts_token_count: i64,
    cached_content_token_count: i64,
}

impl From<UsageMetadata> for Usage {
    /// `promptTokenCount` already includes the cached tokens; thinking
    /// tokens are billed as output.
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count,
            output_tokens: u.candidates_token_count + u.thoughts_token_count,
            cached_input_tokens: u.cached_content_token_count,
        }
    }
}

fn parse_answer(body: &str) -> Result<Completion, ProviderError> {
    let response: GenerateResponse =
        serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    if let Some(feedback) = &response.prompt_feedback {
        if let Some(reason) = feedback
            .block_reason
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "BLOCK_REASON_UNSPECIFIED")
        {
            let detail = feedback
                .block_reason_message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return Err(ProviderError::NoAnswer(format!(
                "the prompt was blocked: {reason}{detail}"
            )));
        }
    }
    let candidate = response
        .candidates
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Malformed("no candidates in the response".into()))?;
    match candidate.finish_reason.as_deref() {
        None | Some("STOP") | Some("FINISH_REASON_UNSPECIFIED") => {}
        Some("MAX_TOKENS") => {
            return Err(ProviderError::NoAnswer(
                "the answer was cut off at the output token limit".into(),
            ))
        }
        Some(reason) => {
            let detail = candidate
                .finish_message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return Err(ProviderError::NoAnswer(format!(
                "the model stopped without an answer: {reason}{detail}"
            )));
        }
    }
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .iter()
        // Thought summaries (only sent when asked for) are not the answer.
        .filter(|part| part["thought"] != json!(true))
        .filter_map(|part| part["text"].as_str())
        .collect();
    if text.trim().is_empty() {
        return Err(ProviderError::NoAnswer("the answer is empty".into()));
    }
    let usage = response.usage_metadata.map(Usage::from).unwrap_or_default();
    Ok(Completion { text, usage })
}

/// What a Google error body (`{"error":{"code","message","status","details"}}`)
/// says: the message, whether it is about the API key, and a `RetryInfo`
/// delay if there is one.
struct ErrorInfo {
    message: String,
    invalid_key: bool,
    retry_delay: Option<Duration>,
}

fn error_info(body: &str) -> ErrorInfo {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return ErrorInfo {
            message: body.chars().take(300).collect(),
            invalid_key: false,
            retry_delay: None,
        };
    };
    let error = &value["error"];
    let details = error["details"].as_array().cloned().unwrap_or_default();
    let message = match (error["status"].as_str(), error["message"].as_str()) {
        (Some(status), Some(message)) => format!("{status}: {message}"),
        (None, Some(message)) => message.to_owned(),
        _ => body.chars().take(300).collect(),
    };
    let invalid_key = details.iter().any(|d| {
        matches!(
            d["reason"].as_str(),
            Some("API_KEY_INVALID" | "API_KEY_SERVICE_BLOCKED" | "API_KEY_HTTP_REFERRER_BLOCKED")
        )
    }) || error["message"]
        .as_str()
        .is_some_and(|m| m.contains("API key not valid") || m.contains("API key expired"));
    let retry_delay = details
        .iter()
        .filter(|d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| parse_duration(d["retryDelay"].as_str()?));
    ErrorInfo {
        message,
        invalid_key,
        retry_delay,
    }
}

/// A protobuf JSON duration such as `"37s"` or `"1.5s"`.
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[async_trait]
impl ModelProvider for GeminiProvider {
    fn name(&self) -> &str {
        &self.connection.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let path = Self::path(&request.upstream_model);
        let mut reply = self
            .connection
            .post(&path, &Self::body(request), |http, key| match key {
                Some(key) => http.header("x-goog-api-key", key),
                None => http,
            })
            .await?;
        if reply.is_success() {
            return parse_answer(&reply.body);
        }
        let info = error_info(&reply.body);
        // Google puts the wait in the body (RetryInfo) more often than in a header.
        reply.retry_after = reply.retry_after.or(info.retry_delay);
        if reply.status == 400 && info.invalid_key {
            return Err(ProviderError::Unauthorized {
                status: 400,
                message: info.message,
            });
        }
        Err(reply.error(info.message, self.connection.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CompletionRequest {
        CompletionRequest {
            upstream_model: "gemini-3-flash-preview".into(),
            messages: vec![
                Message::text(Role::System, "sys"),
                Message {
                    role: Role::User,
                    parts: vec![
                        ContentPart::Text("hi".into()),
                        ContentPart::Image {
                            mime_type: "image/jpeg".into(),
                            data: vec![1, 2, 3],
                        },
                    ],
                },
                Message::text(Role::Assistant, "ok"),
                Message::text(Role::User, "more"),
            ],
            schema_name: "output".into(),
            schema: json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}},
                "additionalProperties": false}),
            temperature: Some(0.2),
            reasoning: None,
            max_output_tokens: Some(500),
        }
    }

    #[test]
    fn the_body_carries_the_schema_and_the_turns() {
        let body = GeminiProvider::body(&request());
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "sys"}]})
        );
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[0]["role"], "user");
        assert_eq!(contents[0]["parts"][0], json!({"text": "hi"}));
        assert_eq!(
            contents[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "AQID"}})
        );
        assert_eq!(
            contents[1],
            json!({"role": "model", "parts": [{"text": "ok"}]})
        );
        let config = &body["generationConfig"];
        assert_eq!(config["responseMimeType"], "application/json");
        assert_eq!(config["responseJsonSchema"], request().schema);
        assert!(config.get("responseSchema").is_none());
        assert_eq!(config["temperature"], 0.2);
        assert_eq!(config["maxOutputTokens"], 500);
        assert!(config.get("thinkingConfig").is_none());
        assert!(body.get("model").is_none());
    }

    #[test]
    fn the_endpoint_names_the_model() {
        let provider = GeminiProvider::new("gemini", "http://h:1/", None, Duration::from_secs(1));
        let endpoint = |model| {
            format!(
                "{}{}",
                provider.connection.base_url,
                GeminiProvider::path(model)
            )
        };
        assert_eq!(
            endpoint("gemini-2.5-flash"),
            "http://h:1/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            endpoint("models/gemini-2.5-flash"),
            "http://h:1/v1beta/models/gemini-2.5-flash:generateContent"
        );
    }

    #[test]
    fn reasoning_is_a_level_on_gemini_3_and_a_budget_before() {
        let mut req = request();
        req.reasoning = Some(ReasoningEffort::Medium);
        assert_eq!(
            GeminiProvider::body(&req)["generationConfig"]["thinkingConfig"],
            json!({"thinkingLevel": "medium"})
        );
        req.upstream_model = "gemini-3.1-pro-preview".into();
        req.reasoning = Some(ReasoningEffort::Low);
        assert_eq!(
            GeminiProvider::body(&req)["generationConfig"]["thinkingConfig"],
            json!({"thinkingLevel": "low"})
        );
        assert_eq!(
            thinking_config("gemini-3-pro-preview", ReasoningEffort::Medium),
            json!({"thinkingLevel": "high"})
        );
        assert_eq!(
            thinking_config("gemini-2.5-pro", ReasoningEffort::Low),
            json!({"thinkingBudget": 1024})
        );
        assert_eq!(
            thinking_config("gemini-2.5-flash", ReasoningEffort::Medium),
            json!({"thinkingBudget": 8192})
        );
        assert_eq!(
            thinking_config("gemini-2.5-flash", ReasoningEffort::High),
            json!({"thinkingBudget": 24576})
        );
    }

    #[test]
    fn answers_and_usage_are_read() {
        let ok = r#"{"candidates":[{"content":{"role":"model","parts":[
              {"text":"thinking...","thought":true},{"text":"{\"a\":"},{"text":"\"b\"}"}]},
              "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":7,"thoughtsTokenCount":30,
              "cachedContentTokenCount":40,"totalTokenCount":137},"modelVersion":"gemini-3-flash-preview"}"#;
        let completion = parse_answer(ok).unwrap();
        assert_eq!(completion.text, r#"{"a":"b"}"#);
        assert_eq!(completion.usage.input_tokens, 100);
        assert_eq!(completion.usage.output_tokens, 37);
        assert_eq!(completion.usage.cached_input_tokens, 40);
    }

    #[test]
    fn cut_offs_and_blocks_are_no_answers() {
        let cut = r#"{"candidates":[{"content":{"parts":[{"text":"{\"a\":"}]},"finishReason":"MAX_TOKENS"}]}"#;
        assert!(matches!(
            parse_answer(cut),
            Err(ProviderError::NoAnswer(m)) if m.contains("cut off")
        ));
        let safety = r#"{"candidates":[{"finishReason":"SAFETY","safetyRatings":[]}]}"#;
        assert!(matches!(
            parse_answer(safety),
            Err(ProviderError::NoAnswer(m)) if m.contains("SAFETY")
        ));
        let recitation = r#"{"candidates":[{"content":{"parts":[]},"finishReason":"RECITATION"}]}"#;
        assert!(matches!(
            parse_answer(recitation),
            Err(ProviderError::NoAnswer(m)) if m.contains("RECITATION")
        ));
        let blocked = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":5}}"#;
        assert!(matches!(
            parse_answer(blocked),
            Err(ProviderError::NoAnswer(m)) if m.contains("PROHIBITED_CONTENT")
        ));
        let empty = r#"{"candidates":[{"content":{"parts":[{"text":""}]},"finishReason":"STOP"}]}"#;
        assert!(matches!(
            parse_answer(empty),
            Err(ProviderError::NoAnswer(_))
        ));
        assert!(matches!(
            parse_answer("{}"),
            Err(ProviderError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer("<html>"),
            Err(ProviderError::Malformed(_))
        ));
    }

    #[test]
    fn error_bodies_are_read() {
        let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",
            "status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",
            "reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let info = error_info(bad_key);
        assert!(info.invalid_key);
        assert!(info
            .message
            .starts_with("INVALID_ARGUMENT: API key not valid"));
        let quota = r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let info = error_info(quota);
        assert!(!info.invalid_key);
        assert_eq!(info.retry_delay, Some(Duration::from_secs(37)));
        let bad_request = r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        assert!(!error_info(bad_request).invalid_key);
        assert_eq!(error_info("oops").message, "oops");
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("x"), None);
    }
}
