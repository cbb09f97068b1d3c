//! Agents and their versions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, AgentVersionId, OrganizationId};
use crate::time::Timestamp;
use crate::FieldErrors;

/// A validated agent name: trimmed, 1 to 200 characters (Roe's
/// `maxLength`), no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentName(String);

impl AgentName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("This field may not be blank.".into());
        }
        check_line(name, Self::MAX_CHARS)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Limits on what an agent version may declare, so that a definition can
/// neither bloat every job nor smuggle control characters into logs.
pub mod limits {
    /// Input definitions per version.
    pub const MAX_INPUT_DEFINITIONS: usize = 100;
    /// An input key: an identifier (templates refer to it as `${key}`).
    pub const MAX_INPUT_KEY_CHARS: usize = 64;
    /// A `data_type`: a MIME type such as `text/plain` or `image/*`.
    pub const MAX_DATA_TYPE_CHARS: usize = 100;
    /// An input definition's `description` and `example`.
    pub const MAX_INPUT_TEXT_CHARS: usize = 5_000;
    /// An input definition's `default`.
    pub const MAX_INPUT_DEFAULT_CHARS: usize = 100_000;
    /// A version's `version_name`.
    pub const MAX_VERSION_NAME_CHARS: usize = 200;
    /// A version's `description`.
    pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
}

/// A one-line text: at most `max` characters, no control characters.
pub fn check_line(text: &str, max: usize) -> Result<(), String> {
    check_text(text, max)?;
    if text.chars().any(char::is_control) {
        return Err("Control characters (such as NUL or line breaks) are not allowed.".into());
    }
    Ok(())
}

/// A free text: at most `max` characters; line breaks and tabs are fine,
/// other control characters (NUL) are not.
pub fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.chars().count() > max {
        return Err(format!(
            "Ensure this field has no more than {max} characters."
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("Control characters (such as NUL) are not allowed.".into());
    }
    Ok(())
}

/// Whether an input carries text or a file, derived from its MIME `data_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    Text,
    File,
}

/// One declared input of an agent version (`AgentInputDefinition`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputDefinition {
    pub key: String,
    pub data_type: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepts_multiple_files: Option<bool>,
    /// Used when a run omits the input; an input without one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl InputDefinition {
    /// A required input with only a key and a data type: no description,
    /// example or default.
    pub fn new(key: &str, data_type: &str) -> Self {
        Self {
            key: key.into(),
            data_type: data_type.into(),
            description: String::new(),
            example: None,
            accepts_multiple_files: None,
            default: None,
        }
    }

    pub fn kind(&self) -> InputKind {
        let data_type = self.data_type.trim().to_ascii_lowercase();
        let textual = data_type.starts_with("text/")
            || matches!(
                data_type.as_str(),
                "text" | "string" | "application/json" | "json"
            );
        if textual {
            InputKind::Text
        } else {
            InputKind::File
        }
    }

    /// Checks a list of definitions; errors are keyed `input_definitions`
    /// and each message names the entry and field at fault.
    pub fn validate_all(definitions: &[InputDefinition]) -> Result<(), FieldErrors> {
        use limits::*;
        let mut errors = FieldErrors::default();
        if definitions.len() > MAX_INPUT_DEFINITIONS {
            errors.add(
                "input_definitions",
                format!(
                    "At most {MAX_INPUT_DEFINITIONS} input definitions are allowed, got {}.",
                    definitions.len()
                ),
            );
            return Err(errors);
        }
        let mut seen = std::collections::HashSet::new();
        for (index, definition) in definitions.iter().enumerate() {
            let mut fail = |field: &str, message: String| {
                errors.add(
                    "input_definitions",
                    format!("input_definitions[{index}].{field}: {message}"),
                )
            };
            match check_input_key(&definition.key) {
                Err(message) => fail("key", message),
                Ok(()) if !seen.insert(definition.key.as_str()) => {
                    fail("key", format!("Duplicate input key '{}'.", definition.key))
                }
                Ok(()) => {}
            }
            if let Err(message) = check_data_type(&definition.data_type) {
                fail("data_type", message);
            }
            let texts = [
                (
                    "description",
                    Some(&definition.description),
                    MAX_INPUT_TEXT_CHARS,
                ),
                ("example", definition.example.as_ref(), MAX_INPUT_TEXT_CHARS),
                (
                    "default",
                    definition.default.as_ref(),
                    MAX_INPUT_DEFAULT_CHARS,
                ),
            ];
            for (field, text, max) in texts {
                if let Some(Err(message)) = text.map(|t| check_text(t, max)) {
                    fail(field, message);
                }
            }
        }
        errors.into_result()
    }
}

/// An input key is an identifier of at most 64 characters, so that
/// templates can name it; `metadata` is reserved for the run's metadata.
pub fn check_input_key(key: &str) -> Result<(), String> {
    use limits::MAX_INPUT_KEY_CHARS;
    if key.is_empty() {
        return Err("This field may not be blank.".into());
    }
    if key.chars().count() > MAX_INPUT_KEY_CHARS {
        return Err(format!(
            "Ensure this field has no more than {MAX_INPUT_KEY_CHARS} characters."
        ));
    }
    if !crate::template::is_identifier(key) {
        return Err(format!(
            "'{}' is not a valid input key: use letters, digits and '_', not starting with a digit.",
            key.escape_debug()
        ));
    }
    if key == "metadata" {
        return Err("'metadata' is reserved and cannot be an input key.".into());
    }
    Ok(())
}

