//! Run endpoints. Every run is stored as a job and executed by the worker
//! pool; synchronous runs wait for the job, asynchronous ones return its id.
//!
//! - `POST /v1/agents/run/{agent_id}/` (and `.../versions/{agent_version_id}/`): sync
//! - `.../async/`: the job id
//! - `/v1/agents/run/{agent_id}/async/many/`: up to 1000 job ids, in order

use std::sync::Arc;

use agentd_domain::{
    Agent, AgentDatum, AgentVersion, AgentVersionId, FailureKind, Job, JobId, JobStatus, Operation,
};
use agentd_storage::{Created, IdempotencyKey};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject};
use super::load_agent;
use super::openapi::{AgentIdParameter, AgentVersionParameters, ErrorBody};
use super::run_body::{AgentExecutionForm, AgentExecutionRequest, RunBody, RunRequest};
use super::submit::{
    check_credits, check_metadata_size, check_url_input_count, prepare_job, request_hash,
    PreparedJob, RunOptions,
};
use super::versions::{load_version, parse_version_id};
use crate::auth::Caller;
use crate::startup::AppState;
use crate::worker::wait_until_final;

pub const MAX_BATCH: usize = 1000;

/// The agent and the version a run path names.
async fn target(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    version_id: Option<&str>,
) -> Result<(Agent, AgentVersion), ApiError> {
    caller.require(Operation::Run)?;
    let agent = load_agent(state, caller, agent_id).await?;
    let version_id: AgentVersionId = match version_id {
        Some(raw) => parse_version_id(raw)?,
        None => agent.current_version_id,
    };
    let version = load_version(state, &agent, version_id).await?;
    Ok((agent, version))
}

/// Stores one run of an agent as a job: the version the path names (the
/// current one by default), inputs from `body`. The run endpoints and the
/// MCP tools submit through here, so both follow the same rules.
pub(crate) async fn submit_run(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    version_id: Option<&str>,
    body: RunBody,
    options: &RunOptions,
) -> Result<JobId, ApiError> {
    let (agent, version) = target(state, caller, agent_id, version_id).await?;
    let request = body.into_request(&version.input_definitions)?;
    submit_one(state, caller, &agent, &version, request, options).await
}

async fn submit_one(
    state: &AppState,
    caller: &Caller,
    agent: &Agent,
    version: &AgentVersion,
    request: RunRequest,
    options: &RunOptions,
) -> Result<JobId, ApiError> {
    check_credits(state, caller).await?;
    check_url_input_count(state, &version.input_definitions, [&request])?;
    let PreparedJob { mut job, staged } =
        prepare_job(state, caller, agent, version, request, options).await?;
    job.idempotency_key = options.idempotency_key.clone().map(|key| IdempotencyKey {
        request_hash: request_hash(&job),
        key,
    });
    let queued = job.cached.is_none();
    // An earlier job with the same idempotency key keeps its own files;
    // the files staged here are dropped (removed) unless a job was created.
    match state.storage.create_job(job).await? {
        Created::New(id) => {
            PreparedJob::stored(staged);
            if queued {
                state.signals.job_enqueued();
            }
            Ok(id)
        }
        Created::Existing(id) => Ok(id),
        Created::KeyReused(first) => Err(key_reused(
            options.idempotency_key.as_deref().unwrap_or_default(),
            first,
        )),
    }
}

/// 422: the key was used within 24 h for a different request.
fn key_reused(key: &str, first: JobId) -> ApiError {
    ApiError::UnprocessableEntity(format!(
        "Idempotency-Key '{key}' was already used for a different request (job {first}) \
         within the last 24 hours; use a new key for a new request."
    ))
}

/// The headers a run reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header, names("X-Skip-Cache", "Idempotency-Key"))]
#[allow(dead_code)] // documents the headers; `RunOptions::from_headers` reads them
pub struct RunHeaders(
    /// `true`: run even when a cached result exists.
    Option<bool>,
    /// Asynchronous runs only: the same key (within 24 h) answers the same
    /// job instead of running again; at most 255 characters.
    Option<String>,
);

