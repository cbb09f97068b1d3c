//! Agents and their versions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, AgentVersionId, OrganizationId};
use crate::time::Timestamp;
use crate::FieldErrors;

/// A validated agent name: trimmed, 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentName(String);

impl AgentName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("This field may not be blank.".into());
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "Ensure this field has no more than {} characters.",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
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

    /// Checks a list of definitions; errors are keyed `input_definitions`.
    pub fn validate_all(definitions: &[InputDefinition]) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut seen = std::collections::HashSet::new();
        for (index, definition) in definitions.iter().enumerate() {
            let key = definition.key.trim();
            if key.is_empty() {
                errors.add(
                    "input_definitions",
                    format!("input_definitions[{index}].key may not be blank."),
                );
            } else if key == "metadata" {
                errors.add(
                    "input_definitions",
                    "'metadata' is reserved and cannot be an input key.",
                );
            } else if !seen.insert(key.to_owned()) {
                errors.add("input_definitions", format!("Duplicate input key '{key}'."));
            }
            if definition.data_type.trim().is_empty() {
                errors.add(
                    "input_definitions",
                    format!("input_definitions[{index}].data_type may not be blank."),
                );
            }
        }
        errors.into_result()
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

    fn definition(key: &str, data_type: &str) -> InputDefinition {
        InputDefinition {
            key: key.into(),
            data_type: data_type.into(),
            description: String::new(),
            example: None,
            accepts_multiple_files: None,
            default: None,
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(AgentName::parse("  a  ").unwrap().as_str(), "a");
        assert!(AgentName::parse("   ").is_err());
        assert!(AgentName::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn kind_follows_mime_type() {
        assert_eq!(definition("t", "text/plain").kind(), InputKind::Text);
        assert_eq!(definition("j", "application/json").kind(), InputKind::Text);
        assert_eq!(definition("p", "application/pdf").kind(), InputKind::File);
        assert_eq!(definition("i", "image/png").kind(), InputKind::File);
    }

    #[test]
    fn duplicate_and_reserved_keys_are_rejected() {
        let defs = vec![definition("a", "text/plain"), definition("a", "text/plain")];
        assert!(InputDefinition::validate_all(&defs).is_err());
        let defs = vec![definition("metadata", "text/plain")];
        assert!(InputDefinition::validate_all(&defs).is_err());
        let defs = vec![definition("a", "text/plain"), definition("b", "image/png")];
        assert!(InputDefinition::validate_all(&defs).is_ok());
    }
}
