//! `/v1/agents/` and `/v1/agents/{agent_id}/`: base agents.

use std::sync::Arc;

use agentd_domain::{Agent, AgentName, AgentVersionId, NewAgent, NewAgentVersion, Operation};
use agentd_storage::{AgentOrdering, AgentQuery, AgentUpdate, TimeRange};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject, QueryParams};
use super::openapi::{AgentIdParameter, ErrorBody};
use super::pagination::PageRequest;
use super::versions::read_new_version;
use super::{load_agent, wire};
use crate::auth::Caller;
use crate::startup::AppState;

/// The query parameters of the agents list, as Roe documents them.
pub(super) const LIST_PARAMETERS: &[&str] = &[
    "page",
    "page_size",
    "ordering",
    "name",
    "search",
    "engine_class_id",
    "exclude_engine_class_id",
    "creator_id",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "most_recent_job_from",
    "most_recent_job_to",
    "job_count_min",
    "job_count_max",
    "include_job_stats",
    "include_untagged",
    "tags",
    "tags_match",
];

/// The agents list's query parameters, for the OpenAPI document (the
/// handler reads them with [`QueryParams`], which also refuses unknown ones).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AgentListParameters {
    /// A page number within the paginated result set.
    page: Option<i64>,
    /// Number of results to return per page (at most 1000).
    page_size: Option<i64>,
    /// Field to order results by, `-` for descending: name, created_at,
    /// updated_at, most_recent_job, job_count, engine_class_id, creator.
    ordering: Option<String>,
    /// Agents whose name contains this (case-insensitive).
    name: Option<String>,
    /// Agents whose name, id, engine or creator contains this.
    search: Option<String>,
    /// Agents of these engines; may repeat.
    engine_class_id: Option<Vec<String>>,
    /// Leave out agents of this engine.
    exclude_engine_class_id: Option<String>,
    /// Agents created by these API keys; may repeat.
    creator_id: Option<Vec<i64>>,
    #[param(format = DateTime)]
    created_from: Option<String>,
    #[param(format = DateTime)]
    created_to: Option<String>,
    #[param(format = DateTime)]
    updated_from: Option<String>,
    #[param(format = DateTime)]
    updated_to: Option<String>,
    #[param(format = DateTime)]
    most_recent_job_from: Option<String>,
    #[param(format = DateTime)]
    most_recent_job_to: Option<String>,
    job_count_min: Option<i64>,
    job_count_max: Option<i64>,
    /// Include job_count and most_recent_job (default true).
    include_job_stats: Option<bool>,
    /// With `tags`: also agents without tags (agents here have none).
    include_untagged: Option<bool>,
    /// Tag ids; agents here carry no tags, so this matches none.
    tags: Option<Vec<String>>,
    /// `any` or `all`.
    tags_match: Option<String>,
}

/// The body of `POST /v1/agents/`: the agent and its first version.
#[derive(ToSchema)]
#[schema(examples(json!({
    "name": "Review summarizer",
    "engine_class_id": "MultimodalExtractionEngine",
    "version_name": "v1",
    "input_definitions": [
        {"key": "text", "data_type": "text/plain", "description": "The review"}
    ],
    "engine_config": {
        "model": "gpt-4.1-2025-04-14",
        "text": "${text}",
        "instruction": "Summarize the review.",
        "output_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}}
        }
    }
})))]
#[allow(dead_code)] // documents the JSON object the handler reads field by field
pub struct BaseAgentCreateRequest {
    /// Name of the agent.
    #[schema(min_length = 1)]
    name: String,
    /// Engine of the agent (see `GET /v1/agents/types/`).
    #[schema(min_length = 1)]
    engine_class_id: String,
    /// Optional: the organization is the API key's; another one is a 403.
    #[schema(format = Uuid)]
    organization_id: Option<String>,
    /// Name of the first version.
    version_name: Option<String>,
    /// Description of the first version.
    description: Option<String>,
    /// Input definitions of the first version (a list, or its JSON text).
    #[schema(value_type = Option<Vec<super::wire::AgentInputDefinition>>)]
    input_definitions: Option<Value>,
    /// Engine configuration of the first version (an object, or its JSON text).
    #[schema(value_type = Option<Object>)]
    engine_config: Option<Value>,
    disable_cache: Option<bool>,
    cache_failed_jobs: Option<bool>,
    /// One of the agent's versions, to become its current version (the one
    /// runs without a version use); an agentd extension Roe does not document.
    #[schema(format = Uuid)]
    current_version_id: Option<String>,
}

