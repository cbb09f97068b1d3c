//! OpenAI chat completions, also spoken by vLLM, Ollama, llama.cpp server
//! and LM Studio. The schema goes in `response_format` as `json_schema`.

use agentd_domain::Usage;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    Completion, CompletionRequest, Connection, ContentPart, HttpSettings, Message, ModelProvider,
    ProviderError, Role,
};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAiProvider {
    connection: Connection,
}

impl OpenAiProvider {
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

    fn body(request: &CompletionRequest) -> Value {
        let mut body = json!({
            "model": request.upstream_model,
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": crate::strict::to_strict(&request.schema),
                    "strict": true,
                },
            },
        });
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(reasoning) = request.reasoning {
            body["reasoning_effort"] = json!(reasoning.as_str());
        }
        if let Some(max) = request.max_output_tokens {
            body["max_completion_tokens"] = json!(max);
        }
        body
    }
}

/// `data:<mime>;base64,<data>`: how OpenAI takes inline images.
fn data_url(mime_type: &str, data: &[u8]) -> String {
    format!("data:{mime_type};base64,{}", crate::base64(data))
}

fn message_json(message: &Message) -> Value {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content = match message.parts.as_slice() {
        [ContentPart::Text(text)] => json!(text),
        parts => Value::Array(
            parts
                .iter()
                .map(|part| match part {
                    ContentPart::Text(text) => json!({"type": "text", "text": text}),
                    ContentPart::Image { mime_type, data } => json!({
                        "type": "image_url",
                        "image_url": {"url": data_url(mime_type, data)},
                    }),
                })
                .collect(),
        ),
    };
    json!({"role": role, "content": content})
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: i64,
    completion_tokens: i64,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<i64>,
}

/// The message of an OpenAI error body, or the start of the raw body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

fn parse_answer(body: &str) -> Result<Completion, ProviderError> {
    let response: ChatResponse =
        serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Malformed("no choices in the response".into()))?;
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
        return Err(ProviderError::NoAnswer(format!(
            "the model refused: {refusal}"
        )));
    }
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(ProviderError::NoAnswer(
            "the answer was cut off at the output token limit".into(),
        ));
    }
    let text = choice
        .message
        .content
        .ok_or_else(|| ProviderError::Malformed("the answer has no content".into()))?;
    let usage = response
        .usage
        .map(|u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        })
        .unwrap_or_default();
    Ok(Completion { text, usage })
}

/// Undoes the nullable optionals of strict mode (see [`crate::strict`]).
fn without_forced_nulls(mut completion: Completion, schema: &Value) -> Completion {
    if let Ok(mut value) = serde_json::from_str::<Value>(&completion.text) {
        crate::strict::drop_optional_nulls(schema, &mut value);
        completion.text = value.to_string();
    }
    completion
}

#[async_trait]
impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.connection.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let reply = self
            .connection
            .post(
                "/chat/completions",
                &Self::body(request),
                |http, key| match key {
                    Some(key) => http.bearer_auth(key),
                    None => http,
                },
            )
            .await?;
        if reply.is_success() {
            parse_answer(&reply.body)
                .map(|completion| without_forced_nulls(completion, &request.schema))
        } else {
            Err(reply.error(error_message(&reply.body), self.connection.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_text_part_is_sent_as_a_string() {
        let request = CompletionRequest {
            upstream_model: "m".into(),
            messages: vec![
                Message::text(Role::System, "sys"),
                Message {
                    role: Role::User,
                    parts: vec![
                        ContentPart::Text("hi".into()),
                        ContentPart::Image {
                            mime_type: "image/png".into(),
                            data: vec![1, 2, 3],
                        },
                    ],
                },
            ],
            schema_name: "output".into(),
            schema: json!({"type": "object"}),
            temperature: Some(0.0),
            reasoning: None,
            max_output_tokens: None,
        };
        let body = OpenAiProvider::body(&request);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            body["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AQID"
        );
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("reasoning_effort").is_none());
    }

    #[test]
    fn answers_usage_and_cut_offs_are_read() {
        let ok = r#"{"choices":[{"message":{"content":"{}"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let completion = parse_answer(ok).unwrap();
        assert_eq!(completion.usage.input_tokens, 10);
        assert_eq!(completion.usage.cached_input_tokens, 4);
        let cut = r#"{"choices":[{"message":{"content":"{"},"finish_reason":"length"}]}"#;
        assert!(matches!(parse_answer(cut), Err(ProviderError::NoAnswer(_))));
        assert!(matches!(
            parse_answer("<html>"),
            Err(ProviderError::Malformed(_))
        ));
    }
}
