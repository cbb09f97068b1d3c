//! How an agent looks as an MCP tool: its name, its input schema, and how
//! a finished job becomes the tool's result. No I/O here.

use std::sync::Arc;

use agentd_domain::{Agent, AgentDatum, AgentVersion, InputDefinition, InputKind, Job, JobStatus};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::{json, Map, Value};

/// Most characters the name's slug keeps: with `_` and the 8-digit short id
/// the name stays within the 64 characters that model APIs accept for a
/// tool name.
const MAX_SLUG_CHARS: usize = 48;
/// Hex digits of the agent id a tool name ends with.
const SHORT_ID_CHARS: usize = 8;

/// `<slug of the agent's name>_<first 8 hex digits of its id>`, e.g.
/// `invoice_parser_3f2a9c1e`: only `[a-z0-9_]`, so every MCP client and
/// model API accepts it, and stable while the agent keeps its name.
pub fn tool_name(agent: &Agent) -> String {
    format!("{}_{}", slug(&agent.name), short_id(agent))
}

/// The short id a tool name ends with, when it has one.
pub fn short_id_of(tool_name: &str) -> Option<&str> {
    let (_, short) = tool_name.rsplit_once('_')?;
    let well_formed = short.len() == SHORT_ID_CHARS
        && short
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some(short)
}

fn short_id(agent: &Agent) -> String {
    agent.id.to_string()[..SHORT_ID_CHARS].to_owned()
}

/// Lowercase ASCII letters and digits; every other run of characters
/// becomes one `_`.
fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
        if slug.len() >= MAX_SLUG_CHARS {
            break;
        }
    }
    let slug = slug.trim_end_matches('_');
    if slug.is_empty() {
        "agent".into()
    } else {
        slug.to_owned()
    }
}

/// The tool that runs `agent` at `version` (its current one).
pub fn agent_tool(agent: &Agent, version: &AgentVersion) -> Tool {
    let description = version
        .description
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map_or_else(
            || {
                format!(
                    "Runs the agent '{}' ({}).",
                    agent.name, agent.engine_class_id
                )
            },
            str::to_owned,
        );
    let mut tool = Tool::new(
        tool_name(agent),
        description,
        Arc::new(input_schema(&version.input_definitions)),
    );
    tool.title = Some(agent.name.clone());
    tool
}

