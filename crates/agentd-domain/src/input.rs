//! Run inputs: what a request carried, checked against the agent version's
//! input definitions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{InputDefinition, InputKind};
use crate::ids::FileId;
use crate::FieldErrors;

/// An input value as it arrived, before it is checked.
#[derive(Clone, Debug, PartialEq)]
pub enum RawInput {
    /// A form field, or a JSON string.
    Text(String),
    /// Any other JSON value (number, bool, object, array).
    Json(Value),
    /// A file part of a multipart body.
    File(Upload),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Where a file input's content comes from, once the request is checked.
#[derive(Clone, Debug, PartialEq)]
pub enum FileSource {
    Upload(Upload),
    /// An `http(s)` URL to fetch.
    Url(String),
    /// The id of a file stored earlier.
    StoredFile(FileId),
}

/// A checked input, before files are stored.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckedInput {
    Text(String),
    File(FileSource),
}

/// A file known to agentd's file store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    pub id: FileId,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

/// The value an engine sees for an input.
#[derive(Clone, Debug, PartialEq)]
pub enum InputValue {
    Text(String),
    File(FileRef),
}

/// Inputs of one run, in definition order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedInputs(Vec<(String, InputValue)>);

impl ResolvedInputs {
    pub fn insert(&mut self, key: impl Into<String>, value: InputValue) {
        self.0.push((key.into(), value));
    }

    pub fn get(&self, key: &str) -> Option<&InputValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &InputValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub FieldErrors);

/// Checks the raw inputs of a request against the definitions: every
/// definition is present or has a default, no key is unknown, and each value
/// has the right kind. Returns the inputs in definition order.
pub fn check_inputs(
    definitions: &[InputDefinition],
    raw: Vec<(String, RawInput)>,
) -> Result<Vec<(InputDefinition, CheckedInput)>, InputError> {
    let mut errors = FieldErrors::default();
    let mut given: Vec<(String, RawInput)> = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        if !definitions.iter().any(|d| d.key == key) {
            errors.add(
                key.clone(),
                format!("Unknown input '{key}'. {}", expected_keys(definitions)),
            );
        } else if given.iter().any(|(k, _)| *k == key) {
            errors.add(key.clone(), "Input given more than once.");
        } else {
            given.push((key, value));
        }
    }

    let mut checked = Vec::with_capacity(definitions.len());
    for definition in definitions {
        let value = match given.iter().position(|(k, _)| *k == definition.key) {
            Some(index) => given.swap_remove(index).1,
            None => match &definition.default {
                Some(default) => RawInput::Text(default.clone()),
                None => {
                    errors.add(definition.key.clone(), "This field is required.");
                    continue;
                }
            },
        };
        match check_one(definition, value) {
            Ok(input) => checked.push((definition.clone(), input)),
            Err(message) => errors.add(definition.key.clone(), message),
        }
    }
    errors.into_result().map_err(InputError)?;
    Ok(checked)
}

fn expected_keys(definitions: &[InputDefinition]) -> String {
    if definitions.is_empty() {
        return "This agent takes no inputs.".into();
    }
    let keys: Vec<&str> = definitions.iter().map(|d| d.key.as_str()).collect();
    format!("Expected: {}.", keys.join(", "))
}

fn check_one(definition: &InputDefinition, value: RawInput) -> Result<CheckedInput, String> {
    match (definition.kind(), value) {
        (InputKind::Text, RawInput::Text(text)) => Ok(CheckedInput::Text(text)),
        (InputKind::Text, RawInput::Json(json)) => text_from_json(definition, json),
        (InputKind::Text, RawInput::File(upload)) => String::from_utf8(upload.bytes)
            .map(CheckedInput::Text)
            .map_err(|_| {
                format!(
                    "Expected text ({}), got a binary file '{}'.",
                    definition.data_type, upload.file_name
                )
            }),
        (InputKind::File, RawInput::File(upload)) => {
            Ok(CheckedInput::File(FileSource::Upload(upload)))
        }
        (InputKind::File, RawInput::Text(text)) => file_from_text(definition, text.trim()),
        (InputKind::File, RawInput::Json(_)) => Err(format!(
            "Expected a file ({}): an upload, an http(s) URL, a data: URL or a file id.",
            definition.data_type
        )),
    }
}

fn text_from_json(definition: &InputDefinition, json: Value) -> Result<CheckedInput, String> {
    match json {
        Value::Number(n) => Ok(CheckedInput::Text(n.to_string())),
        Value::Bool(b) => Ok(CheckedInput::Text(b.to_string())),
        Value::Null => Err("This field may not be null.".into()),
        structured if definition.data_type.contains("json") => {
            Ok(CheckedInput::Text(structured.to_string()))
        }
        _ => Err(format!(
            "Expected a string ({}), got a JSON {}.",
            definition.data_type,
            if json_is_array(&json) {
                "array"
            } else {
                "object"
            }
        )),
    }
}

fn json_is_array(value: &Value) -> bool {
    matches!(value, Value::Array(_))
}