/// The body of `PUT`/`PATCH /v1/agents/{agent_id}/`: every field optional.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON object the handler reads field by field
pub struct BaseAgentUpdateRequest {
    /// New name; must not be blank.
    #[schema(min_length = 1)]
    name: Option<String>,
    disable_cache: Option<bool>,
    cache_failed_jobs: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/v1/agents/",
    operation_id = "agents_list",
    tag = "agents",
    summary = "List agents",
    params(AgentListParameters),
    responses(
        (status = 200, body = super::wire::PaginatedBaseAgentList, description = "A page of agents."),
        (status = 400, body = ErrorBody, description = "A filter is invalid or unknown."),
        (status = 404, body = ErrorBody, description = "The page is past the end."),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<wire::PaginatedBaseAgentList>, ApiError> {
    caller.require(Operation::Read)?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(LIST_PARAMETERS)?;
    let first = |name: &str| params.first(name);
    let page = PageRequest::parse(first("page"), first("page_size"))?;
    let ordering = match first("ordering") {
        None => AgentOrdering::default(),
        Some(text) => AgentOrdering::parse(text).ok_or_else(|| {
            ApiError::bad_request_field(
                "ordering",
                format!(
                    "'{text}' is not a valid ordering. Options: name, created_at, updated_at, \
                     most_recent_job, job_count, engine_class_id, creator (prefix '-' for descending)."
                ),
            )
        })?,
    };
    let include_job_stats = params.flag("include_job_stats")?.unwrap_or(true);
    let include_untagged = params.flag("include_untagged")?.unwrap_or(false);
    if let Some(text) = first("tags_match").filter(|t| !matches!(*t, "any" | "all")) {
        return Err(ApiError::bad_request_field(
            "tags_match",
            format!("'{text}' is not one of: any, all."),
        ));
    }
    let query = AgentQuery {
        name: first("name").map(str::to_owned),
        search: first("search").map(str::to_owned),
        engine_class_ids: params.all("engine_class_id"),
        exclude_engine_class_id: first("exclude_engine_class_id").map(str::to_owned),
        only: caller.key.agent_restriction(),
        creator_ids: params.ints("creator_id")?,
        created: TimeRange {
            from: params.time("created_from")?,
            to: params.time("created_to")?,
        },
        updated: TimeRange {
            from: params.time("updated_from")?,
            to: params.time("updated_to")?,
        },
        most_recent_job: TimeRange {
            from: params.time("most_recent_job_from")?,
            to: params.time("most_recent_job_to")?,
        },
        job_count_min: params.int("job_count_min")?,
        job_count_max: params.int("job_count_max")?,
        ordering,
        offset: page.offset(),
        limit: page.page_size,
    };
    // Agents carry no tags here, so a tag filter matches none of them,
    // unless untagged agents are asked for too.
    let tagged_only = !params.all("tags").is_empty() && !include_untagged;
    let found = if tagged_only {
        agentd_storage::Page::empty()
    } else {
        state
            .storage
            .list_agents(caller.organization_id(), &query)
            .await?
    };
    let results = found
        .items
        .iter()
        .map(|agent| {
            let mut body = wire::base_agent(agent, &state.engines);
            if !include_job_stats {
                body.job_count = None;
                body.most_recent_job = None;
            }
            body
        })
        .collect();
    Ok(Json(
        page.respond(found.total, results, &uri, state.public_url())?
            .into(),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/agents/",
    operation_id = "agents_create",
    tag = "agents",
    summary = "Create an agent with its first version",
    request_body = BaseAgentCreateRequest,
    responses(
        (status = 201, body = super::wire::BaseAgent, description = "The agent."),
        (status = 400, body = ErrorBody, description = "Invalid fields, each named with its messages."),
    ),
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_agent_creation()?;
    let mut fields = FieldReader::new(&body);
    caller.check_organization(fields.string("organization_id").as_deref())?;
    let name = fields
        .required_string("name")
        .and_then(|raw| match AgentName::parse(&raw) {
            Ok(name) => Some(name),
            Err(message) => {
                fields.errors.add("name", message);
                None
            }
        });
    let engine = fields.required_string("engine_class_id").and_then(|id| {
        let engine = state.engines.get(&id);
        if engine.is_none() {
            fields.errors.add(
                "engine_class_id",
                format!(
                    "Unknown engine '{id}'. Available: {}.",
                    state.engines.class_ids().join(", ")
                ),
            );
        }
        engine
    });
    let version = engine
        .as_ref()
        .and_then(|engine| read_new_version(&mut fields, engine.as_ref(), &state, caller.key.id));
    let cache_settings = AgentUpdate {
        name: None,
        disable_cache: fields.bool("disable_cache"),
        cache_failed_jobs: fields.bool("cache_failed_jobs"),
        ..AgentUpdate::default()
    };
    fields.finish()?;
    let (Some(name), Some(engine), Some(first_version)) = (name, engine, version) else {
        unreachable!("missing fields were reported as errors");
    };
    let (agent, _) = state
        .storage
        .create_agent(NewAgent {
            organization_id: caller.organization_id(),
            name,
            engine_class_id: engine.class_id().to_owned(),
            creator_key_id: Some(caller.key.id),
            first_version,
        })
        .await?;
    let agent =
        if cache_settings.disable_cache.is_some() || cache_settings.cache_failed_jobs.is_some() {
            state
                .storage
                .update_agent(caller.organization_id(), agent.id, cache_settings)
                .await?
                .ok_or_else(ApiError::agent_not_found)?
        } else {
            agent
        };
    Ok((
        StatusCode::CREATED,
        Json(wire::base_agent(&agent, &state.engines)),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/",
    operation_id = "agents_retrieve",
    tag = "agents",
    summary = "Get an agent",
    params(AgentIdParameter),
    responses(
        (status = 200, body = super::wire::BaseAgent, description = "The agent."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<wire::BaseAgent>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    Ok(Json(wire::base_agent(&agent, &state.engines)))
}

#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}/",
    operation_id = "agents_update",
    tag = "agents",
    summary = "Update an agent",
    params(AgentIdParameter),
    request_body = BaseAgentUpdateRequest,
    responses(
        (status = 200, body = super::wire::BaseAgent, description = "The updated agent."),
        (status = 400, body = ErrorBody, description = "Invalid fields."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn update(
    state: State<Arc<AppState>>,
    caller: Caller,
    agent_id: Path<String>,
    body: JsonObject,
) -> Result<Json<wire::BaseAgent>, ApiError> {
    apply_update(state, caller, agent_id, body).await
}

/// PATCH is PUT here: every field of the update is optional either way.
#[utoipa::path(
    patch,
    path = "/v1/agents/{agent_id}/",
    operation_id = "agents_partial_update",
    tag = "agents",
    summary = "Update some fields of an agent",
    params(AgentIdParameter),
    request_body(content = BaseAgentUpdateRequest, content_type = "application/json"),
    responses(
        (status = 200, body = super::wire::BaseAgent, description = "The updated agent."),
        (status = 400, body = ErrorBody, description = "Invalid fields."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn partial_update(
    state: State<Arc<AppState>>,
    caller: Caller,
    agent_id: Path<String>,
    body: JsonObject,
) -> Result<Json<wire::BaseAgent>, ApiError> {
    apply_update(state, caller, agent_id, body).await
}

async fn apply_update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<wire::BaseAgent>, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let mut fields = FieldReader::new(&body);
    let name = fields
        .non_blank_string("name")
        .and_then(|raw| match AgentName::parse(&raw) {
            Ok(name) => Some(name.into_inner()),
            Err(message) => {
                fields.errors.add("name", message);
                None
            }
        });
    let current_version_id = match fields.non_blank_string("current_version_id") {
        None => None,
        Some(raw) => {
            let found = version_of(&state, &agent, &raw).await?;
            if found.is_none() {
                fields.errors.add(
                    "current_version_id",
                    format!("'{raw}' is not a version of this agent."),
                );
            }
            found
        }
    };
    let update = AgentUpdate {
        name,
        disable_cache: fields.bool("disable_cache"),
        cache_failed_jobs: fields.bool("cache_failed_jobs"),
        current_version_id,
    };
    fields.finish()?;
    let updated = state
        .storage
        .update_agent(caller.organization_id(), agent.id, update)
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    Ok(Json(wire::base_agent(&updated, &state.engines)))
}

/// The id of one of the agent's versions, or `None` when `raw` names none.
async fn version_of(
    state: &AppState,
    agent: &Agent,
    raw: &str,
) -> Result<Option<AgentVersionId>, ApiError> {
    let Ok(id) = raw.parse::<AgentVersionId>() else {
        return Ok(None);
    };
    Ok(state
        .storage
        .get_version(agent.id, id)
        .await?
        .map(|version| version.id))
}

#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}/",
    operation_id = "agents_destroy",
    tag = "agents",
    summary = "Delete an agent with its versions, jobs and files",
    params(AgentIdParameter),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let files = state
        .storage
        .delete_agent(caller.organization_id(), agent.id)
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    // The records are gone; bytes that cannot be removed now are swept later.
    state.files.delete_all(&files).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A new agent with the current version's configuration.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/duplicate/",
    operation_id = "agents_duplicate_create",
    tag = "agents",
    summary = "Copy an agent with its current version",
    params(AgentIdParameter),
    responses(
        (status = 201, body = super::wire::AgentVersion, description = "The copy's first version, with the copy as `base_agent`."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn duplicate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_agent_creation()?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let current = super::versions::load_version(&state, &agent, agent.current_version_id).await?;
    let name = AgentName::parse(&format!("{} (copy)", agent.name))
        .or_else(|_| AgentName::parse(&agent.name))
        .map_err(ApiError::bad_request)?;
    let (copy, version) = state
        .storage
        .create_agent(NewAgent {
            organization_id: caller.organization_id(),
            name,
            engine_class_id: agent.engine_class_id.clone(),
            creator_key_id: Some(caller.key.id),
            first_version: NewAgentVersion {
                version_name: Some(current.version_name.clone()),
                description: current.description.clone(),
                input_definitions: current.input_definitions.clone(),
                engine_config: current.engine_config.clone(),
                creator_key_id: Some(caller.key.id),
            },
        })
        .await?;
    // The cache settings travel with the copy.
    let copy = state
        .storage
        .update_agent(
            caller.organization_id(),
            copy.id,
            AgentUpdate {
                name: None,
                disable_cache: Some(agent.disable_cache),
                cache_failed_jobs: Some(agent.cache_failed_jobs),
                ..AgentUpdate::default()
            },
        )
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    Ok((
        StatusCode::CREATED,
        Json(wire::agent_version(&version, &copy, &state.engines)),
    ))
}