/// A `data_type` is a MIME type (`text/plain`, `image/*`) or one of the
/// short forms Roe accepts (`text`, `string`, `json`).
pub fn check_data_type(data_type: &str) -> Result<(), String> {
    use limits::MAX_DATA_TYPE_CHARS;
    if data_type.trim().is_empty() {
        return Err("This field may not be blank.".into());
    }
    if data_type.chars().count() > MAX_DATA_TYPE_CHARS {
        return Err(format!(
            "Ensure this field has no more than {MAX_DATA_TYPE_CHARS} characters."
        ));
    }
    let token = |part: &str, wildcard: bool| {
        !part.is_empty()
            && (part == "*" && wildcard
                || part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c)))
    };
    let valid = match data_type.split_once('/') {
        Some((family, subtype)) => token(family, false) && token(subtype, true),
        None => token(data_type, false),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a MIME type such as text/plain, application/pdf or image/*.",
            data_type.escape_debug()
        ))
    }
}

/// Per-agent figures computed from its jobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentStats {
    pub job_count: i64,
    pub most_recent_job: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub id: AgentId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub engine_class_id: String,
    pub disable_cache: bool,
    pub cache_failed_jobs: bool,
    pub current_version_id: AgentVersionId,
    /// The API key that created the agent (keys stand in for users).
    pub creator_key_id: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub stats: AgentStats,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentVersion {
    pub id: AgentVersionId,
    pub agent_id: AgentId,
    pub version_name: String,
    pub description: Option<String>,
    pub input_definitions: Vec<InputDefinition>,
    pub engine_config: Value,
    pub creator_key_id: Option<i64>,
    pub created_at: Timestamp,
}

impl AgentVersion {
    pub const DEFAULT_NAME: &'static str = "unnamed version";
}

/// What is needed to create an agent together with its first version.
#[derive(Clone, Debug)]
pub struct NewAgent {
    pub organization_id: OrganizationId,
    pub name: AgentName,
    pub engine_class_id: String,
    pub creator_key_id: Option<i64>,
    pub first_version: NewAgentVersion,
}

#[derive(Clone, Debug)]
pub struct NewAgentVersion {
    pub version_name: Option<String>,
    pub description: Option<String>,
    pub input_definitions: Vec<InputDefinition>,
    pub engine_config: Value,
    pub creator_key_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(AgentName::parse("  a  ").unwrap().as_str(), "a");
        assert!(AgentName::parse("   ").is_err());
        assert!(AgentName::parse(&"x".repeat(201)).is_err());
        assert!(AgentName::parse("a\0b").is_err());
    }

    #[test]
    fn keys_are_identifiers_and_data_types_mime_types() {
        assert!(check_input_key("pdf_file").is_ok());
        for bad in ["", "a b", "1a", "a\0", "metadata", &"k".repeat(65)] {
            assert!(check_input_key(bad).is_err(), "{bad:?}");
        }
        for good in ["text/plain", "image/*", "application/vnd.ms-excel", "text"] {
            assert!(check_data_type(good).is_ok(), "{good}");
        }
        for bad in ["", "*/png", "text/ plain", "a\0/b", &"t".repeat(101)] {
            assert!(check_data_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn too_many_definitions_are_refused() {
        let defs: Vec<_> = (0..=limits::MAX_INPUT_DEFINITIONS)
            .map(|i| InputDefinition::new(&format!("k{i}"), "text/plain"))
            .collect();
        assert!(InputDefinition::validate_all(&defs).is_err());
        assert!(InputDefinition::validate_all(&defs[1..]).is_ok());
    }

    #[test]
    fn kind_follows_mime_type() {
        assert_eq!(
            InputDefinition::new("t", "text/plain").kind(),
            InputKind::Text
        );
        assert_eq!(
            InputDefinition::new("j", "application/json").kind(),
            InputKind::Text
        );
        assert_eq!(
            InputDefinition::new("p", "application/pdf").kind(),
            InputKind::File
        );
        assert_eq!(
            InputDefinition::new("i", "image/png").kind(),
            InputKind::File
        );
    }

    #[test]
    fn duplicate_and_reserved_keys_are_rejected() {
        let defs = vec![
            InputDefinition::new("a", "text/plain"),
            InputDefinition::new("a", "text/plain"),
        ];
        assert!(InputDefinition::validate_all(&defs).is_err());
        let defs = vec![InputDefinition::new("metadata", "text/plain")];
        assert!(InputDefinition::validate_all(&defs).is_err());
        let defs = vec![
            InputDefinition::new("a", "text/plain"),
            InputDefinition::new("b", "image/png"),
        ];
        assert!(InputDefinition::validate_all(&defs).is_ok());
    }
}