/// A job's id.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Uuid)]
#[allow(dead_code)] // documents the answer; the handler answers a `JobId`
pub struct JobIdResponse(String);

#[utoipa::path(
    post,
    path = "/v1/agents/run/{agent_id}/",
    operation_id = "agents_run",
    tag = "agents",
    summary = "Run an agent and wait for its outputs",
    params(AgentIdParameter, RunHeaders),
    request_body(content(
        (AgentExecutionRequest = "application/json"),
        (AgentExecutionForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = Vec<super::wire::AgentDatumSchema>, description = "The job's outputs."),
        (status = 400, body = ErrorBody, description = "Invalid inputs or metadata, each named with its messages."),
        (status = 402, body = ErrorBody, description = "The organization's credits are spent."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
        (status = 415, body = ErrorBody, description = "The body is neither JSON nor a form."),
        (status = 409, body = ErrorBody, description = "The job was cancelled while it ran."),
        (status = 502, body = ErrorBody, description = "The model provider failed."),
        (status = 504, body = ErrorBody, description = "The run takes longer than AGENTD_SYNC_TIMEOUT_SECS: it goes on as the job in `job_id` (and the `X-Job-Id` header)."),
    ),
)]
pub async fn run_sync(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    sync(&state, &caller, &agent_id, None, &headers, body).await
}

#[utoipa::path(
    post,
    path = "/v1/agents/run/{agent_id}/versions/{agent_version_id}/",
    operation_id = "agents_run_version",
    tag = "agents",
    summary = "Run a version of an agent and wait for its outputs",
    params(AgentVersionParameters, RunHeaders),
    request_body(content(
        (AgentExecutionRequest = "application/json"),
        (AgentExecutionForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = Vec<super::wire::AgentDatumSchema>, description = "The job's outputs."),
        (status = 400, body = ErrorBody, description = "Invalid inputs or metadata, each named with its messages."),
        (status = 402, body = ErrorBody, description = "The organization's credits are spent."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
        (status = 415, body = ErrorBody, description = "The body is neither JSON nor a form."),
        (status = 409, body = ErrorBody, description = "The job was cancelled while it ran."),
        (status = 502, body = ErrorBody, description = "The model provider failed."),
        (status = 504, body = ErrorBody, description = "The run takes longer than AGENTD_SYNC_TIMEOUT_SECS: it goes on as the job in `job_id` (and the `X-Job-Id` header)."),
    ),
)]
pub async fn run_version_sync(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    sync(
        &state,
        &caller,
        &agent_id,
        Some(&version_id),
        &headers,
        body,
    )
    .await
}

async fn sync(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    version_id: Option<&str>,
    headers: &HeaderMap,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    let options = RunOptions {
        awaited: true,
        ..RunOptions::from_headers(headers, false)?
    };
    let job_id = submit_run(state, caller, agent_id, version_id, body, &options).await?;
    let timeout = state.config.sync_timeout();
    match wait_until_final(
        state.storage.as_ref(),
        &state.signals,
        caller.organization_id(),
        job_id,
        timeout,
    )
    .await?
    {
        Some(job) => sync_response(job),
        None => Err(ApiError::GatewayTimeout {
            job_id,
            message: format!(
                "The run takes longer than {} s; it continues as job {job_id}.",
                timeout.as_secs()
            ),
        }),
    }
}

fn sync_response(job: Job) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    let message = job.error_message.clone().unwrap_or_default();
    match (job.status, job.outputs) {
        (JobStatus::Success | JobStatus::Cached, Some(outputs)) => Ok(Json(outputs)),
        (JobStatus::Cancelled, _) => {
            Err(ApiError::Conflict(format!("Job {} was cancelled.", job.id)))
        }
        _ => Err(match job.error_kind {
            Some(FailureKind::Invalid) => ApiError::bad_request(message),
            Some(FailureKind::Upstream) => {
                ApiError::BadGateway(format!("Model provider failed: {message}"))
            }
            _ => ApiError::Internal(anyhow::anyhow!("job {} failed: {message}", job.id)),
        }),
    }
}

