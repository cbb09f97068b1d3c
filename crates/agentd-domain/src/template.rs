//! Template strings in engine configs: `${key}` and `$key` are replaced by the
//! run's inputs. Text inputs interpolate anywhere. A file input in one of the
//! engine's *file fields* (images, PDFs) must be the whole string, which then
//! becomes the file's id; anywhere else it stands for the file's text, read
//! before rendering (see `files_used_as_text`). `$$` is a literal `$`.
//! Placeholders naming no input are left as written (`$USD` stays `$USD`).

use std::collections::HashMap;

use serde_json::Value;

use crate::agent::{InputDefinition, InputKind};
use crate::input::{InputValue, ResolvedInputs};
use crate::FieldErrors;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("file input '{key}' must stand alone in engine_config field '{field}'")]
    FileNotAlone { key: String, field: String },
    /// The caller did not read a file used as text (a bug, not the user's).
    #[error("file input '{key}' in engine_config field '{field}' was not read as text")]
    FileNotRead { key: String, field: String },
}

/// How file inputs are rendered: ids in the engine's file fields, text
/// everywhere else.
#[derive(Clone, Copy, Debug)]
pub struct Files<'a> {
    /// Top-level `engine_config` keys whose values are files (ids).
    pub fields: &'a [&'a str],
    /// The text of each file input used outside those fields, by input key.
    pub texts: &'a HashMap<String, String>,
}

/// Whether `path` (`images[0]`, `a.b`) lies under one of `fields`.
fn is_file_field(path: &str, fields: &[&str]) -> bool {
    let top = path.split(['.', '[']).next().unwrap_or(path);
    fields.contains(&top)
}

/// The path prefix `visit_strings` starts from.
const ROOT: &str = "engine_config";

/// `engine_config.a.b` → `a.b`.
fn field_of(path: &str) -> &str {
    path.strip_prefix(ROOT)
        .map(|rest| rest.strip_prefix('.').unwrap_or(rest))
        .unwrap_or(path)
}

/// A file input placed where the engine expects text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAsText {
    pub key: String,
    /// The `engine_config` field, e.g. `text` or `a.b[0]`.
    pub field: String,
}