/// A JSON Schema object with one property per input definition; inputs
/// without a default are required.
pub fn input_schema(definitions: &[InputDefinition]) -> JsonObject {
    let properties: Map<String, Value> = definitions
        .iter()
        .map(|definition| (definition.key.clone(), input_property(definition)))
        .collect();
    let required: Vec<&str> = definitions
        .iter()
        .filter(|definition| definition.default.is_none())
        .map(|definition| definition.key.as_str())
        .collect();
    let schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    match schema {
        Value::Object(schema) => schema,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

fn input_property(definition: &InputDefinition) -> Value {
    let mut property = Map::new();
    let mut description = definition.description.trim().to_owned();
    match definition.kind() {
        InputKind::File => {
            property.insert("type".into(), json!("string"));
            append_sentence(
                &mut description,
                &format!(
                    "A file ({}): a data: URL with the content in base64 \
                     (data:<media type>;base64,<data>), an http(s) URL to fetch, \
                     or the id of a file stored on the server.",
                    definition.data_type
                ),
            );
        }
        // A JSON input takes any JSON value (sent on as JSON text).
        InputKind::Text if definition.data_type.contains("json") => {
            append_sentence(&mut description, "JSON (any value, or its text).");
        }
        InputKind::Text => {
            property.insert("type".into(), json!("string"));
        }
    }
    if let Some(example) = &definition.example {
        append_sentence(&mut description, &format!("Example: {example}"));
    }
    if !description.is_empty() {
        property.insert("description".into(), json!(description));
    }
    if let Some(default) = &definition.default {
        property.insert("default".into(), json!(default));
    }
    Value::Object(property)
}

fn append_sentence(text: &mut String, sentence: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(sentence);
}

/// A final job as the tool's result: the outputs as JSON text (what a
/// synchronous run answers) and, when some are JSON, as structured content
/// keyed by output; a failed or cancelled job is an error result that
/// says why.
pub fn job_result(job: &Job) -> CallToolResult {
    match (job.status, &job.outputs) {
        (JobStatus::Success | JobStatus::Cached, Some(outputs)) => outputs_result(outputs),
        (JobStatus::Cancelled, _) => error_result(format!("Job {} was cancelled.", job.id)),
        _ => error_result(match &job.error_message {
            Some(message) => format!("Job {} failed: {message}", job.id),
            None => format!("Job {} failed.", job.id),
        }),
    }
}

/// An error result with one text block: what the caller (a model) reads.
pub fn error_result(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn outputs_result(outputs: &[AgentDatum]) -> CallToolResult {
    let text = serde_json::to_string(outputs).unwrap_or_else(|_| "[]".into());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = structured_outputs(outputs);
    result
}

/// `{key: value}` for every output, JSON outputs parsed; `None` when no
/// output is JSON (the text block says it all).
fn structured_outputs(outputs: &[AgentDatum]) -> Option<Value> {
    let parsed: Vec<Option<Value>> = outputs.iter().map(parsed_json).collect();
    if parsed.iter().all(Option::is_none) {
        return None;
    }
    let object: Map<String, Value> = outputs
        .iter()
        .zip(parsed)
        .map(|(datum, json)| {
            (
                datum.key.clone(),
                json.unwrap_or_else(|| json!(datum.value)),
            )
        })
        .collect();
    Some(Value::Object(object))
}

fn parsed_json(datum: &AgentDatum) -> Option<Value> {
    if !datum.data_type.contains("json") {
        return None;
    }
    serde_json::from_str(&datum.value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(key: &str, data_type: &str) -> InputDefinition {
        InputDefinition::new(key, data_type)
    }

    #[test]
    fn slugs_keep_ascii_letters_and_digits_only() {
        assert_eq!(slug("Invoice Parser (v2)!"), "invoice_parser_v2");
        assert_eq!(slug("  --Über größe--  "), "ber_gr_e");
        assert_eq!(slug("日本語"), "agent");
        assert!(slug(&"x".repeat(300)).len() <= MAX_SLUG_CHARS);
    }

    #[test]
    fn short_ids_are_eight_lowercase_hex_digits_after_the_last_underscore() {
        assert_eq!(short_id_of("invoice_parser_3f2a9c1e"), Some("3f2a9c1e"));
        assert_eq!(short_id_of("agent_3F2A9C1E"), None);
        assert_eq!(short_id_of("agent_3f2a9c1"), None);
        assert_eq!(short_id_of("no-underscore"), None);
    }

    #[test]
    fn schema_requires_inputs_without_a_default_and_describes_files() {
        let mut optional = definition("language", "text/plain");
        optional.default = Some("en".into());
        let mut document = definition("document", "application/pdf");
        document.description = "The invoice.".into();
        let schema = input_schema(&[definition("question", "text/plain"), document, optional]);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["question", "document"]));
        assert_eq!(schema["properties"]["question"]["type"], "string");
        assert_eq!(schema["properties"]["language"]["default"], "en");
        let file = &schema["properties"]["document"];
        assert_eq!(file["type"], "string");
        let text = file["description"].as_str().unwrap();
        assert!(text.starts_with("The invoice. A file (application/pdf)"));
        assert!(text.contains("base64") && text.contains("URL"));
    }

    #[test]
    fn json_inputs_take_any_json_value() {
        let schema = input_schema(&[definition("payload", "application/json")]);
        assert!(schema["properties"]["payload"].get("type").is_none());
    }

    fn datum(key: &str, data_type: &str, value: &str) -> AgentDatum {
        AgentDatum {
            key: key.into(),
            description: String::new(),
            data_type: data_type.into(),
            value: value.into(),
            cost: None,
        }
    }

    #[test]
    fn json_outputs_become_structured_content() {
        let outputs = [
            datum("output", "application/json", r#"{"total": 12.5}"#),
            datum("note", "text/plain", "done"),
        ];
        let result = outputs_result(&outputs);
        assert_eq!(result.is_error, Some(false));
        assert_eq!(
            result.structured_content,
            Some(json!({"output": {"total": 12.5}, "note": "done"}))
        );
        let ContentBlock::Text(text) = &result.content[0] else {
            panic!("expected a text block");
        };
        let echoed: Vec<AgentDatum> = serde_json::from_str(&text.text).unwrap();
        assert_eq!(echoed, outputs);
    }

    #[test]
    fn text_outputs_have_no_structured_content() {
        let result = outputs_result(&[datum("note", "text/plain", "done")]);
        assert_eq!(result.structured_content, None);
    }
}
