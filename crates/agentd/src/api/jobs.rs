//! The jobs half of the API: status and result of one job, bulk statuses
//! and results, an agent's job list, cancellation and data deletion.

use std::sync::Arc;

use std::collections::HashMap;

use agentd_domain::{AgentId, Job, JobId, JobStatus, Operation, OrganizationId};
use agentd_storage::{DeleteData, JobOrderField, JobQuery, StorageError};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{JsonObject, QueryParams};
use super::openapi::{AgentIdParameter, AgentJobIdParameter, ErrorBody, JobIdParameter};
use super::pagination::PageRequest;
use super::runs::MAX_BATCH;
use super::{load_agent, wire};
use crate::auth::Caller;
use crate::startup::AppState;

fn job_not_found() -> ApiError {
    ApiError::NotFound("Agent job not found.".into())
}

/// A job of the caller's organization that the key may see.
pub(super) async fn load_job(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Job, ApiError> {
    let id: JobId = raw_id.parse().map_err(|_| job_not_found())?;
    let job = state
        .storage
        .get_job(caller.organization_id(), id)
        .await?
        .ok_or_else(job_not_found)?;
    if !caller.key.may_access_agent(&job.agent_id) {
        return Err(ApiError::Forbidden(
            "This API key does not have access to this agent job.".into(),
        ));
    }
    Ok(job)
}

#[utoipa::path(
    get,
    path = "/v1/agents/jobs/{job_id}/status/",
    operation_id = "agents_jobs_status_retrieve",
    tag = "agents",
    summary = "Get a job's status",
    params(JobIdParameter),
    responses(
        (status = 200, body = super::wire::AgentJobSingleStatus, description = "The status."),
        (status = 404, body = ErrorBody, description = "No such job."),
    ),
)]
pub async fn status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<wire::AgentJobSingleStatus>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let job = load_job(&state, &caller, &job_id).await?;
    Ok(Json(wire::job_status(&job)))
}

/// The result of a finished job; 404 while it runs, as in Roe.
#[utoipa::path(
    get,
    path = "/v1/agents/jobs/{agent_job_id}/result/",
    operation_id = "agents_jobs_result_retrieve",
    tag = "agents",
    summary = "Get a finished job's result",
    params(AgentJobIdParameter),
    responses(
        (status = 200, body = super::wire::AgentJobResultResponse, description = "The result."),
        (status = 404, body = ErrorBody, description = "No such job, or it has not finished yet."),
    ),
)]
pub async fn result(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<wire::AgentJobResultResponse>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let job = load_job(&state, &caller, &job_id).await?;
    if !job.status.is_final() {
        return Err(ApiError::NotFound(format!(
            "Agent job {} has not finished yet (status {}).",
            job.id,
            job.status.name()
        )));
    }
    Ok(Json(wire::job_result(&job)))
}

/// `{"job_ids": [...]}`: at most 1000 UUIDs; answers in the order asked.
fn read_job_ids(body: &serde_json::Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::bad_request_field("job_ids", "Must be a non-empty list of job ids.");
    let Some(Value::Array(items)) = body.get("job_ids") else {
        return Err(invalid());
    };
    if items.is_empty() {
        return Err(invalid());
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::bad_request_field(
            "job_ids",
            format!(
                "At most {MAX_BATCH} job ids per request, got {}.",
                items.len()
            ),
        ));
    }
    let mut errors = agentd_domain::FieldErrors::default();
    for (index, item) in items.iter().enumerate() {
        if item.as_str().is_none_or(|id| id.parse::<JobId>().is_err()) {
            let shown: String = item.to_string().chars().take(60).collect();
            errors.add(
                "job_ids",
                format!("job_ids[{index}]: {shown} is not a valid UUID."),
            );
        }
    }
    errors.into_result()?;
    Ok(items
        .iter()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect())
}

