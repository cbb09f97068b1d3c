//! Anthropic Messages API (`POST /v1/messages`). Structured output goes
//! through one forced tool call: the schema is the tool's `input_schema`,
//! `tool_choice` names the tool, and the answer is the `input` of the
//! `tool_use` block the model returns.

use agentd_domain::Usage;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    base64, merged_turns, Completion, CompletionRequest, Connection, ContentPart, HttpSettings,
    Message, ModelProvider, ProviderError, Role,
};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header every request carries.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the Messages API; this is used when the
/// request names no limit.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;
/// The property that carries a non-object schema's answer (tool inputs must
/// be objects, see [`tool_schema`]).
const WRAPPED_PROPERTY: &str = "value";

pub struct AnthropicProvider {
    connection: Connection,
}

impl AnthropicProvider {
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
        let tool = tool_name(&request.schema_name);
        let system: Vec<String> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(message_text)
            .filter(|text| !text.is_empty())
            .collect();
        let mut body = json!({
            "model": request.upstream_model,
            "max_tokens": request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": conversation(&request.messages),
            "tools": [{
                "name": tool,
                "description": "Record the answer. Call this tool exactly once with the complete answer.",
                "input_schema": tool_schema(&request.schema),
            }],
            "tool_choice": {"type": "tool", "name": tool},
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(temperature) = request.temperature {
            // Anthropic takes 0..=1 (OpenAI's range is 0..=2) and answers
            // 400 outside it.
            body["temperature"] = json!(temperature.clamp(0.0, 1.0));
        }
        // `request.reasoning` is deliberately not sent. Anthropic's extended
        // thinking (`thinking: {type: "enabled", budget_tokens}`) refuses a
        // forced `tool_choice` (only `auto`/`none` are allowed with it), and
        // with `auto` the model may answer in prose instead of calling the
        // tool, which would lose the schema guarantee this provider is built
        // on. Thinking also forbids a custom temperature. A schema-valid
        // answer matters more here than deeper reasoning.
        body
    }
}

/// A tool name Anthropic accepts: `^[a-zA-Z0-9_-]{1,64}$`.
pub fn tool_name(schema_name: &str) -> String {
    let name: String = schema_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "output".into()
    } else {
        name
    }
}

fn is_object_schema(schema: &Value) -> bool {
    schema.get("properties").is_some()
        || schema.get("type").and_then(Value::as_str) == Some("object")
}

/// A tool's `input_schema` must describe an object; any other schema is
/// wrapped in one whose single required property holds the answer.
fn tool_schema(schema: &Value) -> Value {
    if is_object_schema(schema) {
        let mut schema = schema.clone();
        if schema.get("type").is_none() {
            schema["type"] = json!("object");
        }
        schema
    } else {
        let mut inner = schema.clone();
        // Definitions must stay at the root for `#/$defs/...` references.
        let mut wrapper = json!({
            "type": "object",
            "properties": {},
            "required": [WRAPPED_PROPERTY],
        });
        if let Value::Object(map) = &mut inner {
            for key in ["$defs", "definitions"] {
                if let Some(defs) = map.remove(key) {
                    wrapper[key] = defs;
                }
            }
        }
        wrapper["properties"][WRAPPED_PROPERTY] = inner;
        wrapper
    }
}

fn message_text(message: &Message) -> String {
    message
        .parts
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text(text) => Some(text.as_str()),
            ContentPart::Image { .. } => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn block_json(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text(text) => json!({"type": "text", "text": text}),
        ContentPart::Image { mime_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": mime_type, "data": base64(data)},
        }),
    }
}

