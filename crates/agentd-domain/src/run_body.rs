//! The body of a run request, read into one form whatever its shape (flat
//! JSON, `{"inputs": ...}` JSON, urlencoded or multipart form), then split
//! into inputs, `metadata` and `organization_id`. Reading multipart bodies
//! is left to the HTTP layer, which hands over the parts as form fields.

use serde_json::{Map, Value};

use crate::agent::InputDefinition;
use crate::input::RawInput;
use crate::FieldErrors;

/// A run body before it is matched with the agent's input definitions.
#[derive(Clone, Debug, PartialEq)]
pub enum RunBody {
    Json(Map<String, Value>),
    /// Form fields and file parts, in order.
    Form(Vec<(String, RawInput)>),
}

/// A run body matched with the input definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    pub inputs: Vec<(String, RawInput)>,
    pub metadata: Value,
    pub organization_id: Option<String>,
}

/// Reads a JSON object body; an empty or blank body reads as `{}`. The
/// error is a message for the caller.
pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("The request body must be a JSON object.".into()),
        Err(e) => Err(format!("Malformed JSON body: {e}")),
    }
}

/// Reads an `application/x-www-form-urlencoded` body. A body that starts
/// with `{` is read as JSON: `curl -d '{...}'` without a Content-Type header
/// sends JSON as a form.
pub fn parse_urlencoded(bytes: &[u8]) -> Result<RunBody, String> {
    if bytes.trim_ascii_start().starts_with(b"{") {
        return parse_json_object(bytes).map(RunBody::Json);
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|e| format!("Malformed form body: {e}"))?;
    Ok(RunBody::Form(
        pairs
            .into_iter()
            .map(|(key, value)| (key, RawInput::Text(value)))
            .collect(),
    ))
}

fn is_input(definitions: &[InputDefinition], key: &str) -> bool {
    definitions.iter().any(|d| d.key == key)
}

impl RunBody {
    /// Splits the body into inputs, `metadata` and `organization_id`; the
    /// wrapped shape is used when `inputs` is an object and no input is
    /// called `inputs`.
    pub fn into_request(self, definitions: &[InputDefinition]) -> Result<RunRequest, FieldErrors> {
        let mut metadata = None;
        let mut organization_id = None;
        let mut inputs = Vec::new();
        let mut take_reserved = |key: &str, value: RawInput| -> Option<RawInput> {
            match key {
                "metadata" => metadata = Some(value),
                "organization_id" if !is_input(definitions, key) => organization_id = Some(value),
                _ => return Some(value),
            }
            None
        };
        let fields: Vec<(String, RawInput)> = match self {
            RunBody::Json(mut map) => {
                let wrapped = match map.get("inputs") {
                    Some(Value::Object(_)) if !is_input(definitions, "inputs") => {
                        map.remove("inputs")
                    }
                    _ => None,
                };
                match wrapped {
                    Some(Value::Object(inner)) => {
                        for (key, value) in map {
                            take_reserved(&key, json_input(value));
                        }
                        json_fields(inner)
                    }
                    _ => json_fields(map),
                }
            }
            RunBody::Form(fields) => fields,
        };
        for (key, value) in fields {
            if let Some(value) = take_reserved(&key, value) {
                inputs.push((key, value));
            }
        }
        Ok(RunRequest {
            inputs,
            metadata: parse_metadata(metadata)?,
            organization_id: organization_id.and_then(|v| match v {
                RawInput::Text(text) => Some(text),
                _ => None,
            }),
        })
    }
}

fn json_fields(map: Map<String, Value>) -> Vec<(String, RawInput)> {
    map.into_iter()
        .map(|(key, value)| (key, json_input(value)))
        .collect()
}

fn json_input(value: Value) -> RawInput {
    match value {
        Value::String(text) => RawInput::Text(text),
        other => RawInput::Json(other),
    }
}

