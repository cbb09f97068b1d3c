//! What the fuzz targets share: arbitrary JSON values and inputs, the input
//! definitions runs are checked against, and the properties every checked
//! run must have.

use agentd_domain::input::{
    check_inputs, count_url_inputs, decode_data_url, CheckedInput, FileSource,
};
use agentd_domain::{FileId, InputDefinition, InputKind, RawInput, Upload};
use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Value};

/// Deepest nesting of an arbitrary JSON value.
const MAX_DEPTH: u32 = 4;

/// An arbitrary JSON value, nested at most [`MAX_DEPTH`] levels.
#[derive(Debug)]
pub struct ArbitraryJson(pub Value);

impl<'a> Arbitrary<'a> for ArbitraryJson {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json_value(u, MAX_DEPTH).map(ArbitraryJson)
    }
}

fn json_value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 if u.arbitrary()? => serde_json::Number::from_f64(u.arbitrary()?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::String(template_like_string(u)?),
        4 => {
            let len = u.int_in_range(0..=4)?;
            Value::Array(
                (0..len)
                    .map(|_| json_value(u, depth - 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut map = Map::new();
            for _ in 0..len {
                map.insert(key(u)?, json_value(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// Input keys a run is likely to use, so that generated values meet the
/// definitions often; otherwise any string.
const KEYS: &[&str] = &[
    "text",
    "doc",
    "lang",
    "inputs",
    "metadata",
    "organization_id",
    "name_2",
    "_",
];

pub fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(KEYS)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// Pieces that make strings look like templates, data URLs, file ids and
/// URLs, so the fuzzer reaches the interesting branches quickly.
const FRAGMENTS: &[&str] = &[
    "$",
    "$$",
    "${",
    "}",
    "{",
    "text",
    "doc",
    "name_2",
    "_x",
    "é",
    "💡",
    " ",
    "data:",
    ";base64,",
    "application/pdf",
    "JVBERi0xLjQ=",
    "https://",
    "00000000-0000-0000-0000-000000000009",
];

/// A string of template fragments and arbitrary text.
pub fn template_like_string(u: &mut Unstructured<'_>) -> Result<String> {
    let pieces = u.int_in_range(0..=8)?;
    let mut out = String::new();
    for _ in 0..pieces {
        if u.ratio(2, 3)? {
            out.push_str(u.choose(FRAGMENTS)?);
        } else {
            out.push_str(u.arbitrary::<&str>()?);
        }
    }
    Ok(out)
}

/// Data types of definitions: the usual ones, then anything.
pub const DATA_TYPES: &[&str] = &[
    "text/plain",
    "text",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpg",
    "image/*",
    "*/*",
    "application/octet-stream",
    "text/csv",
    "video/*",
    " IMAGE/JPEG ",
];

pub fn data_type(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(4, 5)? {
        Ok((*u.choose(DATA_TYPES)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// An arbitrary input definition.
#[derive(Debug)]
pub struct ArbitraryDefinition(pub InputDefinition);

impl<'a> Arbitrary<'a> for ArbitraryDefinition {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self(InputDefinition {
            key: key(u)?,
            data_type: data_type(u)?,
            description: u.arbitrary()?,
            example: u.arbitrary()?,
            accepts_multiple_files: u.arbitrary()?,
            default: if u.arbitrary()? {
                Some(template_like_string(u)?)
            } else {
                None
            },
        }))
    }
}

/// An arbitrary raw input value, as a body part or JSON field carries it.
#[derive(Debug)]
pub struct ArbitraryRawInput(pub RawInput);

impl<'a> Arbitrary<'a> for ArbitraryRawInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self(match u.int_in_range(0..=2)? {
            0 => RawInput::Text(template_like_string(u)?),
            1 => RawInput::Json(ArbitraryJson::arbitrary(u)?.0),
            _ => RawInput::File(Upload {
                file_name: u.arbitrary()?,
                content_type: u.arbitrary()?,
                bytes: u.arbitrary()?,
            }),
        }))
    }
}

fn definition(key: &str, data_type: &str, default: Option<&str>) -> InputDefinition {
    InputDefinition {
        key: key.into(),
        data_type: data_type.into(),
        description: String::new(),
        example: None,
        accepts_multiple_files: None,
        default: default.map(Into::into),
    }
}

/// Input definitions of realistic agents: one text input; text, a PDF and
/// a text with a default; an input called `inputs` and one called
/// `organization_id` (both change how a body is read); no inputs at all.
pub fn fixed_definitions() -> Vec<Vec<InputDefinition>> {
    vec![
        vec![definition("text", "text/plain", None)],
        vec![
            definition("text", "text/plain", None),
            definition("doc", "application/pdf", None),
            definition("lang", "text/plain", Some("en")),
        ],
        vec![
            definition("inputs", "application/json", None),
            definition("organization_id", "text/plain", Some("")),
            definition(
                "image",
                "image/*",
                Some("data:image/png;base64,iVBORw0KGgo="),
            ),
        ],
        vec![],
    ]
}

/// Checks `raw` against `definitions` and asserts what must hold for any
/// run, accepted or not.
pub fn check_and_assert(definitions: &[InputDefinition], raw: Vec<(String, RawInput)>) {
    let given = raw.clone();
    let url_inputs = count_url_inputs(definitions, &given);
    match check_inputs(definitions, raw) {
        Ok(checked) => {
            if keys_are_distinct(definitions) {
                let fetched = checked
                    .iter()
                    .filter(|(_, input)| matches!(input, CheckedInput::File(FileSource::Url(_))))
                    .count();
                assert_eq!(url_inputs, fetched, "the URL count is what gets fetched");
            }
            assert_eq!(checked.len(), definitions.len(), "one input per definition");
            for (index, ((checked_definition, input), definition)) in
                checked.iter().zip(definitions).enumerate()
            {
                assert_eq!(checked_definition, definition, "inputs in definition order");
                // A value given for a key goes to the first definition of it.
                let first_of_key = !definitions[..index].iter().any(|d| d.key == definition.key);
                let supplied = given
                    .iter()
                    .find(|(k, _)| first_of_key && *k == definition.key)
                    .map(|(_, v)| v.clone());
                let supplied = supplied.unwrap_or_else(|| {
                    RawInput::Text(
                        definition
                            .default
                            .clone()
                            .expect("missing input with no default accepted"),
                    )
                });
                assert_checked_input(definition, input, &supplied);
            }
            for (key, _) in &given {
                assert!(
                    definitions.iter().any(|d| &d.key == key),
                    "unknown key {key:?} accepted"
                );
            }
        }
        Err(error) => {
            let errors = error.0;
            assert!(!errors.is_empty(), "a rejection names a field");
            for (field, messages) in errors.fields() {
                assert!(
                    definitions.iter().any(|d| &d.key == field)
                        || given.iter().any(|(k, _)| k == field),
                    "error for field {field:?} that is neither defined nor given"
                );
                assert!(messages.iter().all(|m| !m.is_empty()), "empty message");
            }
        }
    }
}

fn keys_are_distinct(definitions: &[InputDefinition]) -> bool {
    let mut keys: Vec<&str> = definitions.iter().map(|d| d.key.as_str()).collect();
    keys.sort_unstable();
    keys.windows(2).all(|w| w[0] != w[1])
}

/// A checked input has the kind of its definition, values that need no
/// conversion pass through unchanged, and a file given as text is exactly
/// what that text says.
fn assert_checked_input(definition: &InputDefinition, input: &CheckedInput, supplied: &RawInput) {
    match (definition.kind(), input, supplied) {
        (InputKind::Text, CheckedInput::Text(text), RawInput::Text(raw)) => {
            assert_eq!(text, raw, "text inputs pass unchanged")
        }
        (InputKind::Text, CheckedInput::Text(_), _) => {}
        (InputKind::File, CheckedInput::File(FileSource::Upload(upload)), RawInput::File(raw)) => {
            assert_eq!(upload, raw, "uploads pass unchanged")
        }
        (InputKind::File, CheckedInput::File(source), RawInput::Text(text)) => {
            let text = text.trim();
            match source {
                FileSource::Url(url) => {
                    assert_eq!(url, text);
                    assert!(url.starts_with("http://") || url.starts_with("https://"));
                }
                FileSource::StoredFile(id) => assert_eq!(text.parse::<FileId>().ok(), Some(*id)),
                FileSource::Upload(upload) => assert_eq!(
                    decode_data_url(text),
                    Ok(Some(upload.clone())),
                    "only data: URLs become uploads"
                ),
            }
        }
        (kind, input, supplied) => panic!("{kind:?} input {supplied:?} checked as {input:?}"),
    }
}
