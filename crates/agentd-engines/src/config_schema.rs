//! Parts of `config_schema` and `default_config` that the extraction
//! engines describe the same way.

use serde_json::{json, Value};

/// `model`: a model id, or the server default.
pub(crate) fn model_property() -> Value {
    json!({"type": "string", "description": "Model id; the server default when omitted."})
}

/// A file field: one reference or a list (file inputs, URLs or file ids).
pub(crate) fn file_list(description: Option<&str>) -> Value {
    let one_or_more = json!([{"type": "string"}, {"type": "array", "items": {"type": "string"}}]);
    match description {
        Some(description) => json!({"description": description, "anyOf": one_or_more}),
        None => json!({"anyOf": one_or_more}),
    }
}

/// `output_schema`: the JSON Schema of the answer.
pub(crate) fn output_schema_property() -> Value {
    json!({
        "description": "JSON Schema of the answer, as an object or a JSON string.",
        "anyOf": [{"type": "object"}, {"type": "string"}]
    })
}

/// The `output_schema` of a default config: a one-field summary.
pub(crate) fn summary_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"summary": {"type": "string"}},
        "required": ["summary"]
    })
}