#[utoipa::path(
    post,
    path = "/v1/agents/run/{agent_id}/async/",
    operation_id = "agents_run_async_create",
    tag = "agents",
    summary = "Start a run; answers the job's id",
    params(AgentIdParameter, RunHeaders),
    request_body(content(
        (AgentExecutionRequest = "application/json"),
        (AgentExecutionForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = JobIdResponse, description = "The job's id."),
        (status = 400, body = ErrorBody, description = "Invalid inputs or metadata, each named with its messages."),
        (status = 402, body = ErrorBody, description = "The organization's credits are spent."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
        (status = 415, body = ErrorBody, description = "The body is neither JSON nor a form."),
        (status = 422, body = ErrorBody, description = "The Idempotency-Key was used for a different request within 24 hours."),
    ),
)]
pub async fn run_async(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    body: RunBody,
) -> Result<Json<JobId>, ApiError> {
    run_async_inner(&state, &caller, &agent_id, None, &headers, body).await
}

#[utoipa::path(
    post,
    path = "/v1/agents/run/{agent_id}/versions/{agent_version_id}/async/",
    operation_id = "agents_run_versions_async_create",
    tag = "agents",
    summary = "Start a run of a version; answers the job's id",
    params(AgentVersionParameters, RunHeaders),
    request_body(content(
        (AgentExecutionRequest = "application/json"),
        (AgentExecutionForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, body = JobIdResponse, description = "The job's id."),
        (status = 400, body = ErrorBody, description = "Invalid inputs or metadata, each named with its messages."),
        (status = 402, body = ErrorBody, description = "The organization's credits are spent."),
        (status = 404, body = ErrorBody, description = "No such agent or version."),
        (status = 415, body = ErrorBody, description = "The body is neither JSON nor a form."),
        (status = 422, body = ErrorBody, description = "The Idempotency-Key was used for a different request within 24 hours."),
    ),
)]
pub async fn run_version_async(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: RunBody,
) -> Result<Json<JobId>, ApiError> {
    run_async_inner(
        &state,
        &caller,
        &agent_id,
        Some(&version_id),
        &headers,
        body,
    )
    .await
}

async fn run_async_inner(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    version_id: Option<&str>,
    headers: &HeaderMap,
    body: RunBody,
) -> Result<Json<JobId>, ApiError> {
    let options = RunOptions::from_headers(headers, true)?;
    let job_id = submit_run(state, caller, agent_id, version_id, body, &options).await?;
    Ok(Json(job_id))
}