/// `metadata` may be an object, a JSON-encoded object, null or absent.
fn parse_metadata(raw: Option<RawInput>) -> Result<Value, FieldErrors> {
    let invalid = || {
        FieldErrors::single(
            "metadata",
            "Must be a JSON object or a JSON-encoded object string.",
        )
    };
    match raw {
        None | Some(RawInput::Json(Value::Null)) => Ok(Value::Object(Map::new())),
        Some(RawInput::Json(object @ Value::Object(_))) => Ok(object),
        Some(RawInput::Text(text)) if text.trim().is_empty() => Ok(Value::Object(Map::new())),
        Some(RawInput::Text(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(object @ Value::Object(_)) => Ok(object),
            Ok(Value::Null) => Ok(Value::Object(Map::new())),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definitions() -> Vec<InputDefinition> {
        serde_json::from_value(json!([{"key": "text", "data_type": "text/plain"}])).unwrap()
    }

    fn json_body(value: Value) -> RunBody {
        let Value::Object(map) = value else { panic!() };
        RunBody::Json(map)
    }

    #[test]
    fn flat_and_wrapped_json_read_the_same() {
        for body in [
            json!({"text": "hi", "metadata": {"a": 1}}),
            json!({"inputs": {"text": "hi"}, "metadata": {"a": 1}}),
            json!({"inputs": {"text": "hi", "metadata": "{\"a\": 1}"}}),
        ] {
            let request = json_body(body).into_request(&definitions()).unwrap();
            assert_eq!(
                request.inputs,
                vec![("text".to_string(), RawInput::Text("hi".into()))]
            );
            assert_eq!(request.metadata, json!({"a": 1}));
        }
    }

    #[test]
    fn an_input_called_inputs_is_not_unwrapped() {
        let definitions: Vec<InputDefinition> =
            serde_json::from_value(json!([{"key": "inputs", "data_type": "application/json"}]))
                .unwrap();
        let request = json_body(json!({"inputs": {"a": 1}}))
            .into_request(&definitions)
            .unwrap();
        assert_eq!(
            request.inputs,
            vec![("inputs".to_string(), RawInput::Json(json!({"a": 1})))]
        );
    }

    #[test]
    fn metadata_must_be_an_object() {
        let body = json_body(json!({"text": "hi", "metadata": "[1]"}));
        let errors = body.into_request(&definitions()).unwrap_err();
        assert_eq!(errors.fields().next().unwrap().0, "metadata");
        let body = json_body(json!({"text": "hi", "metadata": null}));
        assert_eq!(
            body.into_request(&definitions()).unwrap().metadata,
            json!({})
        );
    }

    #[test]
    fn organization_id_is_taken_out_of_the_inputs() {
        let body = RunBody::Form(vec![
            ("text".into(), RawInput::Text("hi".into())),
            ("organization_id".into(), RawInput::Text("x".into())),
        ]);
        let request = body.into_request(&definitions()).unwrap();
        assert_eq!(request.inputs.len(), 1);
        assert_eq!(request.organization_id.as_deref(), Some("x"));
    }

    #[test]
    fn blank_bodies_are_empty_objects_and_others_must_be_objects() {
        assert_eq!(parse_json_object(b" \n").unwrap(), Map::new());
        assert!(parse_json_object(b"[1]")
            .unwrap_err()
            .contains("JSON object"));
        assert!(parse_json_object(b"{")
            .unwrap_err()
            .starts_with("Malformed JSON"));
    }

    #[test]
    fn urlencoded_bodies_are_fields_or_json() {
        assert_eq!(
            parse_urlencoded(b"text=a+b&metadata=%7B%7D").unwrap(),
            RunBody::Form(vec![
                ("text".into(), RawInput::Text("a b".into())),
                ("metadata".into(), RawInput::Text("{}".into())),
            ])
        );
        assert_eq!(
            parse_urlencoded(b" {\"text\": \"hi\"}").unwrap(),
            json_body(json!({"text": "hi"}))
        );
    }
}