/// The file inputs (`is_file_input`) that `config` uses outside the engine's
/// file fields, each once, with the first field it appears in.
pub fn files_used_as_text(
    config: &Value,
    is_file_input: &dyn Fn(&str) -> bool,
    file_fields: &[&str],
) -> Vec<FileAsText> {
    let mut found: Vec<FileAsText> = Vec::new();
    visit_strings(config, ROOT, &mut |path, text| {
        let path = field_of(path);
        if is_file_field(path, file_fields) {
            return;
        }
        for key in placeholders(text) {
            if is_file_input(&key) && !found.iter().any(|f| f.key == key) {
                found.push(FileAsText {
                    key,
                    field: path.to_owned(),
                });
            }
        }
    });
    found
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Renders every string inside `config`.
pub fn render(
    config: &Value,
    inputs: &ResolvedInputs,
    files: Files<'_>,
) -> Result<Value, TemplateError> {
    render_at(config, inputs, files, "")
}

fn render_at(
    value: &Value,
    inputs: &ResolvedInputs,
    files: Files<'_>,
    path: &str,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(text) => Value::String(render_str(text, inputs, files, path)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_at(item, inputs, files, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        render_at(v, inputs, files, &child_path(path, k))?,
                    ))
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

fn render_str(
    text: &str,
    inputs: &ResolvedInputs,
    files: Files<'_>,
    field: &str,
) -> Result<String, TemplateError> {
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
            Some((placeholder, InputValue::File(_))) if !is_file_field(field, files.fields) => {
                let content =
                    files
                        .texts
                        .get(placeholder.key)
                        .ok_or_else(|| TemplateError::FileNotRead {
                            key: placeholder.key.to_owned(),
                            field: field.to_owned(),
                        })?;
                out.push_str(content);
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
///
/// A file input must stand alone only in the engine's `file_fields`
/// (elsewhere it stands for its text, which may sit inside a longer text).
pub fn check(config: &Value, definitions: &[InputDefinition], file_fields: &[&str]) -> FieldErrors {
    let mut errors = FieldErrors::default();
    visit_strings(config, ROOT, &mut |path, text| {
        let in_file_field = is_file_field(field_of(path), file_fields);
        if let Err(message) = check_str(text, definitions, in_file_field) {
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

fn check_str(
    text: &str,
    definitions: &[InputDefinition],
    in_file_field: bool,
) -> Result<(), String> {
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
        if let Some(file) = file.filter(|_| in_file_field && placeholder.len != text.len()) {
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
    visit_strings(value, "", &mut |_, text| keys.extend(placeholders(text)));
}

/// The keys of the placeholders in one template string, in order.
fn placeholders(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
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
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FileRef;
    use crate::FileId;
    use serde_json::json;

    const FILE_FIELDS: &[&str] = &["pdf", "images"];

    fn render(config: &Value, inputs: &ResolvedInputs) -> Result<Value, TemplateError> {
        let texts = HashMap::from([("doc".to_string(), "page one".to_string())]);
        super::render(
            config,
            inputs,
            Files {
                fields: FILE_FIELDS,
                texts: &texts,
            },
        )
    }

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
    fn a_file_inside_a_file_field_must_stand_alone() {
        let err = render(&json!({"images": ["see $doc"]}), &inputs()).unwrap_err();
        assert_eq!(
            err,
            TemplateError::FileNotAlone {
                key: "doc".into(),
                field: "images[0]".into()
            }
        );
    }

    #[test]
    fn a_file_in_a_text_field_becomes_its_text() {
        let rendered = render(&json!({"x": {"y": "see: $doc"}, "t": "${doc}"}), &inputs()).unwrap();
        assert_eq!(
            rendered,
            json!({"x": {"y": "see: page one"}, "t": "page one"})
        );
    }

    #[test]
    fn a_file_not_read_is_an_error_not_its_id() {
        let texts = HashMap::new();
        let files = Files {
            fields: FILE_FIELDS,
            texts: &texts,
        };
        let err = super::render(&json!({"text": "${doc}"}), &inputs(), files).unwrap_err();
        assert_eq!(
            err,
            TemplateError::FileNotRead {
                key: "doc".into(),
                field: "text".into()
            }
        );
    }

    #[test]
    fn files_used_as_text_skip_file_fields() {
        let config = json!({"pdf": "${doc}", "text": "$text and ${doc}", "more": ["$doc"], "images": ["$img"]});
        let is_file = |key: &str| key == "doc" || key == "img";
        assert_eq!(
            files_used_as_text(&config, &is_file, FILE_FIELDS),
            vec![FileAsText {
                key: "doc".into(),
                field: "text".into()
            }]
        );
    }

    #[test]
    fn referenced_keys_are_listed_once() {
        let keys = referenced_keys(&json!({"a": "$text ${text} $$x", "b": ["${doc}"]}));
        assert_eq!(keys, vec!["doc".to_string(), "text".to_string()]);
    }

    fn definitions() -> Vec<InputDefinition> {
        vec![
            InputDefinition::new("text", "text/plain"),
            InputDefinition::new("doc", "application/pdf"),
        ]
    }

    fn check_one(value: Value) -> Vec<String> {
        check(&value, &definitions(), FILE_FIELDS)
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
    fn file_inputs_inside_text_are_refused_in_file_fields_only() {
        for text in ["see ${doc}", "$doc!", " ${doc}"] {
            let errors = check_one(json!({"images": [text]}));
            assert!(errors[0].contains("must stand alone"), "{text}: {errors:?}");
            // In a text field the file stands for its text.
            assert!(check_one(json!({"text": text})).is_empty(), "{text}");
        }
    }

    #[test]
    fn multibyte_text_survives() {
        let rendered = render(&json!("é $text ü"), &inputs()).unwrap();
        assert_eq!(rendered, json!("é hello ü"));
    }
}
