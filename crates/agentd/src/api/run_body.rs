//! The three body shapes of a run request (flat JSON, `{"inputs": ...}`
//! JSON, multipart form; urlencoded forms too), read into one form.

use agentd_domain::{InputDefinition, RawInput, Upload};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::JsonObject;

/// A run body before it is matched with the agent's input definitions.
pub enum RunBody {
    Json(Map<String, Value>),
    /// Form fields and file parts, in order.
    Form(Vec<(String, RawInput)>),
}

/// A run body matched with the input definitions.
pub struct RunRequest {
    pub inputs: Vec<(String, RawInput)>,
    pub metadata: Value,
    pub organization_id: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for RunBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, state).await.map_err(|r| {
                ApiError::from_rejection(
                    r.status(),
                    format!("Malformed multipart body: {}", r.body_text()),
                )
            })?;
            return read_multipart(multipart).await.map(RunBody::Form);
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = bytes::Bytes::from_request(req, state)
                .await
                .map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
            // `curl -d '{...}'` without a Content-Type header sends JSON as a form.
            if bytes.trim_ascii_start().starts_with(b"{") {
                return JsonObject::parse(&bytes).map(|JsonObject(map)| RunBody::Json(map));
            }
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::bad_request(format!("Malformed form body: {e}")))?;
            return Ok(RunBody::Form(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, RawInput::Text(v)))
                    .collect(),
            ));
        }
        if content_type.is_empty() || content_type.contains("json") {
            let JsonObject(map) = JsonObject::from_request(req, state).await?;
            return Ok(RunBody::Json(map));
        }
        Err(ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type '{content_type}': send application/json or multipart/form-data."
        )))
    }
}

async fn read_multipart(mut multipart: Multipart) -> Result<Vec<(String, RawInput)>, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::from_rejection(
            e.status(),
            format!("Malformed multipart body: {}", e.body_text()),
        )
    };
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(ApiError::bad_request(
                "Malformed multipart body: a part has no name.",
            ));
        };
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.map_err(malformed)?;
        let value =
            match file_name {
                Some(file_name) => RawInput::File(Upload {
                    file_name,
                    content_type,
                    bytes: bytes.to_vec(),
                }),
                None => RawInput::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::bad_request_field(&name, "A text field must be UTF-8.")
                })?),
            };
        fields.push((name, value));
    }
    Ok(fields)
}

fn is_input(definitions: &[InputDefinition], key: &str) -> bool {
    definitions.iter().any(|d| d.key == key)
}

impl RunBody {
    /// Splits the body into inputs, `metadata` and `organization_id`; the
    /// wrapped shape is used when `inputs` is an object and no input is
    /// called `inputs`.
    pub fn into_request(self, definitions: &[InputDefinition]) -> Result<RunRequest, ApiError> {
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
        match self {
            RunBody::Json(mut map) => {
                let wrapped = matches!(map.get("inputs"), Some(Value::Object(_)))
                    && !is_input(definitions, "inputs");
                let fields = if wrapped {
                    let Some(Value::Object(inner)) = map.remove("inputs") else {
                        unreachable!("checked above")
                    };
                    for (key, value) in map {
                        take_reserved(&key, json_input(value));
                    }
                    inner
                } else {
                    map
                };
                for (key, value) in fields {
                    if let Some(value) = take_reserved(&key, json_input(value)) {
                        inputs.push((key, value));
                    }
                }
            }
            RunBody::Form(fields) => {
                for (key, value) in fields {
                    if let Some(value) = take_reserved(&key, value) {
                        inputs.push((key, value));
                    }
                }
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

fn json_input(value: Value) -> RawInput {
    match value {
        Value::String(text) => RawInput::Text(text),
        other => RawInput::Json(other),
    }
}

/// `metadata` may be an object, a JSON-encoded object, null or absent.
fn parse_metadata(raw: Option<RawInput>) -> Result<Value, ApiError> {
    let invalid = || {
        ApiError::bad_request_field(
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
    fn metadata_must_be_an_object() {
        let body = json_body(json!({"text": "hi", "metadata": "[1]"}));
        assert!(body.into_request(&definitions()).is_err());
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
}
