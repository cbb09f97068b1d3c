//! Turning a run request into a job: credits, input checks, stored files,
//! the result cache.

use agentd_domain::input::{check_inputs, count_url_inputs};
use agentd_domain::{
    Agent, AgentDatum, AgentVersion, CheckedInput, FileRef, FileSource, InputDefinition, JobId,
    JobInput,
};
use agentd_storage::{CachedResult, JobFile, NewJob};
use axum::http::HeaderMap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::run_body::RunRequest;
use crate::auth::Caller;
use crate::files::{FileError, StagedFile};
use crate::startup::AppState;

/// Per-request options carried in headers.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `X-Skip-Cache: true`: run even if a cached result exists.
    pub skip_cache: bool,
    /// `Idempotency-Key` (async runs only).
    pub idempotency_key: Option<String>,
    /// The caller waits for the job's end (sync runs, MCP tool calls).
    pub awaited: bool,
}

impl RunOptions {
    pub fn from_headers(headers: &HeaderMap, idempotent: bool) -> Result<Self, ApiError> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let skip_cache = text("x-skip-cache")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        let idempotency_key = match text("idempotency-key").filter(|_| idempotent) {
            Some(key) if key.len() > 255 => {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be at most 255 characters.",
                ))
            }
            other => other.map(str::to_owned),
        };
        Ok(Self {
            skip_cache,
            idempotency_key,
            awaited: false,
        })
    }
}

/// 402 once a limited balance is spent.
pub async fn check_credits(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let organization = state
        .storage
        .get_organization(caller.organization_id())
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized("The API key's organization no longer exists.".into())
        })?;
    if organization.credits.exhausted() {
        return Err(ApiError::PaymentRequired(format!(
            "Insufficient credits: the organization's balance is {}.",
            organization.credits
        )));
    }
    Ok(())
}

/// 400 when the requests together name more file inputs by URL than
/// `AGENTD_MAX_URL_INPUTS`: each is a fetch the server makes on the caller's
/// behalf.
pub fn check_url_input_count<'a>(
    state: &AppState,
    definitions: &[InputDefinition],
    requests: impl IntoIterator<Item = &'a RunRequest>,
) -> Result<(), ApiError> {
    let count: usize = requests
        .into_iter()
        .map(|request| count_url_inputs(definitions, &request.inputs))
        .sum();
    let limit = state.config.max_url_inputs;
    if count > limit {
        return Err(ApiError::bad_request(format!(
            "At most {limit} file inputs given as URLs per request, got {count}."
        )));
    }
    Ok(())
}

/// A job ready to be stored, with the bytes of the files it brought: they
/// are removed when `staged` is dropped, unless [`PreparedJob::stored`] says
/// the job's row (which records them) was committed.
pub struct PreparedJob {
    pub job: NewJob,
    pub staged: Vec<StagedFile>,
}

impl PreparedJob {
    /// The job's row is committed: its files stay.
    pub fn stored(staged: Vec<StagedFile>) {
        staged.into_iter().for_each(StagedFile::keep);
    }
}

/// 400 when the metadata of one job is larger than the configured cap.
pub fn check_metadata_size(metadata: &Value, max_bytes: usize) -> Result<(), ApiError> {
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |bytes| bytes.len());
    if size > max_bytes {
        return Err(ApiError::bad_request_field(
            "metadata",
            format!("Metadata is {size} bytes as JSON; at most {max_bytes} are accepted per job."),
        ));
    }
    Ok(())
}