fn file_from_text(definition: &InputDefinition, text: &str) -> Result<CheckedInput, String> {
    if let Ok(id) = text.parse::<FileId>() {
        return Ok(CheckedInput::File(FileSource::StoredFile(id)));
    }
    if is_http_url(text) {
        return Ok(CheckedInput::File(FileSource::Url(text.to_owned())));
    }
    if let Some(upload) = decode_data_url(text)? {
        return Ok(CheckedInput::File(FileSource::Upload(upload)));
    }
    Err(format!(
        "Expected a file ({}): an upload, an http(s) URL, a data: URL or a file id.",
        definition.data_type
    ))
}

/// Whether a file input's text names an http(s) URL to fetch.
fn is_http_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// How many file inputs of a request are URLs the server would fetch,
/// defaults included (the bound on fetches per request counts these).
pub fn count_url_inputs(definitions: &[InputDefinition], raw: &[(String, RawInput)]) -> usize {
    definitions
        .iter()
        .filter(|definition| definition.kind() == InputKind::File)
        .filter(|definition| {
            let text = match raw.iter().find(|(key, _)| *key == definition.key) {
                Some((_, RawInput::Text(text))) => Some(text.as_str()),
                Some(_) => None,
                None => definition.default.as_deref(),
            };
            text.is_some_and(|text| is_http_url(text.trim()))
        })
        .count()
}

/// Decodes `data:[<mime>][;base64],<data>`; `Ok(None)` when not a data URL.
pub fn decode_data_url(text: &str) -> Result<Option<Upload>, String> {
    let Some(rest) = text.strip_prefix("data:") else {
        return Ok(None);
    };
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| "Malformed data: URL (no comma).".to_string())?;
    // Only the last `;base64` marks the encoding; the media type keeps the rest.
    let (mime, is_base64) = match header.strip_suffix(";base64") {
        Some(mime) => (mime, true),
        None => (header, false),
    };
    let bytes = if is_base64 {
        base64_decode(data).ok_or_else(|| "Malformed data: URL (invalid base64).".to_string())?
    } else {
        data.as_bytes().to_vec()
    };
    Ok(Some(Upload {
        file_name: "data-url".into(),
        content_type: (!mime.is_empty()).then(|| mime.to_owned()),
        bytes,
    }))
}

fn base64_decode(data: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
    };
    use base64::Engine as _;
    // Clients send data URLs both with and without padding.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let clean: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(clean).ok()
}

/// The MIME type the leading bytes reveal, if any.
pub fn sniff_mime_type(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes).map(|kind| kind.mime_type())
}

/// Checks that a file's bytes are of the declared `data_type`, by their
/// leading magic bytes. Types that cannot be recognised that way (`*/*`,
/// `application/octet-stream`, most text types) accept any content.
pub fn check_file_content(data_type: &str, bytes: &[u8]) -> Result<(), String> {
    let declared = data_type.trim().to_ascii_lowercase();
    if declared.is_empty() || declared == "*/*" || declared == "application/octet-stream" {
        return Ok(());
    }
    let detected = sniff_mime_type(bytes);
    let matches = match declared.split_once('/') {
        Some((family, "*")) => detected.is_some_and(|mime| mime.starts_with(&format!("{family}/"))),
        _ if declared == "application/pdf" || declared.starts_with("image/") => {
            detected == Some(declared.as_str())
                || (declared == "image/jpg" && detected == Some("image/jpeg"))
        }
        _ => return Ok(()),
    };
    if matches {
        Ok(())
    } else {
        Err(format!(
            "File content does not match the declared data_type {data_type}: it looks like {}.",
            detected.unwrap_or("something else")
        ))
    }
}