/// The user/assistant turns as content blocks. Consecutive turns of one role
/// are merged (the API wants them alternating), and a conversation must
/// start with a user turn.
fn conversation(messages: &[Message]) -> Vec<Value> {
    let mut turns = merged_turns(messages, "assistant", block_json);
    if turns.first().is_none_or(|(role, _)| *role != "user") {
        turns.insert(
            0,
            (
                "user",
                vec![json!({"type": "text", "text": "Answer by calling the tool."})],
            ),
        );
    }
    turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    content: Vec<Value>,
    stop_reason: Option<String>,
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct MessagesUsage {
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
    cache_read_input_tokens: Option<i64>,
    cache_creation_input_tokens: Option<i64>,
}

impl From<MessagesUsage> for Usage {
    /// Anthropic's `input_tokens` leaves out the tokens read from and
    /// written to the prompt cache; here they are all input, the reads
    /// also counted as cached.
    fn from(u: MessagesUsage) -> Self {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let created = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens + read + created,
            output_tokens: u.output_tokens,
            cached_input_tokens: read,
        }
    }
}

/// The message of an Anthropic error body
/// (`{"type":"error","error":{"type","message"}}`), or the start of the raw body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let message = v["error"]["message"].as_str()?;
            Some(match v["error"]["type"].as_str() {
                Some(kind) => format!("{kind}: {message}"),
                None => message.to_owned(),
            })
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

