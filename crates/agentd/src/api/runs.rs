//! `/v1/agents/run/{agent_id}/` and `.../versions/{agent_version_id}/`:
//! synchronous runs. Each run is stored as a job first, then executed.

use std::sync::Arc;

use agentd_domain::input::check_inputs;
use agentd_domain::{
    Agent, AgentDatum, AgentVersion, CheckedInput, FileSource, JobId, JobInput, Operation,
};
use agentd_storage::NewJob;
use axum::extract::{Path, State};
use axum::Json;

use super::error::ApiError;
use super::load_agent;
use super::run_body::RunBody;
use super::versions::{load_version, parse_version_id};
use crate::auth::Caller;
use crate::files::FileError;
use crate::startup::AppState;
use crate::worker::FailureClass;

pub async fn run_current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    caller.require(Operation::Run)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, agent.current_version_id).await?;
    run_and_wait(&state, &caller, &agent, &version, body).await
}

pub async fn run_version(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, version_id)): Path<(String, String)>,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    caller.require(Operation::Run)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let version = load_version(&state, &agent, parse_version_id(&version_id)?).await?;
    run_and_wait(&state, &caller, &agent, &version, body).await
}

async fn run_and_wait(
    state: &Arc<AppState>,
    caller: &Caller,
    agent: &Agent,
    version: &AgentVersion,
    body: RunBody,
) -> Result<Json<Vec<AgentDatum>>, ApiError> {
    let job_id = submit(state, caller, agent, version, body).await?;
    // The job runs in its own task: a client that hangs up does not stop it.
    let executor = Arc::clone(&state.executor);
    let organization_id = caller.organization_id();
    let task = tokio::spawn(async move { executor.execute(organization_id, job_id).await });
    let report = match tokio::time::timeout(state.config.sync_timeout(), task).await {
        Err(_) => {
            return Err(ApiError::GatewayTimeout {
                job_id,
                message: format!(
                    "The run takes longer than {} s; it continues as job {job_id}.",
                    state.config.sync_timeout_secs
                ),
            })
        }
        Ok(joined) => joined.map_err(anyhow::Error::from)??,
    };
    match report {
        Ok(outputs) => Ok(Json(outputs)),
        Err(failure) => Err(match failure.class {
            FailureClass::Invalid => ApiError::bad_request(failure.message),
            FailureClass::Upstream => {
                ApiError::BadGateway(format!("Model provider failed: {}", failure.message))
            }
            FailureClass::Internal => ApiError::Internal(anyhow::anyhow!(failure.message)),
        }),
    }
}

/// Checks credits and inputs, stores uploaded files and the PENDING job.
async fn submit(
    state: &AppState,
    caller: &Caller,
    agent: &Agent,
    version: &AgentVersion,
    body: RunBody,
) -> Result<JobId, ApiError> {
    let request = body.into_request(&version.input_definitions)?;
    caller.check_organization(request.organization_id.as_deref())?;
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
    let checked = check_inputs(&version.input_definitions, request.inputs)
        .map_err(|e| ApiError::from(e.0))?;
    let mut inputs = Vec::with_capacity(checked.len());
    for (definition, input) in checked {
        let (value, file_name) = match input {
            CheckedInput::Text(text) => (text, None),
            CheckedInput::File(source) => {
                let file = store_file(state, caller, &definition.data_type, source)
                    .await
                    .map_err(|e| match e {
                        FileError::Rejected(message) => {
                            ApiError::bad_request_field(&definition.key, message)
                        }
                        other => ApiError::Internal(other.into()),
                    })?;
                (file.id.to_string(), Some(file.file_name))
            }
        };
        inputs.push(JobInput {
            key: definition.key,
            description: definition.description,
            data_type: definition.data_type,
            value,
            file_name,
        });
    }
    let job = state
        .storage
        .create_job(NewJob {
            id: JobId::new(),
            organization_id: caller.organization_id(),
            agent_id: agent.id,
            agent_version_id: version.id,
            inputs,
            metadata: request.metadata,
            creator_key_id: Some(caller.key.id),
        })
        .await?;
    Ok(job.id)
}

async fn store_file(
    state: &AppState,
    caller: &Caller,
    data_type: &str,
    source: FileSource,
) -> Result<agentd_domain::FileRef, FileError> {
    let storage = state.storage.as_ref();
    match source {
        FileSource::Upload(upload) => {
            state.files.save(storage, caller.organization_id(), upload, data_type).await
        }
        FileSource::StoredFile(id) => state.files.find(storage, caller.organization_id(), id).await,
        FileSource::Url(url) => Err(FileError::Rejected(format!(
            "Fetching file inputs from URLs ({url}) is not supported by this server yet; upload the file or send a data: URL."
        ))),
    }
}