/// The body of a batch run.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the JSON object the handler reads
pub struct AgentRunAsyncManyRequest {
    /// 1 to 1000 input sets, each as a JSON run body (their own `metadata` is ignored).
    #[schema(min_items = 1, max_items = 1000)]
    inputs: Vec<AgentExecutionRequest>,
    /// Stored on every job of the batch.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// `{"inputs": [{...}, ...], "metadata": {...}}`: the top-level metadata
/// applies to every job (so the per-job cap bounds it); per-item metadata is
/// ignored, as in Roe. All or nothing: one refused input set refuses the
/// batch, and the files the others brought are removed.
///
/// With `Idempotency-Key: K`, input set `i` carries the key `K#i`: sending
/// the same batch again with the same key answers the same job ids and runs
/// nothing twice (what `agentd run-many` relies on to resume).
#[utoipa::path(
    post,
    path = "/v1/agents/run/{agent_id}/async/many/",
    operation_id = "agents_run_async_many",
    tag = "agents",
    summary = "Start up to 1000 runs; answers their job ids in order",
    params(AgentIdParameter, RunHeaders),
    request_body = AgentRunAsyncManyRequest,
    responses(
        (status = 200, body = Vec<JobIdResponse>, description = "The job ids, in the order of `inputs`."),
        (status = 400, body = ErrorBody, description = "An input set is invalid (named `inputs[i]...`); none was started."),
        (status = 402, body = ErrorBody, description = "The organization's credits are spent."),
        (status = 404, body = ErrorBody, description = "No such agent."),
        (status = 422, body = ErrorBody, description = "The Idempotency-Key was used for a different request within 24 hours."),
    ),
)]
pub async fn run_async_many(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Json<Vec<JobId>>, ApiError> {
    let (agent, version) = target(&state, &caller, &agent_id, None).await?;
    let mut fields = FieldReader::new(&body);
    caller.check_organization(fields.string("organization_id").as_deref())?;
    let metadata = fields.json("metadata");
    fields.finish()?;
    // Checked once here, not once per input set.
    if let Some(metadata) = &metadata {
        check_metadata_size(metadata, state.config.max_metadata_bytes)?;
    }
    let items = match body.get("inputs") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_BATCH => items,
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::bad_request_field(
                "inputs",
                "At least one input set is required.",
            ))
        }
        Some(Value::Array(items)) => {
            return Err(ApiError::bad_request_field(
                "inputs",
                format!(
                    "At most {MAX_BATCH} input sets per request, got {}.",
                    items.len()
                ),
            ))
        }
        _ => {
            return Err(ApiError::bad_request_field(
                "inputs",
                "Must be a list of input objects.",
            ))
        }
    };
    let options = RunOptions::from_headers(&headers, true)?;
    check_credits(&state, &caller).await?;
    let requests: Vec<Result<RunRequest, ApiError>> = items
        .iter()
        .map(|item| batch_item_request(item, metadata.as_ref(), &version))
        .collect();
    check_url_input_count(
        &state,
        &version.input_definitions,
        requests.iter().flatten(),
    )?;
    let mut jobs = Vec::with_capacity(items.len());
    // Files of each input set, removed if any input set is refused or the
    // set's idempotency key names an earlier job.
    let mut staged = Vec::with_capacity(items.len());
    let mut errors = agentd_domain::FieldErrors::default();
    for (index, request) in requests.into_iter().enumerate() {
        let prepared = match request {
            Ok(request) => prepare_job(&state, &caller, &agent, &version, request, &options).await,
            Err(error) => Err(error),
        };
        match prepared {
            Ok(mut prepared) => {
                prepared.job.idempotency_key =
                    options.idempotency_key.as_ref().map(|key| IdempotencyKey {
                        request_hash: request_hash(&prepared.job),
                        key: format!("{key}#{index}"),
                    });
                jobs.push(prepared.job);
                staged.push(prepared.staged);
            }
            Err(ApiError::BadRequest {
                errors: Some(item_errors),
                ..
            }) => errors.merge(item_errors.prefixed(&format!("inputs[{index}]"))),
            Err(ApiError::BadRequest { message, .. }) => {
                errors.add(format!("inputs[{index}]"), message)
            }
            Err(other) => return Err(other),
        }
    }
    errors.into_result().map_err(ApiError::from)?;
    let queued: Vec<bool> = jobs.iter().map(|job| job.cached.is_none()).collect();
    let created = state.storage.create_jobs(jobs).await?;
    if let Some(Created::KeyReused(first)) = created.first() {
        return Err(key_reused(
            options.idempotency_key.as_deref().unwrap_or_default(),
            *first,
        ));
    }
    let mut enqueued = false;
    for ((created, files), queued) in created.iter().zip(staged).zip(queued) {
        if let Created::New(_) = created {
            PreparedJob::stored(files);
            enqueued |= queued;
        }
    }
    if enqueued {
        state.signals.job_enqueued();
    }
    Ok(Json(created.into_iter().map(Created::job_id).collect()))
}

/// One item of a batch as a run request, with the batch's metadata.
fn batch_item_request(
    item: &Value,
    metadata: Option<&Value>,
    version: &AgentVersion,
) -> Result<RunRequest, ApiError> {
    let Value::Object(item) = item else {
        return Err(ApiError::bad_request("Must be an object of input values."));
    };
    let mut item: Map<String, Value> = item.clone();
    item.remove("metadata");
    if let Some(metadata) = metadata {
        item.insert("metadata".into(), metadata.clone());
    }
    RunBody::json(item).into_request(&version.input_definitions)
}
