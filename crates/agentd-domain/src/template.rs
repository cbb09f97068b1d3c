//! Template strings in engine configs: `${key}` and `$key` are replaced by the
//! run's inputs. Text inputs interpolate anywhere; a file input must be the
//! whole string, which then becomes the file's id. `$$` is a literal `$`.
//! Placeholders naming no input are left as written (`$USD` stays `$USD`).

use serde_json::Value;

use crate::input::{InputValue, ResolvedInputs};

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

fn is_identifier(key: &str) -> bool {
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

    #[test]
    fn multibyte_text_survives() {
        let rendered = render(&json!("é $text ü"), &inputs()).unwrap();
        assert_eq!(rendered, json!("é hello ü"));
    }
}
