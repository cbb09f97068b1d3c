//! JSON Schema → llguidance constraint.

use std::sync::OnceLock;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

/// How the grammar lets the model lay out its JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonLayout {
    /// Up to [`MAX_BLANK_RUN`] spaces, tabs and newlines between tokens, as
    /// a model writes JSON it was trained on (`{\n  "name": ...`). Forced
    /// compact, a small model often fails to close a string and runs on
    /// until `maxLength` or the token cap cuts it.
    #[default]
    Flexible,
    /// No whitespace at all.
    Compact,
}

/// Whitespace characters allowed between two JSON tokens: enough for a
/// newline and indentation a few levels deep, not enough to loop on blanks.
pub const MAX_BLANK_RUN: usize = 20;

/// Compiles schemas against one tokenizer. Built once per model: the factory
/// precomputes token slices over the whole vocabulary.
pub(crate) struct GrammarCompiler {
    factory: ParserFactory,
    layout: JsonLayout,
}

impl GrammarCompiler {
    pub(crate) fn new(tok_env: &TokEnv, layout: JsonLayout) -> Result<Self, String> {
        let mut factory = ParserFactory::new_simple(tok_env).map_err(|e| e.to_string())?;
        // llguidance prints grammar warnings to stderr by default; errors
        // reach the caller through the matcher instead.
        factory.quiet();
        Ok(Self { factory, layout })
    }

    /// A fresh matcher for one answer, or why the schema cannot be enforced.
    pub(crate) fn matcher(&self, schema: &Value) -> Result<Matcher, String> {
        let grammar = TopLevelGrammar::from_json_schema(for_decoding(schema, self.layout));
        let matcher = Matcher::new(self.factory.create_parser(grammar));
        match matcher.get_error() {
            Some(error) => Err(error),
            None => Ok(matcher),
        }
    }
}

/// Compiles `schema` the way the local provider would and reports what
/// llguidance cannot enforce (unsupported keywords, unsatisfiable or invalid
/// schemas), so that an agent using the local model can be refused up front.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    static COMPILER: OnceLock<Result<GrammarCompiler, String>> = OnceLock::new();
    // A byte-level tokenizer accepts exactly the same languages as the real
    // one, so the check needs no model.
    let compiler = COMPILER
        .get_or_init(|| {
            GrammarCompiler::new(&ApproximateTokEnv::single_byte_env(), JsonLayout::default())
        })
        .as_ref()?;
    compiler.matcher(schema).map(drop)
}

/// The schema the grammar enforces: `schema` with closed objects and the
/// layout asked for. Every answer valid under it is valid under `schema`.
fn for_decoding(schema: &Value, layout: JsonLayout) -> Value {
    let mut schema = schema.clone();
    if !COMBINING.iter().any(|k| mentions(&schema, k)) {
        close_objects(&mut schema);
    }
    with_layout(&mut schema, layout);
    schema
}

/// Keywords that apply several subschemas to one object: each may list only
/// part of its properties, so closing them would reject the others' keys.
const COMBINING: [&str; 3] = ["allOf", "dependentSchemas", "if"];

/// Forbids properties a schema does not list where it says nothing about
/// them. A small model that may add keys copies the schema's own keywords
/// (`"required": ...`) into its answer, or repeats keys until the token cap.
/// It only recurses where a stricter subschema means a stricter whole (not
/// under `not` or `oneOf`), and is not used with the `COMBINING` keywords.
fn close_objects(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    let open_by_default = map.contains_key("properties")
        && !map.contains_key("$ref")
        && ![
            "additionalProperties",
            "patternProperties",
            "unevaluatedProperties",
        ]
        .iter()
        .any(|k| map.contains_key(*k));
    if open_by_default && lists_every_required_key(map) {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (keyword, value) in map.iter_mut() {
        match value {
            Value::Object(schemas) if holds_named_schemas(keyword) => {
                schemas.values_mut().for_each(close_objects);
            }
            Value::Array(schemas) if holds_schema_list(keyword) => {
                schemas.iter_mut().for_each(close_objects);
            }
            value if holds_schema(keyword) => close_objects(value),
            _ => {}
        }
    }
}

/// Closing an object whose `required` names a key it does not list would
/// make it unsatisfiable.
fn lists_every_required_key(map: &serde_json::Map<String, Value>) -> bool {
    let Some(Value::Array(required)) = map.get("required") else {
        return true;
    };
    let properties = map.get("properties").and_then(Value::as_object);
    required.iter().all(|key| {
        key.as_str()
            .is_some_and(|key| properties.is_some_and(|p| p.contains_key(key)))
    })
}

fn holds_named_schemas(keyword: &str) -> bool {
    matches!(
        keyword,
        "properties" | "patternProperties" | "$defs" | "definitions"
    )
}

fn holds_schema_list(keyword: &str) -> bool {
    matches!(keyword, "anyOf" | "prefixItems" | "items")
}

fn holds_schema(keyword: &str) -> bool {
    matches!(
        keyword,
        "items" | "additionalProperties" | "additionalItems" | "unevaluatedItems" | "contains"
    )
}

/// Whether `key` is a key anywhere in `value`.
fn mentions(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| mentions(v, key)),
        Value::Array(items) => items.iter().any(|v| mentions(v, key)),
        _ => false,
    }
}

