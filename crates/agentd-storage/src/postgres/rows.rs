//! PostgreSQL rows to domain values. Ids are `uuid`, times `timestamptz`,
//! JSON `jsonb`; money is `numeric`, selected as `float8` (see the column
//! lists in `mod.rs`).

use agentd_domain::{
    Agent, AgentVersion, ApiKey, Credits, FailureKind, FileRef, Job, JobStatus, JobSummary,
    Organization, Scope, StatusEvent, Usage,
};
use sqlx::postgres::PgRow;
use sqlx::types::{Json, Uuid};
use sqlx::Row;

use agentd_domain::webhook::{
    DeliveryAttempt, DeliveryState, Webhook, WebhookDelivery, WebhookEvent, WebhookSecret,
};

use crate::{DueDelivery, Result, StorageError, StoredApiKey};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {detail}"))
}

pub(super) fn id<T: From<Uuid>>(row: &PgRow, column: &str) -> Result<T> {
    Ok(T::from(row.try_get::<Uuid, _>(column)?))
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let Json(value) = row.try_get::<Json<T>, _>(column)?;
    Ok(value)
}

fn status(code: i16) -> Result<JobStatus> {
    JobStatus::from_code(code.into()).ok_or_else(|| corrupt("status", code))
}

pub(super) fn org_from_row(row: &PgRow) -> Result<Organization> {
    Ok(Organization {
        id: id(row, "id")?,
        name: row.try_get("name")?,
        credits: Credits(row.try_get("credits")?),
        spent: row.try_get("spent")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn key_from_row(row: &PgRow) -> Result<StoredApiKey> {
    let scopes: Vec<String> = json(row, "scopes")?;
    let scopes = scopes
        .iter()
        .map(|s| Scope::parse(s).map_err(|e| corrupt("scopes", e)))
        .collect::<Result<_>>()?;
    Ok(StoredApiKey {
        key: ApiKey {
            id: row.try_get("id")?,
            organization_id: id(row, "organization_id")?,
            name: row.try_get("name")?,
            scopes,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        },
        key_hash: row.try_get("key_hash")?,
    })
}

pub(super) fn agent_from_row(row: &PgRow) -> Result<Agent> {
    Ok(Agent {
        id: id(row, "id")?,
        organization_id: id(row, "organization_id")?,
        name: row.try_get("name")?,
        engine_class_id: row.try_get("engine_class_id")?,
        disable_cache: row.try_get("disable_cache")?,
        cache_failed_jobs: row.try_get("cache_failed_jobs")?,
        current_version_id: id(row, "current_version_id")?,
        creator_key_id: row.try_get("creator_key_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        stats: agentd_domain::agent::AgentStats {
            job_count: row.try_get("job_count")?,
            most_recent_job: row.try_get("most_recent_job")?,
        },
    })
}

/// A version whose columns carry `prefix` (joined with other tables).
pub(super) fn prefixed_version_from_row(row: &PgRow, prefix: &str) -> Result<AgentVersion> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(AgentVersion {
        id: id(row, &column("id"))?,
        agent_id: id(row, &column("agent_id"))?,
        version_name: row.try_get(column("version_name").as_str())?,
        description: row.try_get(column("description").as_str())?,
        input_definitions: json(row, &column("input_definitions"))?,
        engine_config: json(row, &column("engine_config"))?,
        creator_key_id: row.try_get(column("creator_key_id").as_str())?,
        created_at: row.try_get(column("created_at").as_str())?,
    })
}

pub(super) fn version_from_row(row: &PgRow) -> Result<AgentVersion> {
    prefixed_version_from_row(row, "")
}

pub(super) fn event_from_row(row: &PgRow) -> Result<StatusEvent> {
    Ok(StatusEvent {
        status: status(row.try_get("status")?)?,
        timestamp: row.try_get("created_at")?,
        error_message: row.try_get("error_message")?,
    })
}

pub(super) fn job_from_row(row: &PgRow, events: Vec<StatusEvent>) -> Result<Job> {
    let input_tokens: Option<i64> = row.try_get("input_tokens")?;
    let usage = match input_tokens {
        Some(input_tokens) => Some(Usage {
            input_tokens,
            output_tokens: row.try_get::<Option<i64>, _>("output_tokens")?.unwrap_or(0),
            cached_input_tokens: row
                .try_get::<Option<i64>, _>("cached_input_tokens")?
                .unwrap_or(0),
        }),
        None => None,
    };
    let error_kind: Option<String> = row.try_get("error_kind")?;
    let outputs: Option<Json<_>> = row.try_get("outputs")?;
    Ok(Job {
        id: id(row, "id")?,
        organization_id: id(row, "organization_id")?,
        agent_id: id(row, "agent_id")?,
        agent_version_id: id(row, "agent_version_id")?,
        status: status(row.try_get("status")?)?,
        inputs: json(row, "inputs")?,
        metadata: json(row, "metadata")?,
        outputs: outputs.map(|Json(outputs)| outputs),
        error_message: row.try_get("error_message")?,
        error_kind: error_kind.as_deref().and_then(FailureKind::parse),
        usage,
        cost: row.try_get("cost")?,
        attempts: row.try_get("attempts")?,
        creator_key_id: row.try_get("creator_key_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        events,
        // Absent from rows a claim returns.
        agent_version_name: row.try_get("agent_version_name").ok().flatten(),
        data_deleted: row.try_get("data_deleted")?,
    })
}

pub(super) fn summary_from_row(row: &PgRow) -> Result<JobSummary> {
    Ok(JobSummary {
        id: id(row, "id")?,
        agent_id: id(row, "agent_id")?,
        status: status(row.try_get("status")?)?,
        error_message: row.try_get("error_message")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn file_from_row(row: &PgRow) -> Result<FileRef> {
    Ok(FileRef {
        id: id(row, "id")?,
        file_name: row.try_get("file_name")?,
        content_type: row.try_get("content_type")?,
        size: row.try_get::<i64, _>("size")? as u64,
        sha256: row.try_get("sha256")?,
    })
}

fn webhook_secret(row: &PgRow) -> Result<WebhookSecret> {
    let text: String = row.try_get("secret")?;
    WebhookSecret::parse(&text).map_err(|e| corrupt("secret", e))
}

fn webhook_event(row: &PgRow) -> Result<WebhookEvent> {
    let text: String = row.try_get("event")?;
    WebhookEvent::parse(&text).ok_or_else(|| corrupt("event", text))
}

pub(super) fn webhook_from_row(row: &PgRow) -> Result<Webhook> {
    Ok(Webhook {
        id: id(row, "id")?,
        organization_id: id(row, "organization_id")?,
        agent_id: id(row, "agent_id")?,
        url: row.try_get("url")?,
        events: json(row, "events")?,
        secret: webhook_secret(row)?,
        description: row.try_get("description")?,
        active: row.try_get("active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn attempt_from_row(row: &PgRow) -> Result<DeliveryAttempt> {
    let status: Option<i32> = row.try_get("response_status")?;
    Ok(DeliveryAttempt {
        attempted_at: row.try_get("attempted_at")?,
        response_status: status
            .map(|s| u16::try_from(s).map_err(|e| corrupt("response_status", e)))
            .transpose()?,
        latency_ms: row.try_get("latency_ms")?,
        error: row.try_get("error")?,
    })
}

pub(super) fn delivery_from_row(
    row: &PgRow,
    attempts: Vec<DeliveryAttempt>,
) -> Result<WebhookDelivery> {
    let state: String = row.try_get("state")?;
    Ok(WebhookDelivery {
        id: id(row, "id")?,
        webhook_id: id(row, "webhook_id")?,
        job_id: id(row, "job_id")?,
        event: webhook_event(row)?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("state", state))?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        attempts,
    })
}

pub(super) fn due_delivery_from_row(row: &PgRow) -> Result<DueDelivery> {
    let attempts: i32 = row.try_get("attempts")?;
    Ok(DueDelivery {
        id: id(row, "id")?,
        organization_id: id(row, "organization_id")?,
        webhook_id: id(row, "webhook_id")?,
        job_id: id(row, "job_id")?,
        event: webhook_event(row)?,
        attempts_made: usize::try_from(attempts).map_err(|e| corrupt("attempts", e))?,
        url: row.try_get("url")?,
        secret: webhook_secret(row)?,
    })
}
