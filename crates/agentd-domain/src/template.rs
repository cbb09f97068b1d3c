//! Template strings in engine configs: `${key}` and `$key` are replaced by the
//! run's inputs. Text inputs interpolate anywhere; a file input must be the
//! whole string, which then becomes the file's id. `$$` is a literal `$`.
//! Placeholders naming no input are left as written (`$USD` stays `$USD`);
//! [`check`] refuses, when an agent version is created, a braced
//! placeholder that names no input, one left open, and a file input that
//! does not stand alone.

use serde_json::Value;

use crate::agent::{InputDefinition, InputKind};
use crate::input::{InputValue, ResolvedInputs};
use crate::FieldErrors;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("file input '{key}' must stand alone in engine_config field '{field}'")]
    FileNotAlone { key: String, field: String },
}

/// Renders every string inside `config`.
pub fn render(config: &Value, inputs: &ResolvedInputs) -> Result<Value, TemplateError> {
    render_at(config, inputs, "")
}

fn render_at(value: &Value, inputs: &ResolvedInputs, path: &str) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(text) => Value::String(render_str(text, inputs, path)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_at(item, inputs, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    Ok((k.clone(), render_at(v, inputs, &child)?))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// A placeholder found in a template string.
struct Placeholder<'a> {
    key: &'a str,
    /// Byte length of the whole placeholder, `$` included.
    len: usize,
}

fn placeholder_at(rest: &str) -> Option<Placeholder<'_>> {
    let after = rest.strip_prefix('$')?;
    if let Some(braced) = after.strip_prefix('{') {
        let end = braced.find('}')?;
        let key = &braced[..end];
        return is_identifier(key).then_some(Placeholder { key, len: end + 3 });
    }
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    let key = &after[..end];
    is_identifier(key).then_some(Placeholder { key, len: end + 1 })
}

pub fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn render_str(text: &str, inputs: &ResolvedInputs, field: &str) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(offset) = text[i..].find('$') {
        let start = i + offset;
        out.push_str(&text[i..start]);
        let rest = &text[start..];
        if rest.starts_with("$$") {
            out.push('$');
            i = start + 2;
            continue;
        }
        match placeholder_at(rest).and_then(|p| inputs.get(p.key).map(|v| (p, v))) {
            Some((placeholder, InputValue::Text(value))) => {
                out.push_str(value);
                i = start + placeholder.len;
            }
            Some((placeholder, InputValue::File(file))) => {
                if placeholder.len != text.len() {
                    return Err(TemplateError::FileNotAlone {
                        key: placeholder.key.to_owned(),
                        field: field.to_owned(),
                    });
                }
                return Ok(file.id.to_string());
            }
            None => {
                out.push('$');
                i = start + 1;
            }
        }
    }
    out.push_str(&text[i..]);
    Ok(out)
}

/// Checks every template string of `config` against the input definitions
/// of its version; errors are keyed `engine_config.<path>`.
pub fn check(config: &Value, definitions: &[InputDefinition]) -> FieldErrors {
    let mut errors = FieldErrors::default();
    visit_strings(config, "engine_config", &mut |path, text| {
        if let Err(message) = check_str(text, definitions) {
            errors.add(path, message);
        }
    });
    errors
}

fn visit_strings(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_strings(item, &format!("{path}[{i}]"), visit);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                visit_strings(item, &format!("{path}.{key}"), visit);
            }
        }
        _ => {}
    }
}

