//! `/v1/agents/{agent_id}/versions/...`: agent versions.

use std::sync::Arc;

use agentd_domain::{
    Agent, AgentVersion, AgentVersionId, InputDefinition, NewAgentVersion, Operation,
};
use agentd_engines::Engine;
use agentd_storage::VersionUpdate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject};
use super::{load_agent, wire};
use crate::auth::Caller;
use crate::startup::AppState;

/// Reads `version_name`, `description`, `input_definitions` and
/// `engine_config` of a new version, checking the config against the engine.
pub(super) fn read_new_version(
    fields: &mut FieldReader<'_>,
    engine: &dyn Engine,
    state: &AppState,
    creator_key_id: i64,
) -> Option<NewAgentVersion> {
    let version_name = fields.non_blank_string("version_name");
    let description = fields.string("description");
    let input_definitions = match fields.json("input_definitions") {
        None => Some(Vec::new()),
        Some(value) => match serde_json::from_value::<Vec<InputDefinition>>(value) {
            Ok(definitions) => match InputDefinition::validate_all(&definitions) {
                Ok(()) => Some(definitions),
                Err(errors) => {
                    fields.errors.merge(errors);
                    None
                }
            },
            Err(e) => {
                fields.errors.add(
                    "input_definitions",
                    format!("Must be a list of {{key, data_type, description}} objects: {e}"),
                );
                None
            }
        },
    };
    let engine_config = match fields.json("engine_config").unwrap_or_else(|| json!({})) {
        config @ Value::Object(_) => match engine.check_config(&config, &state.models) {
            Ok(()) => Some(config),
            Err(errors) => {
                fields.errors.merge(errors);
                None
            }
        },
        _ => {
            fields.errors.add("engine_config", "Must be a JSON object.");
            None
        }
    };
    Some(NewAgentVersion {
        version_name,
        description,
        input_definitions: input_definitions?,
        engine_config: engine_config?,
        creator_key_id: Some(creator_key_id),
    })
}

pub(super) async fn load_version(
    state: &AppState,
    agent: &Agent,
    version_id: AgentVersionId,
) -> Result<AgentVersion, ApiError> {
    state
        .storage
        .get_version(agent.id, version_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Agent version not found.".into()))
}

pub(super) fn parse_version_id(raw: &str) -> Result<AgentVersionId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound("Agent version not found.".into()))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let versions = state.storage.list_versions(agent.id).await?;
    Ok(Json(Value::Array(
        versions
            .iter()
            .map(|v| wire::agent_version(v, &agent, &state.engines))
            .collect(),
    )))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let engine = state.engines.get(&agent.engine_class_id).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Engine '{}' is not available.",
            agent.engine_class_id
        ))
    })?;
    let mut fields = FieldReader::new(&body);
    let version = read_new_version(&mut fields, engine.as_ref(), &state, caller.key.id);
    fields.finish()?;
    let version = state
        .storage
        .create_version(agent.id, version.expect("errors were reported"))
        .await?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(wire::agent_version(&version, &agent, &state.engines)),
    ))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    Ok(Json(wire::agent_version(&version, &agent, &state.engines)))
}

pub async fn current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, agent.current_version_id).await?;
    Ok(Json(wire::agent_version(&version, &agent, &state.engines)))
}

/// PUT and PATCH change only `version_name` and `description`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    let mut fields = FieldReader::new(&body);
    let update = VersionUpdate {
        version_name: fields.non_blank_string("version_name"),
        description: fields.non_blank_string("description"),
    };
    fields.finish()?;
    state
        .storage
        .update_version(agent.id, version.id, update)
        .await?
        .ok_or_else(|| ApiError::NotFound("Agent version not found.".into()))?;
    Ok(Json(
        json!({"message": "Agent version updated successfully."}),
    ))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    if version.id == agent.current_version_id {
        return Err(ApiError::bad_request(
            "The current version of an agent cannot be deleted; create or select another version first.",
        ));
    }
    state.storage.delete_version(agent.id, version.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
