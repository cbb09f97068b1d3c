//! OpenAI's strict structured outputs accept only closed objects whose
//! properties are all required. Users write looser schemas, so optional
//! properties are sent as nullable and the nulls the model then gives for
//! them are removed from the answer, which is validated against the user's
//! own schema afterwards.

use serde_json::{json, Map, Value};

fn is_object_schema(schema: &Map<String, Value>) -> bool {
    schema.contains_key("properties")
        || match schema.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
            _ => false,
        }
}

fn required_names(schema: &Map<String, Value>) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn allows_null(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => ["anyOf", "oneOf"].iter().any(|k| {
            schema
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|options| options.iter().any(allows_null))
        }),
    }
}

fn nullable(schema: Value) -> Value {
    if allows_null(&schema) {
        return schema;
    }
    match schema {
        Value::Object(mut map) => match map.get("type").cloned() {
            Some(Value::String(t)) if !map.contains_key("enum") => {
                map.insert("type".into(), json!([t, "null"]));
                Value::Object(map)
            }
            Some(Value::Array(mut types)) if !map.contains_key("enum") => {
                types.push(json!("null"));
                map.insert("type".into(), Value::Array(types));
                Value::Object(map)
            }
            _ => json!({"anyOf": [Value::Object(map), {"type": "null"}]}),
        },
        other => other,
    }
}

/// The schema in the form strict mode accepts.
pub fn to_strict(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "items" | "additionalItems" | "not" => to_strict(value),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => match value {
                Value::Array(options) => Value::Array(options.iter().map(to_strict).collect()),
                other => other.clone(),
            },
            "$defs" | "definitions" => match value {
                Value::Object(defs) => Value::Object(
                    defs.iter()
                        .map(|(k, v)| (k.clone(), to_strict(v)))
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if is_object_schema(map) {
        let required = required_names(map);
        let properties = map
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let strict_properties: Map<String, Value> = properties
            .iter()
            .map(|(name, property)| {
                let strict = to_strict(property);
                let strict = if required.contains(name) {
                    strict
                } else {
                    nullable(strict)
                };
                (name.clone(), strict)
            })
            .collect();
        out.insert(
            "required".into(),
            Value::Array(properties.keys().map(|k| json!(k)).collect()),
        );
        out.insert("properties".into(), Value::Object(strict_properties));
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// Removes nulls that strict mode forced on properties the original schema
/// neither required nor allowed to be null.
pub fn drop_optional_nulls(original: &Value, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let Some(schema) = original.as_object() else {
                return;
            };
            let required = required_names(schema);
            let properties = schema.get("properties").and_then(Value::as_object);
            fields.retain(|name, field| {
                let property = properties.and_then(|p| p.get(name));
                !(field.is_null() && !required.contains(name) && !property.is_some_and(allows_null))
            });
            if let Some(properties) = properties {
                for (name, field) in fields.iter_mut() {
                    if let Some(property) = properties.get(name) {
                        drop_optional_nulls(property, field);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = original.get("items") {
                for item in items {
                    drop_optional_nulls(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loose() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "kind": {"enum": ["a", "b"]},
                "seller": {"type": "object", "properties": {"id": {"type": "string"}}},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"t": {"type": "string"}}}}
            },
            "required": ["name"]
        })
    }

    #[test]
    fn objects_are_closed_and_optional_properties_nullable() {
        let strict = to_strict(&loose());
        assert_eq!(strict["additionalProperties"], false);
        assert_eq!(
            strict["required"],
            json!(["name", "age", "kind", "seller", "tags"])
        );
        assert_eq!(strict["properties"]["name"]["type"], "string");
        assert_eq!(
            strict["properties"]["age"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(
            strict["properties"]["kind"]["anyOf"][1],
            json!({"type": "null"})
        );
        assert_eq!(
            strict["properties"]["seller"]["type"],
            json!(["object", "null"])
        );
        assert_eq!(
            strict["properties"]["seller"]["additionalProperties"],
            false
        );
        assert_eq!(
            strict["properties"]["tags"]["items"]["additionalProperties"],
            false
        );
    }

    #[test]
    fn forced_nulls_are_dropped_again() {
        let mut answer =
            json!({"name": "x", "age": null, "seller": {"id": null}, "tags": [{"t": null}]});
        drop_optional_nulls(&loose(), &mut answer);
        assert_eq!(answer, json!({"name": "x", "seller": {}, "tags": [{}]}));
    }

    #[test]
    fn nulls_the_schema_allows_are_kept() {
        let schema = json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}}});
        let mut answer = json!({"a": null});
        drop_optional_nulls(&schema, &mut answer);
        assert_eq!(answer, json!({"a": null}));
    }
}
