//! `/v1/agents/{agent_id}/versions/...`: agent versions.

use std::sync::Arc;

use agentd_domain::agent::{check_line, check_text, limits};
use agentd_domain::{
    Agent, AgentVersion, AgentVersionId, InputDefinition, NewAgentVersion, Operation,
};
use agentd_engines::Engine;
use agentd_storage::VersionUpdate;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject, QueryParams};
use super::openapi::{AgentIdParameter, AgentVersionParameters, ErrorBody};
use super::{load_agent, wire};
use crate::auth::Caller;
use crate::startup::AppState;

/// Reads `version_name`, `description`, `input_definitions` and
/// `engine_config` of a new version, checking the config against the engine
/// and its templates against the input definitions.
pub(super) fn read_new_version(
    fields: &mut FieldReader<'_>,
    engine: &dyn Engine,
    state: &AppState,
    creator_key_id: i64,
) -> Option<NewAgentVersion> {
    let (version_name, description) = read_version_texts(fields);
    let input_definitions = read_input_definitions(fields);
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
    if let (Some(config), Some(definitions)) = (&engine_config, &input_definitions) {
        fields.errors.merge(agentd_domain::template::check(
            config,
            definitions,
            engine.file_fields(),
        ));
    }
    Some(NewAgentVersion {
        version_name,
        description,
        input_definitions: input_definitions?,
        engine_config: engine_config?,
        creator_key_id: Some(creator_key_id),
    })
}

/// `version_name` (a line) and `description` (a text), both optional.
fn read_version_texts(fields: &mut FieldReader<'_>) -> (Option<String>, Option<String>) {
    let version_name = fields.non_blank_string("version_name").and_then(|name| {
        fields.check("version_name", name, |n| {
            check_line(n, limits::MAX_VERSION_NAME_CHARS)
        })
    });
    let description = fields.string("description").and_then(|text| {
        fields.check("description", text, |t| {
            check_text(t, limits::MAX_DESCRIPTION_CHARS)
        })
    });
    (version_name, description)
}