/// A job's record of one input, as the jobs API shows it (`JobInput`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobInputRecord {
    pub key: String,
    pub description: String,
    pub data_type: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(key: &str, data_type: &str, default: Option<&str>) -> InputDefinition {
        InputDefinition {
            default: default.map(Into::into),
            ..InputDefinition::new(key, data_type)
        }
    }

    fn field_errors(
        result: Result<Vec<(InputDefinition, CheckedInput)>, InputError>,
    ) -> Vec<String> {
        result
            .unwrap_err()
            .0
            .fields()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect()
    }

    #[test]
    fn required_inputs_must_be_given() {
        let defs = vec![definition("text", "text/plain", None)];
        let errors = field_errors(check_inputs(&defs, vec![]));
        assert_eq!(errors, vec!["text: This field is required."]);
    }

    #[test]
    fn defaults_fill_missing_inputs() {
        let defs = vec![definition("lang", "text/plain", Some("en"))];
        let checked = check_inputs(&defs, vec![]).unwrap();
        assert_eq!(checked[0].1, CheckedInput::Text("en".into()));
    }

    #[test]
    fn unknown_keys_are_named() {
        let defs = vec![definition("text", "text/plain", None)];
        let raw = vec![
            ("text".into(), RawInput::Text("a".into())),
            ("txet".into(), RawInput::Text("b".into())),
        ];
        let errors = field_errors(check_inputs(&defs, raw));
        assert_eq!(errors, vec!["txet: Unknown input 'txet'. Expected: text."]);
    }

    #[test]
    fn numbers_become_text_but_objects_are_the_wrong_type() {
        let defs = vec![definition("n", "text/plain", None)];
        let checked = check_inputs(&defs, vec![("n".into(), RawInput::Json(3.into()))]).unwrap();
        assert_eq!(checked[0].1, CheckedInput::Text("3".into()));
        let raw = vec![("n".into(), RawInput::Json(serde_json::json!({"a": 1})))];
        let errors = field_errors(check_inputs(&defs, raw));
        assert!(errors[0].contains("got a JSON object"), "{errors:?}");
    }

    #[test]
    fn json_inputs_accept_structured_values() {
        let defs = vec![definition("j", "application/json", None)];
        let raw = vec![("j".into(), RawInput::Json(serde_json::json!([1, 2])))];
        let checked = check_inputs(&defs, raw).unwrap();
        assert_eq!(checked[0].1, CheckedInput::Text("[1,2]".into()));
    }

    #[test]
    fn file_inputs_take_urls_ids_and_data_urls() {
        let defs = vec![definition("f", "application/pdf", None)];
        let url = check_inputs(
            &defs,
            vec![("f".into(), RawInput::Text("https://x/a.pdf".into()))],
        );
        assert_eq!(
            url.unwrap()[0].1,
            CheckedInput::File(FileSource::Url("https://x/a.pdf".into()))
        );
        let id = "00000000-0000-0000-0000-000000000009";
        let stored = check_inputs(&defs, vec![("f".into(), RawInput::Text(id.into()))]);
        assert_eq!(
            stored.unwrap()[0].1,
            CheckedInput::File(FileSource::StoredFile(id.parse().unwrap()))
        );
        let data = check_inputs(
            &defs,
            vec![(
                "f".into(),
                RawInput::Text("data:application/pdf;base64,JVBERi0xLjQ=".into()),
            )],
        );
        match &data.unwrap()[0].1 {
            CheckedInput::File(FileSource::Upload(upload)) => assert_eq!(upload.bytes, b"%PDF-1.4"),
            other => panic!("unexpected {other:?}"),
        }
        let errors = field_errors(check_inputs(
            &defs,
            vec![("f".into(), RawInput::Text("hello".into()))],
        ));
        assert!(errors[0].starts_with("f: Expected a file"), "{errors:?}");
    }

    #[test]
    fn binary_files_are_not_text() {
        let defs = vec![definition("t", "text/plain", None)];
        let upload = Upload {
            file_name: "a.bin".into(),
            content_type: None,
            bytes: vec![0xff, 0xfe, 0x00],
        };
        let errors = field_errors(check_inputs(
            &defs,
            vec![("t".into(), RawInput::File(upload))],
        ));
        assert!(errors[0].contains("binary file"), "{errors:?}");
    }

    #[test]
    fn content_must_match_pdf_and_image_types() {
        assert!(check_file_content("application/pdf", b"%PDF-1.7\n...").is_ok());
        assert!(check_file_content("application/pdf", b"hello world").is_err());
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];
        assert!(check_file_content("image/png", &png).is_ok());
        assert!(check_file_content("image/*", &png).is_ok());
        assert!(check_file_content("image/jpeg", &png).is_err());
        assert!(check_file_content("text/csv", b"a,b").is_ok());
    }

    #[test]
    fn a_data_url_keeps_its_media_type_whole() {
        // Found by the `data_url` fuzz target: `;base64` was trimmed repeatedly.
        let upload = decode_data_url("data:text/x;base64;base64,aGk=")
            .unwrap()
            .unwrap();
        assert_eq!(upload.content_type.as_deref(), Some("text/x;base64"));
        assert_eq!(upload.bytes, b"hi");
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn counts_the_url_file_inputs_a_request_would_fetch() {
        let defs = vec![
            definition("text", "text/plain", None),
            definition("photo", "image/png", None),
            definition("scan", "application/pdf", Some("https://example.com/a.pdf")),
            definition(
                "logo",
                "image/png",
                Some("00000000-0000-4000-8000-000000000000"),
            ),
        ];
        let text = |value: &str| RawInput::Text(value.into());
        let raw = vec![
            (
                "text".to_string(),
                text("http://example.com/not-a-file-input"),
            ),
            ("photo".to_string(), text(" http://example.com/p.png")),
        ];
        // photo by URL, scan by its URL default; text is not a file input.
        assert_eq!(count_url_inputs(&defs, &raw), 2);
        let raw = vec![
            ("photo".to_string(), text("data:image/png;base64,AAAA")),
            (
                "scan".to_string(),
                text("00000000-0000-4000-8000-000000000000"),
            ),
        ];
        assert_eq!(count_url_inputs(&defs, &raw), 0);
    }
}