/// Checks the inputs, stores uploaded files, and looks up the result cache.
/// URL inputs are not fetched here: the worker fetches them, and until then
/// the URL stands for the file (in the job's inputs and in the cache key).
pub async fn prepare_job(
    state: &AppState,
    caller: &Caller,
    agent: &Agent,
    version: &AgentVersion,
    request: RunRequest,
    options: &RunOptions,
) -> Result<PreparedJob, ApiError> {
    caller.check_organization(request.organization_id.as_deref())?;
    check_metadata_size(&request.metadata, state.config.max_metadata_bytes)?;
    let checked = check_inputs(&version.input_definitions, request.inputs)
        .map_err(|e| ApiError::from(e.0))?;
    crate::documents::check_run_inputs(state, &agent.engine_class_id, version, &checked).await?;
    let mut inputs = Vec::with_capacity(checked.len());
    let mut fingerprint = Vec::with_capacity(checked.len());
    let mut files = Vec::new();
    let mut staged = Vec::new();
    for (definition, input) in checked {
        let (value, file_name, content) = match input {
            CheckedInput::Text(text) => (text.clone(), None, text),
            CheckedInput::File(FileSource::Url(url)) => (url.clone(), None, format!("url:{url}")),
            CheckedInput::File(FileSource::Upload(upload)) => {
                let bytes = state
                    .files
                    .stage_upload(upload, &definition.data_type)
                    .await
                    .map_err(|e| file_error(&definition.key, e))?;
                let file = bytes.file().clone();
                staged.push(bytes);
                let input = file_input(&file);
                files.push(JobFile::New(file));
                input
            }
            CheckedInput::File(FileSource::StoredFile(id)) => {
                let file = state
                    .files
                    .find(state.storage.as_ref(), caller.organization_id(), id)
                    .await
                    .map_err(|e| file_error(&definition.key, e))?;
                files.push(JobFile::Existing(file.id));
                file_input(&file)
            }
        };
        fingerprint.push(json!([definition.key, content]));
        inputs.push(JobInput {
            key: definition.key,
            description: definition.description,
            data_type: definition.data_type,
            value,
            file_name,
        });
    }
    let cache_key = hex::encode(Sha256::digest(
        json!({"version": version.id, "inputs": fingerprint}).to_string(),
    ));
    let cached = if agent.disable_cache || options.skip_cache {
        None
    } else {
        state
            .storage
            .find_cached(version.id, &cache_key, agent.cache_failed_jobs)
            .await?
            .map(|hit| CachedResult {
                outputs: hit.outputs.map(free_of_charge),
                error_message: hit.error_message,
                error_kind: hit.error_kind,
            })
    };
    let job = NewJob {
        id: JobId::new(),
        organization_id: caller.organization_id(),
        agent_id: agent.id,
        agent_version_id: version.id,
        inputs,
        metadata: request.metadata,
        creator_key_id: Some(caller.key.id),
        cache_key: Some(cache_key),
        idempotency_key: None,
        cached,
        files,
        awaited: options.awaited,
    };
    Ok(PreparedJob { job, staged })
}

/// The fingerprint an `Idempotency-Key` is stored with: the version and
/// canonical inputs (the cache key: files by content hash, URL inputs by
/// URL) and the metadata with its object keys sorted.
pub fn request_hash(job: &NewJob) -> String {
    let canonical = json!({
        "cache_key": job.cache_key,
        "metadata": sorted_keys(&job.metadata),
    });
    hex::encode(Sha256::digest(canonical.to_string()))
}

fn sorted_keys(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// A cache hit costs nothing.
fn free_of_charge(outputs: Vec<AgentDatum>) -> Vec<AgentDatum> {
    outputs
        .into_iter()
        .map(|datum| AgentDatum {
            cost: Some(0.0),
            ..datum
        })
        .collect()
}

/// A file input's value, file name and cache fingerprint.
fn file_input(file: &FileRef) -> (String, Option<String>, String) {
    (
        file.id.to_string(),
        Some(file.file_name.clone()),
        format!("sha256:{}", file.sha256),
    )
}

/// A rejected file is the caller's fault, named by its input; anything else is ours.
fn file_error(key: &str, error: FileError) -> ApiError {
    match error {
        FileError::Rejected(message) => ApiError::bad_request_field(key, message),
        other => other.into(),
    }
}