fn read_input_definitions(fields: &mut FieldReader<'_>) -> Option<Vec<InputDefinition>> {
    let value = match fields.json("input_definitions") {
        None => return Some(Vec::new()),
        Some(value) => value,
    };
    // Counted before they are parsed: a huge list is refused cheaply.
    if let Value::Array(items) = &value {
        if items.len() > limits::MAX_INPUT_DEFINITIONS {
            fields.errors.add(
                "input_definitions",
                format!(
                    "At most {} input definitions are allowed, got {}.",
                    limits::MAX_INPUT_DEFINITIONS,
                    items.len()
                ),
            );
            return None;
        }
    }
    match serde_json::from_value::<Vec<InputDefinition>>(value) {
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
    }
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

/// The body of `POST /v1/agents/{agent_id}/versions/`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON object the handler reads field by field
pub struct AgentVersionCreateRequest {
    #[schema(min_length = 1)]
    version_name: Option<String>,
    description: Option<String>,
    /// Inputs of the version (a list, or its JSON text).
    #[schema(value_type = Option<Vec<super::wire::AgentInputDefinition>>)]
    input_definitions: Option<Value>,
    /// Engine configuration (an object, or its JSON text), checked against
    /// the engine's `input_schema`.
    #[schema(value_type = Option<Object>)]
    engine_config: Option<Value>,
}

/// The body of `PUT`/`PATCH .../versions/{agent_version_id}/`: only the
/// name and description change.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON object the handler reads field by field
pub struct AgentVersionUpdateRequest {
    #[schema(min_length = 1)]
    version_name: Option<String>,
    #[schema(min_length = 1)]
    description: Option<String>,
}

/// `?get_supports_eval=true` of a version's answer.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads it with `QueryParams`
pub struct VersionQuery {
    /// Add `supports_eval` (always false: no evaluations here).
    get_supports_eval: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/versions/",
    operation_id = "agents_versions_list",
    tag = "agents",
    summary = "List an agent's versions",
    params(AgentIdParameter),
    responses(
        (status = 200, body = Vec<super::wire::AgentVersion>, description = "Every version, newest first."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<Vec<wire::AgentVersion>>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let versions = state.storage.list_versions(agent.id).await?;
    Ok(Json(
        versions
            .iter()
            .map(|v| wire::agent_version(v, &agent, &state.engines))
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/versions/",
    operation_id = "agents_versions_create",
    tag = "agents",
    summary = "Create a version; it becomes the current one",
    params(AgentIdParameter),
    request_body = AgentVersionCreateRequest,
    responses(
        (status = 201, body = super::wire::AgentVersion, description = "The new version."),
        (status = 400, body = ErrorBody, description = "Invalid fields."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
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

/// `get_supports_eval=true` adds `supports_eval`: whether the engine can be
/// evaluated. Evaluations are not part of this server, so it is `false`.
fn version_body(
    state: &AppState,
    version: &AgentVersion,
    agent: &Agent,
    uri: &Uri,
) -> Result<wire::AgentVersion, ApiError> {
    let params = QueryParams::from_uri(uri);
    params.reject_unknown(&["get_supports_eval"])?;
    let mut body = wire::agent_version(version, agent, &state.engines);
    if params.flag("get_supports_eval")?.unwrap_or(false) {
        body.supports_eval = Some(false);
    }
    Ok(body)
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/versions/{agent_version_id}/",
    operation_id = "agents_versions_retrieve",
    tag = "agents",
    summary = "Get a version",
    params(AgentVersionParameters, VersionQuery),
    responses(
        (status = 200, body = super::wire::AgentVersion, description = "The version."),
        (status = 400, body = ErrorBody, description = "An unknown or invalid query parameter."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
    ),
)]
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<wire::AgentVersion>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    Ok(Json(version_body(&state, &version, &agent, &uri)?))
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/versions/current/",
    operation_id = "agents_versions_current_retrieve",
    tag = "agents",
    summary = "Get the current version",
    params(AgentIdParameter, VersionQuery),
    responses(
        (status = 200, body = super::wire::AgentVersion, description = "The current version."),
        (status = 400, body = ErrorBody, description = "An unknown or invalid query parameter."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    uri: Uri,
) -> Result<Json<wire::AgentVersion>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, agent.current_version_id).await?;
    Ok(Json(version_body(&state, &version, &agent, &uri)?))
}

#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}/versions/{agent_version_id}/",
    operation_id = "agents_versions_update",
    tag = "agents",
    summary = "Rename or describe a version",
    params(AgentVersionParameters),
    request_body = AgentVersionUpdateRequest,
    responses(
        (status = 200, body = super::wire::MessageResponse, description = "Updated."),
        (status = 400, body = ErrorBody, description = "Invalid fields."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
    ),
)]
pub async fn update(
    state: State<Arc<AppState>>,
    caller: Caller,
    ids: Path<(String, String)>,
    body: JsonObject,
) -> Result<Json<wire::MessageResponse>, ApiError> {
    apply_update(state, caller, ids, body).await
}

/// PATCH is PUT here: both change only the fields given.
#[utoipa::path(
    patch,
    path = "/v1/agents/{agent_id}/versions/{agent_version_id}/",
    operation_id = "agents_versions_partial_update",
    tag = "agents",
    summary = "Rename or describe a version",
    params(AgentVersionParameters),
    request_body = AgentVersionUpdateRequest,
    responses(
        (status = 200, body = super::wire::MessageResponse, description = "Updated."),
        (status = 400, body = ErrorBody, description = "Invalid fields."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
    ),
)]
pub async fn partial_update(
    state: State<Arc<AppState>>,
    caller: Caller,
    ids: Path<(String, String)>,
    body: JsonObject,
) -> Result<Json<wire::MessageResponse>, ApiError> {
    apply_update(state, caller, ids, body).await
}

/// PUT and PATCH change only `version_name` and `description`.
async fn apply_update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<wire::MessageResponse>, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    let mut fields = FieldReader::new(&body);
    if let Some(Value::String(description)) = body.get("description") {
        if description.trim().is_empty() {
            fields
                .errors
                .add("description", "This field may not be blank.");
        }
    }
    let (version_name, description) = read_version_texts(&mut fields);
    let update = VersionUpdate {
        version_name,
        description,
    };
    fields.finish()?;
    state
        .storage
        .update_version(agent.id, version.id, update)
        .await?
        .ok_or_else(|| ApiError::NotFound("Agent version not found.".into()))?;
    Ok(Json(wire::MessageResponse {
        message: "Agent version updated successfully.".into(),
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}/versions/{agent_version_id}/",
    operation_id = "agents_versions_destroy",
    tag = "agents",
    summary = "Delete a version that is not the current one",
    params(AgentVersionParameters),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, body = ErrorBody, description = "The version is the agent's current one."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
    ),
)]
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