/// Answers a bulk request in the order asked, with `missing` for ids that
/// are unknown, malformed or not visible to the key.
fn in_order<T, R>(
    caller: &Caller,
    ids: &[String],
    items: &[T],
    identity: impl Fn(&T) -> (JobId, AgentId),
    found: impl Fn(&T) -> R,
    missing: fn(&str) -> R,
) -> Json<Vec<R>> {
    let by_id: HashMap<JobId, &T> = items
        .iter()
        .filter(|item| caller.key.may_access_agent(&identity(item).1))
        .map(|item| (identity(item).0, item))
        .collect();
    Json(
        ids.iter()
            .map(|raw| {
                raw.parse::<JobId>()
                    .ok()
                    .and_then(|id| by_id.get(&id))
                    .map_or_else(|| missing(raw), |item| found(item))
            })
            .collect(),
    )
}

fn parsed_ids(ids: &[String]) -> Vec<JobId> {
    ids.iter().filter_map(|id| id.parse().ok()).collect()
}

/// The body of the bulk statuses and results: `{"job_ids": [...]}`.
#[derive(ToSchema)]
#[schema(examples(json!({"job_ids": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"]})))]
#[allow(dead_code)] // documents the JSON object `read_job_ids` reads
pub struct JobIdsRequest {
    /// 1 to 1000 job ids; answered in this order.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<String>, format = Uuid)]
    job_ids: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/agents/jobs/statuses/",
    operation_id = "agents_jobs_statuses_create",
    tag = "agents",
    summary = "Get the statuses of many jobs",
    request_body(content = JobIdsRequest, description = "`AgentJobStatusManyRequest` in Roe's terms."),
    responses(
        (status = 200, body = Vec<super::wire::AgentJobStatus>, description = "One status per id, in order; unknown ids have only `id` and `error_message`."),
        (status = 400, body = ErrorBody, description = "`job_ids` is missing, empty, too long or holds a malformed id."),
    ),
)]
pub async fn statuses(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Vec<wire::AgentJobStatus>>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let ids = read_job_ids(&body)?;
    let summaries = state
        .storage
        .get_job_summaries(caller.organization_id(), &parsed_ids(&ids))
        .await?;
    Ok(in_order(
        &caller,
        &ids,
        &summaries,
        |s| (s.id, s.agent_id),
        wire::job_status_item,
        wire::missing_job_status,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/agents/jobs/results/",
    operation_id = "agents_jobs_results_create",
    tag = "agents",
    summary = "Get the results of many jobs",
    request_body(content = JobIdsRequest, description = "`AgentJobResultManyRequest` in Roe's terms."),
    responses(
        (status = 200, body = Vec<super::wire::AgentJobResultItem>, description = "One result per id, in order; unknown ids have only `id` and `error_message`."),
        (status = 400, body = ErrorBody, description = "`job_ids` is missing, empty, too long or holds a malformed id."),
    ),
)]
pub async fn results(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Vec<wire::AgentJobResultItem>>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let ids = read_job_ids(&body)?;
    let jobs = state
        .storage
        .get_jobs(caller.organization_id(), &parsed_ids(&ids))
        .await?;
    Ok(in_order(
        &caller,
        &ids,
        &jobs,
        |j| (j.id, j.agent_id),
        wire::job_result_item,
        wire::missing_job_result,
    ))
}

fn parse_ordering(text: &str) -> Result<(JobOrderField, bool), ApiError> {
    let (descending, name) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let field = match name {
        "id" => JobOrderField::Id,
        "agent_version_name" => JobOrderField::AgentVersionName,
        "status_code" => JobOrderField::StatusCode,
        "created_at" => JobOrderField::CreatedAt,
        "last_updated_at" => JobOrderField::LastUpdatedAt,
        "cost" => JobOrderField::Cost,
        "duration" => JobOrderField::Duration,
        "grader_score" => JobOrderField::GraderScore,
        _ => {
            return Err(ApiError::bad_request_field(
                "ordering",
                format!(
                    "'{text}' is not supported. Options: id, agent_version_name, status_code, \
                     created_at, last_updated_at, cost, duration, grader_score \
                     (prefix '-' for descending)."
                ),
            ))
        }
    };
    Ok((field, descending))
}

/// `ordering=a,-b` (and repeated `ordering`): sort keys in order.
fn parse_orderings(params: &QueryParams) -> Result<Vec<(JobOrderField, bool)>, ApiError> {
    params
        .all("ordering")
        .iter()
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(parse_ordering)
        .collect()
}

fn parse_statuses(text: &str) -> Result<Vec<JobStatus>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|code| {
            code.parse::<i64>()
                .ok()
                .and_then(JobStatus::from_code)
                .ok_or_else(|| {
                    ApiError::bad_request_field(
                        "status_code",
                        format!("'{code}' is not a status code (0-6)."),
                    )
                })
        })
        .collect()
}

