//! Templates in engine configs. The input is `CONFIG` or `CONFIG\0INPUTS`:
//! CONFIG is a JSON config (or, when it is no JSON, one template string),
//! INPUTS one input per line, `key=text` or `@key=file-id` (32 hex digits
//! or a UUID). Checks the rules of `agentd_domain::template`: `$$` is a
//! literal `$`, strings without placeholders of given inputs are kept, a
//! file stands alone in a file field and becomes its text elsewhere,
//! `referenced_keys` lists exactly the placeholders, and a config that
//! passes `check` renders.
#![no_main]

use std::collections::HashMap;

use agentd_domain::input::{FileRef, InputValue, ResolvedInputs};
use agentd_domain::template::{self, check, referenced_keys, Files, TemplateError};
use agentd_domain::{FileId, InputDefinition};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The engine fields whose values are files, as in the engines.
const FILE_FIELDS: &[&str] = &["images", "pdf_files", "pdf_file"];

/// The text a file input stands for outside the file fields.
fn text_of(key: &str) -> String {
    format!("text of {key}")
}

fn render(config: &Value, inputs: &ResolvedInputs) -> Result<Value, TemplateError> {
    let texts: HashMap<String, String> = inputs
        .iter()
        .filter(|(_, value)| matches!(value, InputValue::File(_)))
        .map(|(key, _)| (key.clone(), text_of(key)))
        .collect();
    template::render(
        config,
        inputs,
        Files {
            fields: FILE_FIELDS,
            texts: &texts,
        },
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (config_text, inputs_text) = text.split_once('\0').unwrap_or((&text, ""));
    let config = serde_json::from_str::<Value>(config_text)
        .unwrap_or_else(|_| Value::String(config_text.to_owned()));
    let inputs = parse_inputs(inputs_text);

    let keys = referenced_keys(&config);
    assert_keys_are_placeholders(&config, &keys);

    // With no inputs, only `$$` changes.
    let unescaped = map_strings(&config, &|s| s.replace("$$", "$"));
    assert_eq!(
        render(&config, &ResolvedInputs::default()),
        Ok(unescaped.clone())
    );
    // Escaping every `$` gives back the text, whatever the inputs.
    let escaped = map_strings(&config, &|s| s.replace('$', "$$"));
    assert_eq!(render(&escaped, &inputs), Ok(config.clone()));

    match render(&config, &inputs) {
        Ok(rendered) => {
            assert_same_shape(&config, &rendered);
            if keys.iter().all(|key| inputs.get(key).is_none()) {
                assert_eq!(rendered, unescaped, "no input is referenced");
            }
        }
        Err(TemplateError::FileNotAlone { key, field }) => {
            assert!(matches!(inputs.get(&key), Some(InputValue::File(_))));
            assert!(keys.contains(&key));
            let top = field.split(['.', '[']).next().unwrap_or_default();
            assert!(FILE_FIELDS.contains(&top), "{field} is not a file field");
        }
        Err(TemplateError::FileNotRead { key, .. }) => {
            panic!("file input {key} has a text, yet was not read")
        }
    }

    // A config that passes the check at version creation renders with any
    // inputs of the declared kinds.
    let definitions = definitions_of(&inputs);
    let errors = check(&config, &definitions, FILE_FIELDS);
    if errors.is_empty() {
        // `inputs.get` takes a key's first value, as `definitions_of` does.
        assert!(
            render(&config, &inputs).is_ok(),
            "checked config fails to render"
        );
    }
    for (field, messages) in errors.fields() {
        assert!(field.starts_with("engine_config"), "{field}");
        assert!(messages.iter().all(|m| !m.is_empty()));
    }

    // Each input alone, in both spellings, becomes its value (a file, in a
    // text field, its text).
    for (key, value) in inputs.iter() {
        if inputs.get(key) != Some(value) || !keys_of(&format!("${{{key}}}")).contains(key) {
            continue; // a repeated or non-identifier key
        }
        let expected = match value {
            InputValue::Text(text) => text.clone(),
            InputValue::File(_) => text_of(key),
        };
        for template in [format!("${{{key}}}"), format!("${key}")] {
            assert_eq!(
                render(&Value::String(template), &inputs),
                Ok(Value::String(expected.clone()))
            );
        }
    }
});

fn parse_inputs(text: &str) -> ResolvedInputs {
    let mut inputs = ResolvedInputs::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.strip_prefix('@') {
            Some(file_key) => {
                if let Ok(id) = value.parse::<FileId>() {
                    inputs.insert(file_key, InputValue::File(file(id)));
                }
            }
            None => inputs.insert(key, InputValue::Text(value.to_owned())),
        }
    }
    inputs
}

/// The definitions the inputs answer: the first value of a key decides
/// whether it is a text or a file input.
fn definitions_of(inputs: &ResolvedInputs) -> Vec<InputDefinition> {
    let mut definitions: Vec<InputDefinition> = Vec::new();
    for (key, value) in inputs.iter() {
        if definitions.iter().any(|d| &d.key == key) {
            continue;
        }
        let data_type = match value {
            InputValue::Text(_) => "text/plain",
            InputValue::File(_) => "application/pdf",
        };
        definitions.push(InputDefinition {
            key: key.clone(),
            data_type: data_type.into(),
            description: String::new(),
            example: None,
            accepts_multiple_files: None,
            default: None,
        });
    }
    definitions
}

fn file(id: FileId) -> FileRef {
    FileRef {
        id,
        file_name: "a.pdf".into(),
        content_type: "application/pdf".into(),
        size: 0,
        sha256: String::new(),
    }
}

fn keys_of(template: &str) -> Vec<String> {
    referenced_keys(&Value::String(template.to_owned()))
}

/// Keys are sorted, unique identifiers, each written in some string.
fn assert_keys_are_placeholders(config: &Value, keys: &[String]) {
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    let mut strings = Vec::new();
    collect_strings(config, &mut strings);
    for key in keys {
        let mut chars = key.chars();
        assert!(matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_'));
        assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert!(
            strings
                .iter()
                .any(|s| s.contains(&format!("${key}")) || s.contains(&format!("${{{key}}}"))),
            "key {key:?} is not written in the config"
        );
    }
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn map_strings(value: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), map_strings(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Rendering changes strings only: same keys, same lengths, same leaves.
fn assert_same_shape(before: &Value, after: &Value) {
    match (before, after) {
        (Value::String(_), Value::String(_)) => {}
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).for_each(|(x, y)| assert_same_shape(x, y));
        }
        (Value::Object(a), Value::Object(b)) => {
            assert!(a.keys().eq(b.keys()));
            a.values()
                .zip(b.values())
                .for_each(|(x, y)| assert_same_shape(x, y));
        }
        (a, b) => assert_eq!(a, b),
    }
}