/// Sets llguidance's JSON layout options unless the schema sets its own.
/// Whitespace is bounded per gap: a small model left free to indent can
/// otherwise emit blanks until it hits the token cap.
fn with_layout(schema: &mut Value, layout: JsonLayout) {
    if let Value::Object(map) = schema {
        map.entry("x-guidance").or_insert_with(|| match layout {
            JsonLayout::Compact => json!({
                "whitespace_flexible": false,
                "item_separator": ",",
                "key_separator": ":",
            }),
            JsonLayout::Flexible => json!({
                "whitespace_flexible": false,
                "whitespace_pattern": format!("[\\x20\\x0A\\x0D\\x09]{{1,{MAX_BLANK_RUN}}}"),
                "item_separator": ",",
                "key_separator": ":",
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_schemas() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "full name"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
            },
            "required": ["name"],
            "additionalProperties": false,
        });
        assert_eq!(check_schema(&schema), Ok(()));
    }

    #[test]
    fn reports_what_it_cannot_express() {
        let schema = json!({
            "type": "object",
            "properties": {"x": {"type": "string"}},
            "dependentSchemas": {"x": {"required": ["y"]}},
        });
        let error = check_schema(&schema).unwrap_err();
        assert!(error.contains("dependentSchemas"), "{error}");
    }

    /// Whether `text` is a complete answer under `schema` in `layout`.
    fn accepts(layout: JsonLayout, schema: &Value, text: &str) -> bool {
        let env = ApproximateTokEnv::single_byte_env();
        let compiler = GrammarCompiler::new(&env, layout).unwrap();
        let mut matcher = compiler.matcher(schema).unwrap();
        let tokens = env.tokenize_bytes(text.as_bytes());
        matcher.try_consume_tokens(&tokens).ok() == Some(tokens.len())
            && matcher.is_accepting().unwrap_or(false)
    }

    #[test]
    fn flexible_layout_allows_bounded_whitespace() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}},
            "required": ["a", "b"],
        });
        let pretty = "{\n  \"a\": 1,\n  \"b\": [\"x\", \"y\"]\n}";
        let compact = r#"{"a":1,"b":["x","y"]}"#;
        let too_blank = format!("{{{}\"a\":1,\"b\":[]}}", " ".repeat(MAX_BLANK_RUN + 1));
        assert!(accepts(JsonLayout::Flexible, &schema, pretty));
        assert!(accepts(JsonLayout::Flexible, &schema, compact));
        assert!(!accepts(JsonLayout::Flexible, &schema, &too_blank));
        assert!(accepts(JsonLayout::Compact, &schema, compact));
        assert!(!accepts(JsonLayout::Compact, &schema, pretty));
    }

    #[test]
    fn reports_unsatisfiable_schemas() {
        let schema = json!({"type": "integer", "minimum": 5, "maximum": 1});
        assert!(check_schema(&schema).is_err());
    }

    #[test]
    fn keeps_a_caller_layout() {
        let schema = json!({"type": "object", "x-guidance": {"whitespace_flexible": true}});
        for layout in [JsonLayout::Compact, JsonLayout::Flexible] {
            let mut decoded = schema.clone();
            with_layout(&mut decoded, layout);
            assert_eq!(decoded, schema);
        }
    }

    #[test]
    fn closes_objects_that_say_nothing_about_extra_keys() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"b": {"type": "string"}}},
                "c": {"type": "object", "properties": {}, "additionalProperties": true},
                "d": {"enum": [{"properties": 1}]},
                "properties": {"type": "object", "properties": {"x": {"type": "integer"}}},
                "list": {"type": "array", "items": {"properties": {"y": {}}}},
            },
        });
        let decoded = for_decoding(&schema, JsonLayout::Flexible);
        assert_eq!(decoded["additionalProperties"], json!(false));
        assert_eq!(
            decoded["properties"]["a"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(
            decoded["properties"]["c"]["additionalProperties"],
            json!(true)
        );
        assert_eq!(
            decoded["properties"]["d"],
            json!({"enum": [{"properties": 1}]})
        );
        let named_properties = &decoded["properties"]["properties"];
        assert_eq!(named_properties["additionalProperties"], json!(false));
        assert!(named_properties["properties"]
            .get("additionalProperties")
            .is_none());
        assert_eq!(
            decoded["properties"]["list"]["items"]["additionalProperties"],
            json!(false)
        );
    }

    #[test]
    fn leaves_objects_requiring_unlisted_keys_open() {
        let schema = json!({"properties": {"a": {}}, "required": ["a", "b"]});
        assert!(for_decoding(&schema, JsonLayout::Flexible)
            .get("additionalProperties")
            .is_none());
        assert_eq!(check_schema(&schema), Ok(()));
    }

    #[test]
    fn leaves_all_of_alone() {
        let schema = json!({
            "allOf": [
                {"properties": {"a": {"type": "string"}}},
                {"properties": {"b": {"type": "string"}}},
            ],
        });
        assert!(for_decoding(&schema, JsonLayout::Flexible)["allOf"][0]
            .get("additionalProperties")
            .is_none());
    }
}