fn check_str(text: &str, definitions: &[InputDefinition]) -> Result<(), String> {
    let mut i = 0;
    while let Some(offset) = text[i..].find('$') {
        let start = i + offset;
        let rest = &text[start..];
        if rest.starts_with("$$") {
            i = start + 2;
            continue;
        }
        if let Some(braced) = rest.strip_prefix("${") {
            let Some(end) = braced.find('}') else {
                return Err(format!(
                    "Unterminated placeholder '{}': close it with '}}', or write '$${{' for a literal '${{'.",
                    shorten(rest)
                ));
            };
            let key = &braced[..end];
            if !is_identifier(key) {
                return Err(format!(
                    "'${{{}}}' is not a placeholder: use ${{input_key}}, or '$$' for a literal '$'.",
                    shorten(key)
                ));
            }
            if !definitions.iter().any(|d| d.key == key) {
                return Err(format!(
                    "'${{{key}}}' names no input. {}",
                    declared_keys(definitions)
                ));
            }
        }
        // A lone `$` and an unbraced `$word` naming no input are literal text.
        let Some(placeholder) = placeholder_at(rest) else {
            i = start + 1;
            continue;
        };
        let file = definitions
            .iter()
            .find(|d| d.key == placeholder.key && d.kind() == InputKind::File);
        if let Some(file) = file.filter(|_| placeholder.len != text.len()) {
            return Err(format!(
                "File input '{}' must stand alone in its field (\"${{{}}}\"), not inside a longer text.",
                file.key, file.key
            ));
        }
        i = start + placeholder.len;
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

fn declared_keys(definitions: &[InputDefinition]) -> String {
    if definitions.is_empty() {
        "This version declares no inputs.".into()
    } else {
        let keys: Vec<&str> = definitions.iter().map(|d| d.key.as_str()).collect();
        format!("Declared inputs: {}.", keys.join(", "))
    }
}

/// The input keys a config refers to, for checks at agent creation.
pub fn referenced_keys(config: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    collect_keys(config, &mut keys);
    keys.sort();
    keys.dedup();
    keys
}

fn collect_keys(value: &Value, keys: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            let mut i = 0;
            while let Some(offset) = text[i..].find('$') {
                let start = i + offset;
                let rest = &text[start..];
                if rest.starts_with("$$") {
                    i = start + 2;
                } else if let Some(p) = placeholder_at(rest) {
                    keys.push(p.key.to_owned());
                    i = start + p.len;
                } else {
                    i = start + 1;
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        Value::Object(map) => map.values().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FileRef;
    use crate::FileId;
    use serde_json::json;

    fn inputs() -> ResolvedInputs {
        let mut inputs = ResolvedInputs::default();
        inputs.insert("text", InputValue::Text("hello".into()));
        inputs.insert("name_2", InputValue::Text("Ada".into()));
        inputs.insert(
            "doc",
            InputValue::File(FileRef {
                id: "00000000-0000-0000-0000-000000000001"
                    .parse::<FileId>()
                    .unwrap(),
                file_name: "a.pdf".into(),
                content_type: "application/pdf".into(),
                size: 4,
                sha256: "x".into(),
            }),
        );
        inputs
    }

    #[test]
    fn both_forms_interpolate() {
        let rendered = render(&json!("${text}, $name_2!"), &inputs()).unwrap();
        assert_eq!(rendered, json!("hello, Ada!"));
    }

    #[test]
    fn braces_delimit_the_key() {
        let rendered = render(&json!("${text}world $textual"), &inputs()).unwrap();
        assert_eq!(rendered, json!("helloworld $textual"));
    }

    #[test]
    fn unknown_placeholders_and_escapes_stay_literal() {
        let rendered = render(&json!("costs $$5 in $USD, ${missing} $ 3"), &inputs()).unwrap();
        assert_eq!(rendered, json!("costs $5 in $USD, ${missing} $ 3"));
    }

    #[test]
    fn nested_values_are_rendered_and_non_strings_kept() {
        let config = json!({"a": ["$text", 3, true], "b": {"c": "x ${name_2}"}});
        let rendered = render(&config, &inputs()).unwrap();
        assert_eq!(
            rendered,
            json!({"a": ["hello", 3, true], "b": {"c": "x Ada"}})
        );
    }

    #[test]
    fn a_file_alone_becomes_its_id() {
        let rendered = render(&json!({"pdf": "${doc}"}), &inputs()).unwrap();
        assert_eq!(
            rendered,
            json!({"pdf": "00000000-0000-0000-0000-000000000001"})
        );
    }

    #[test]
    fn a_file_inside_text_is_an_error_naming_the_field() {
        let err = render(&json!({"x": {"y": "see $doc"}}), &inputs()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::FileNotAlone {
                key: "doc".into(),
                field: "x.y".into()
            }
        );
    }

    #[test]
    fn referenced_keys_are_listed_once() {
        let keys = referenced_keys(&json!({"a": "$text ${text} $$x", "b": ["${doc}"]}));
        assert_eq!(keys, vec!["doc".to_string(), "text".to_string()]);
    }

    fn definitions() -> Vec<InputDefinition> {
        let definition = |key: &str, data_type: &str| InputDefinition {
            key: key.into(),
            data_type: data_type.into(),
            description: String::new(),
            example: None,
            accepts_multiple_files: None,
            default: None,
        };
        vec![
            definition("text", "text/plain"),
            definition("doc", "application/pdf"),
        ]
    }

    fn check_one(value: Value) -> Vec<String> {
        check(&value, &definitions())
            .fields()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect()
    }

    #[test]
    fn valid_templates_pass_the_check() {
        let config =
            json!({"text": "${text} and $text, $USD $$5 $", "pdf": "${doc}", "b": "$doc", "n": 3});
        assert!(check_one(config).is_empty());
    }

    #[test]
    fn unknown_open_and_malformed_placeholders_are_named() {
        let errors = check_one(json!({"a": {"b": "${unknown}"}}));
        assert!(
            errors[0].starts_with("engine_config.a.b: '${unknown}' names no input"),
            "{errors:?}"
        );
        let errors = check_one(json!({"t": "hello ${text"}));
        assert!(errors[0].contains("Unterminated"), "{errors:?}");
        let errors = check_one(json!(["${not valid}"]));
        assert!(errors[0].starts_with("engine_config[0]:"), "{errors:?}");
    }

    #[test]
    fn file_inputs_inside_text_are_refused() {
        for text in ["see ${doc}", "$doc!", " ${doc}"] {
            let errors = check_one(json!({"text": text}));
            assert!(errors[0].contains("must stand alone"), "{text}: {errors:?}");
        }
    }

    #[test]
    fn multibyte_text_survives() {
        let rendered = render(&json!("é $text ü"), &inputs()).unwrap();
        assert_eq!(rendered, json!("é hello ü"));
    }
}