fn parse_metadata_filter(text: &str) -> Result<Vec<(String, Value)>, ApiError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
        _ => Err(ApiError::bad_request_field(
            "metadata",
            "Must be a JSON object, e.g. {\"batch\": \"7\"}.",
        )),
    }
}

/// The query parameters of an agent's job list: Roe's, and `review_state`
/// which the SDK may send.
pub(super) const LIST_PARAMETERS: &[&str] = &[
    "page",
    "page_size",
    "ordering",
    "status_code",
    "version_name",
    "metadata",
    "created_from",
    "created_to",
    "search",
    "job_id",
    "job_inputs",
    "exclude_metadata",
    "limit",
    "semantic_string",
    "verdict",
    "review_state",
];

/// Roe's default cap on the jobs a list considers and counts.
const DEFAULT_LIST_LIMIT: i64 = 100_000;
const MAX_LIST_LIMIT: i64 = 1_000_000;

/// The job list's query parameters, for the OpenAPI document (the handler
/// reads them with [`QueryParams`], which also refuses unknown ones).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct JobListParameters {
    /// A page number within the paginated result set.
    page: Option<i64>,
    /// Number of results to return per page (at most 1000).
    page_size: Option<i64>,
    /// Sort keys, comma-separated, `-` for descending: id,
    /// agent_version_name, status_code, created_at, last_updated_at, cost,
    /// duration, grader_score.
    ordering: Option<String>,
    /// Status codes, comma-separated (0-6).
    status_code: Option<String>,
    /// Jobs of versions with this name.
    version_name: Option<String>,
    /// A JSON object: jobs whose metadata has these keys and values.
    metadata: Option<String>,
    #[param(format = DateTime)]
    created_from: Option<String>,
    #[param(format = DateTime)]
    created_to: Option<String>,
    /// Jobs whose id, inputs or version name contain this.
    search: Option<String>,
    /// Jobs whose id contains this.
    job_id: Option<String>,
    /// Jobs whose inputs contain this.
    job_inputs: Option<String>,
    /// Leave `metadata` out of each job.
    exclude_metadata: Option<bool>,
    /// Consider at most this many jobs, newest first (default 100000, 0: all).
    limit: Option<i64>,
    /// Not available here: a 400 says so.
    semantic_string: Option<String>,
    /// Jobs are never graded here: any verdict matches none.
    verdict: Option<String>,
    /// Jobs are never reviewed here: only `unreviewed` matches them.
    review_state: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/jobs/",
    operation_id = "agents_jobs_list",
    tag = "agents",
    summary = "List an agent's jobs",
    params(AgentIdParameter, JobListParameters),
    responses(
        (status = 200, body = super::wire::PaginatedListAgentJobList, description = "A page of jobs."),
        (status = 400, body = ErrorBody, description = "A filter is invalid or unknown."),
        (status = 404, body = ErrorBody, description = "No such agent, or the page is past the end."),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    uri: Uri,
) -> Result<Json<wire::PaginatedListAgentJobList>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(LIST_PARAMETERS)?;
    let first = |name: &str| params.first(name);
    if first("semantic_string").is_some() {
        return Err(ApiError::bad_request_field(
            "semantic_string",
            "Semantic search over jobs is not available on this server; use 'search'.",
        ));
    }
    let page = PageRequest::parse(first("page"), first("page_size"))?;
    // Jobs are considered up to `limit` (0: no cap), newest first as Roe does.
    let cap = match params.int("limit")?.unwrap_or(DEFAULT_LIST_LIMIT) {
        0 => None,
        n @ 1..=MAX_LIST_LIMIT => Some(n),
        n => {
            return Err(ApiError::bad_request_field(
                "limit",
                format!("Must be between 0 and {MAX_LIST_LIMIT}, got {n}."),
            ))
        }
    };
    let exclude_metadata = params.flag("exclude_metadata")?.unwrap_or(false);
    // Jobs here are never reviewed or graded: those filters match all
    // jobs ("unreviewed") or none.
    let matches_none = first("verdict").is_some()
        || first("review_state").is_some_and(|state| state != "unreviewed");
    let query = JobQuery {
        statuses: first("status_code")
            .map(parse_statuses)
            .transpose()?
            .unwrap_or_default(),
        version_name: first("version_name").map(str::to_owned),
        metadata: first("metadata")
            .map(parse_metadata_filter)
            .transpose()?
            .unwrap_or_default(),
        created_from: params.time("created_from")?,
        created_to: params.time("created_to")?,
        search: first("search").map(str::to_owned),
        job_id: first("job_id").map(str::to_owned),
        job_inputs: first("job_inputs").map(str::to_owned),
        order_by: parse_orderings(&params)?,
        offset: page.offset(),
        limit: cap.map_or(page.page_size, |cap| {
            page.page_size.min(cap.saturating_sub(page.offset()).max(0))
        }),
        count_cap: cap,
    };
    let found = if matches_none {
        agentd_storage::Page::empty()
    } else {
        state
            .storage
            .list_jobs(caller.organization_id(), agent.id, &query)
            .await?
    };
    let results = found
        .items
        .iter()
        .map(|job| {
            let mut body = wire::list_agent_job(job);
            if exclude_metadata {
                body.metadata = None;
            }
            body
        })
        .collect();
    Ok(Json(
        page.respond(found.total, results, &uri, state.public_url())?
            .into(),
    ))
}

