//! The JSON Schema an extraction must satisfy.

use serde_json::Value;

/// A checked `output_schema`: a JSON object that compiles as a JSON Schema.
/// Engine configs may carry it as an object or as a JSON-encoded string.
/// The compiled validator is kept, so answers are checked without compiling
/// the schema again.
#[derive(Clone)]
pub struct OutputSchema {
    schema: Value,
    validator: std::sync::Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OutputSchema").field(&self.schema).finish()
    }
}

impl PartialEq for OutputSchema {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
    }
}

impl OutputSchema {
    pub fn parse(raw: &Value) -> Result<Self, String> {
        let schema = match raw {
            Value::Object(_) => raw.clone(),
            Value::String(text) => serde_json::from_str::<Value>(text)
                .map_err(|e| format!("output_schema is not valid JSON: {e}"))?,
            _ => return Err("output_schema must be a JSON Schema object".into()),
        };
        if !schema.is_object() {
            return Err("output_schema must be a JSON Schema object".into());
        }
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("output_schema is not a valid JSON Schema: {e}"))?;
        Ok(Self {
            schema,
            validator: std::sync::Arc::new(validator),
        })
    }

    pub fn as_value(&self) -> &Value {
        &self.schema
    }

    /// Validates an answer; the errors name the path at fault.
    pub fn validate(&self, instance: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(instance)
            .map(|error| {
                let path = error.instance_path().to_string();
                if path.is_empty() {
                    error.to_string()
                } else {
                    format!("{path}: {error}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Parses a model's text answer and validates it.
    pub fn check_answer(&self, text: &str) -> Result<Value, String> {
        let value: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("the answer is not valid JSON: {e}"))?;
        self.validate(&value).map_err(|errors| {
            format!(
                "the answer does not match output_schema: {}",
                errors.join("; ")
            )
        })?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> OutputSchema {
        OutputSchema::parse(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}}
            },
            "required": ["name"]
        }))
        .unwrap()
    }

    #[test]
    fn accepts_objects_and_json_strings() {
        assert!(OutputSchema::parse(&json!("{\"type\": \"object\"}")).is_ok());
        assert!(OutputSchema::parse(&json!("not json")).is_err());
        assert!(OutputSchema::parse(&json!(42)).is_err());
    }

    #[test]
    fn rejects_invalid_schemas() {
        let err = OutputSchema::parse(&json!({"type": "objekt"})).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }

    #[test]
    fn valid_answers_pass() {
        let value = schema().check_answer(r#"{"name": "Ada", "age": 36, "tags": ["a"]}"#);
        assert_eq!(value.unwrap()["name"], "Ada");
    }

    #[test]
    fn invalid_answers_name_the_path() {
        let err = schema()
            .check_answer(r#"{"age": -1, "tags": ["c"]}"#)
            .unwrap_err();
        assert!(err.contains("\"name\" is a required property"), "{err}");
        assert!(err.contains("/age"), "{err}");
        assert!(err.contains("/tags/0"), "{err}");
    }

    #[test]
    fn non_json_answers_are_reported() {
        let err = schema().check_answer("```json\n{}\n```").unwrap_err();
        assert!(err.starts_with("the answer is not valid JSON"), "{err}");
    }
}

/// Validates `instance` against `schema` and keys each error by the field at
/// fault, below `root` (`engine_config.instruction`, ...).
pub fn field_errors(schema: &Value, instance: &Value, root: &str) -> crate::FieldErrors {
    let mut errors = crate::FieldErrors::default();
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => {
            errors.add(root, e.to_string());
            return errors;
        }
    };
    for error in validator.iter_errors(instance) {
        let mut field = root.to_owned();
        for segment in error
            .instance_path()
            .to_string()
            .split('/')
            .filter(|s| !s.is_empty())
        {
            field.push('.');
            field.push_str(segment);
        }
        if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind() {
            if let Some(name) = property.as_str() {
                field.push('.');
                field.push_str(name);
                errors.add(field, "This field is required.");
                continue;
            }
        }
        errors.add(field, error.to_string());
    }
    errors
}

#[cfg(test)]
mod field_error_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_are_keyed_by_field() {
        let schema = json!({
            "type": "object",
            "properties": {"model": {"type": "string"}},
            "required": ["instruction"]
        });
        let errors = field_errors(&schema, &json!({"model": 3}), "engine_config");
        let fields: Vec<&String> = errors.fields().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            vec!["engine_config.instruction", "engine_config.model"]
        );
    }
}