fn parse_answer(body: &str, wrapped: bool) -> Result<Completion, ProviderError> {
    let response: MessagesResponse =
        serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    match response.stop_reason.as_deref() {
        Some("max_tokens") => {
            return Err(ProviderError::NoAnswer(
                "the answer was cut off at the output token limit".into(),
            ))
        }
        Some("refusal") => {
            return Err(ProviderError::NoAnswer(
                "the model refused to answer".into(),
            ))
        }
        _ => {}
    }
    let input = response
        .content
        .iter()
        .find(|block| block["type"] == "tool_use")
        .map(|block| block["input"].clone())
        .ok_or_else(|| {
            let said: String = response
                .content
                .iter()
                .filter_map(|block| block["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(300)
                .collect();
            ProviderError::NoAnswer(if said.is_empty() {
                "the model did not call the answer tool".into()
            } else {
                format!("the model did not call the answer tool; it said: {said}")
            })
        })?;
    let answer = if wrapped {
        match input {
            Value::Object(mut map) => map.remove(WRAPPED_PROPERTY).unwrap_or(Value::Null),
            other => other,
        }
    } else {
        input
    };
    let usage = response.usage.map(Usage::from).unwrap_or_default();
    Ok(Completion {
        text: answer.to_string(),
        usage,
    })
}

#[async_trait]
impl ModelProvider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.connection.name
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let reply = self
            .connection
            .post("/v1/messages", &Self::body(request), |http, key| {
                let http = http.header("anthropic-version", API_VERSION);
                match key {
                    Some(key) => http.header("x-api-key", key),
                    None => http,
                }
            })
            .await?;
        if reply.is_success() {
            parse_answer(&reply.body, !is_object_schema(&request.schema))
        } else {
            Err(reply.error(error_message(&reply.body), self.connection.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReasoningEffort;

    fn request() -> CompletionRequest {
        CompletionRequest {
            upstream_model: "claude-sonnet-4-6".into(),
            messages: vec![
                Message::text(Role::System, "sys one"),
                Message::text(Role::System, "sys two"),
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
            schema_name: "invoice output.v1".into(),
            schema: json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            temperature: Some(0.0),
            reasoning: None,
            max_output_tokens: None,
        }
    }

    #[test]
    fn the_body_forces_one_tool_call_with_the_schema() {
        let body = AnthropicProvider::body(&request());
        assert_eq!(body["model"], "claude-sonnet-4-6");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["system"], "sys one\n\nsys two");
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"type": "text", "text": "hi"})
        );
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AQID"}})
        );
        assert_eq!(body["tools"][0]["name"], "invoice_output_v1");
        assert_eq!(body["tools"][0]["input_schema"], request().schema);
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": "invoice_output_v1"})
        );
        assert!(body.get("thinking").is_none());
    }

    #[test]
    fn limits_temperature_and_reasoning_are_mapped() {
        let mut req = request();
        req.max_output_tokens = Some(123);
        req.temperature = Some(1.7);
        req.reasoning = Some(ReasoningEffort::High);
        let body = AnthropicProvider::body(&req);
        assert_eq!(body["max_tokens"], 123);
        assert_eq!(body["temperature"], 1.0);
        // Extended thinking cannot be combined with a forced tool choice.
        assert!(body.get("thinking").is_none());
        assert_eq!(body["tool_choice"]["type"], "tool");
        req.temperature = None;
        assert!(AnthropicProvider::body(&req).get("temperature").is_none());
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let messages = vec![
            Message::text(Role::Assistant, "earlier"),
            Message::text(Role::User, "a"),
            Message::text(Role::User, "b"),
            Message::text(Role::Assistant, "c"),
        ];
        let turns = conversation(&messages);
        let roles: Vec<_> = turns.iter().map(|t| t["role"].clone()).collect();
        assert_eq!(roles, vec!["user", "assistant", "user", "assistant"]);
        assert_eq!(turns[2]["content"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn tool_names_are_sanitised() {
        assert_eq!(tool_name("output"), "output");
        assert_eq!(tool_name("a b/c"), "a_b_c");
        assert_eq!(tool_name(""), "output");
        assert_eq!(tool_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn non_object_schemas_are_wrapped_and_unwrapped() {
        let schema = json!({"type": "array", "items": {"$ref": "#/$defs/i"}, "$defs": {"i": {"type": "string"}}});
        let wrapped = tool_schema(&schema);
        assert_eq!(wrapped["type"], "object");
        assert_eq!(wrapped["required"], json!(["value"]));
        assert_eq!(wrapped["properties"]["value"]["type"], "array");
        assert_eq!(wrapped["$defs"]["i"]["type"], "string");
        let body = r#"{"content":[{"type":"tool_use","id":"t","name":"output","input":{"value":["x"]}}],
            "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}"#;
        assert_eq!(parse_answer(body, true).unwrap().text, r#"["x"]"#);
        // An object schema without "type" gets one.
        assert_eq!(tool_schema(&json!({"properties": {}}))["type"], "object");
    }

    #[test]
    fn answers_and_usage_are_read() {
        let ok = r#"{"id":"msg_1","type":"message","role":"assistant","content":[
              {"type":"text","text":"Recording."},
              {"type":"tool_use","id":"toolu_1","name":"output","input":{"a":"b","n":1}}],
            "stop_reason":"tool_use",
            "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":30,"cache_creation_input_tokens":7}}"#;
        let completion = parse_answer(ok, false).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&completion.text).unwrap(),
            json!({"a": "b", "n": 1})
        );
        assert_eq!(completion.usage.input_tokens, 47);
        assert_eq!(completion.usage.output_tokens, 5);
        assert_eq!(completion.usage.cached_input_tokens, 30);
    }

    #[test]
    fn cut_offs_refusals_and_missing_tool_calls_are_no_answers() {
        let cut = r#"{"content":[{"type":"tool_use","id":"t","name":"o","input":{}}],"stop_reason":"max_tokens"}"#;
        assert!(matches!(
            parse_answer(cut, false),
            Err(ProviderError::NoAnswer(m)) if m.contains("cut off")
        ));
        let refused = r#"{"content":[],"stop_reason":"refusal"}"#;
        assert!(matches!(
            parse_answer(refused, false),
            Err(ProviderError::NoAnswer(_))
        ));
        let prose = r#"{"content":[{"type":"text","text":"I cannot."}],"stop_reason":"end_turn"}"#;
        assert!(matches!(
            parse_answer(prose, false),
            Err(ProviderError::NoAnswer(m)) if m.contains("I cannot.")
        ));
        assert!(matches!(
            parse_answer("<html>", false),
            Err(ProviderError::Malformed(_))
        ));
    }

    #[test]
    fn error_bodies_are_read() {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_message(body), "overloaded_error: Overloaded");
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
    }
}