/// A cancel that came too late: the job had already finished.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobNotCancelled {
    pub message: String,
    /// The job's final status code.
    pub status: i16,
    /// Always false.
    pub cancelled: bool,
}

/// 204 when the job is cancelled. A job that had already finished stays as
/// it was: 200 with a message saying so (and its status), so a client that
/// cancels late learns it without an error.
#[utoipa::path(
    post,
    path = "/v1/agents/jobs/{job_id}/cancel/",
    operation_id = "agents_jobs_cancel_create",
    tag = "agents",
    summary = "Cancel a job",
    params(JobIdParameter),
    responses(
        (status = 204, description = "Cancelled."),
        (status = 200, body = AgentJobNotCancelled, description = "The job had already finished; nothing changed."),
        (status = 404, body = ErrorBody, description = "No such job."),
    ),
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Operation::Run)?;
    let job = load_job(&state, &caller, &job_id).await?;
    let after = cancel_job(&state, caller.organization_id(), job.id)
        .await?
        .ok_or_else(job_not_found)?;
    if job.status.is_final() || after != JobStatus::Cancelled {
        let status = if job.status.is_final() {
            job.status
        } else {
            after
        };
        let message = format!(
            "Agent job {} had already finished with status {}; it was not cancelled.",
            job.id,
            status.name()
        );
        return Ok(Json(AgentJobNotCancelled {
            message,
            status: status.code(),
            cancelled: false,
        })
        .into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Marks a job CANCELLED unless it is final, and stops it if this process
/// runs it; returns its status after, `None` when there is no such job.
pub(crate) async fn cancel_job(
    state: &AppState,
    organization_id: OrganizationId,
    job_id: JobId,
) -> Result<Option<JobStatus>, StorageError> {
    let after = state.storage.cancel_job(organization_id, job_id).await?;
    if after == Some(JobStatus::Cancelled) {
        state.signals.cancel(job_id);
    }
    Ok(after)
}

/// What `cancel-all` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobCancelAllResponse {
    /// Always null: the jobs are cancelled before the answer.
    #[schema(required = true)]
    pub task_id: Option<String>,
    /// How many unfinished jobs were cancelled.
    pub targeted_count: usize,
    pub note: String,
}

#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/jobs/cancel-all/",
    operation_id = "agents_jobs_cancel_all_create",
    tag = "agents",
    summary = "Cancel every unfinished job of an agent",
    params(AgentIdParameter),
    responses(
        (status = 200, body = AgentJobCancelAllResponse, description = "What was cancelled."),
        (status = 404, body = ErrorBody, description = "No such agent."),
    ),
)]
pub async fn cancel_all(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<Json<AgentJobCancelAllResponse>, ApiError> {
    caller.require(Operation::Run)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let cancelled = state
        .storage
        .cancel_agent_jobs(caller.organization_id(), agent.id)
        .await?;
    for id in &cancelled {
        state.signals.cancel(*id);
    }
    Ok(Json(AgentJobCancelAllResponse {
        task_id: None,
        targeted_count: cancelled.len(),
        note: format!(
            "Cancelled {} unfinished job(s) of agent {}.",
            cancelled.len(),
            agent.id
        ),
    }))
}

/// What `delete-data` removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobDeleteDataResponse {
    /// `success`, or `partial_success` when some files are left to the sweep.
    pub status: String,
    /// Input files removed.
    pub deleted_count: usize,
    /// Input files that could not be removed yet (the sweep removes them).
    pub failed_count: usize,
    /// Always true: inputs and outputs are erased.
    pub blob_sanitized: bool,
    /// References and artifacts the job's engine saved, removed.
    pub artifacts_deleted_count: usize,
    /// References and artifacts that could not be removed yet (the sweep
    /// removes them).
    pub artifacts_failed_count: usize,
    /// One line per file or artifact not removed yet; null when none.
    #[schema(required = true)]
    pub errors: Option<Vec<String>>,
}

/// Erases inputs, outputs and stored files of a finished job (files that
/// other jobs still refer to stay for them); its status, tokens and cost remain.
#[utoipa::path(
    post,
    path = "/v1/agents/jobs/{job_id}/delete-data/",
    operation_id = "agents_jobs_delete_data_create",
    tag = "agents",
    summary = "Erase a finished job's inputs, outputs and files",
    params(JobIdParameter),
    responses(
        (status = 200, body = AgentJobDeleteDataResponse, description = "What was removed."),
        (status = 400, body = ErrorBody, description = "The job has not finished."),
        (status = 404, body = ErrorBody, description = "No such job."),
    ),
)]
pub async fn delete_data(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Json<AgentJobDeleteDataResponse>, ApiError> {
    caller.require(Operation::Write)?;
    let job = load_job(&state, &caller, &job_id).await?;
    let (files, references, artifacts) = match state
        .storage
        .delete_job_data(caller.organization_id(), job.id)
        .await?
    {
        DeleteData::NotFound => return Err(job_not_found()),
        DeleteData::NotFinal => {
            return Err(ApiError::bad_request(
                "The job has not finished; cancel it or wait before deleting its data.",
            ))
        }
        DeleteData::Deleted {
            files,
            references,
            artifacts,
        } => (files, references, artifacts),
    };
    // Files other jobs still refer to were kept. Bytes that cannot be
    // removed now have no record any more: the sweep removes them later.
    let mut errors = Vec::new();
    let deleted = remove_bytes(&state, &files, "file", &mut errors).await;
    // References (derived files) and artifacts are the job's workflow artifacts.
    let saved: Vec<_> = references.into_iter().chain(artifacts).collect();
    let artifacts_deleted = remove_bytes(&state, &saved, "artifact", &mut errors).await;
    Ok(Json(AgentJobDeleteDataResponse {
        status: if errors.is_empty() {
            "success"
        } else {
            "partial_success"
        }
        .into(),
        deleted_count: deleted,
        failed_count: files.len() - deleted,
        blob_sanitized: true,
        artifacts_deleted_count: artifacts_deleted,
        artifacts_failed_count: saved.len() - artifacts_deleted,
        errors: (!errors.is_empty()).then_some(errors),
    }))
}

/// Removes the bytes of files whose records are gone; returns how many went
/// and adds a line to `errors` for each that did not (`what` names its kind).
async fn remove_bytes(
    state: &AppState,
    ids: &[agentd_domain::FileId],
    what: &str,
    errors: &mut Vec<String>,
) -> usize {
    let failed = state.files.delete_all(ids).await;
    for (file, _) in &failed {
        errors.push(format!(
            "{what} {file}: could not be removed yet; it will be swept."
        ));
    }
    ids.len() - failed.len()
}
