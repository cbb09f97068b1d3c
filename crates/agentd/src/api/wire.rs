//! The JSON shapes of the Roe API, built from domain values.

use agentd_domain::time::{format, unix_seconds};
use agentd_domain::{Agent, AgentVersion, ApiKey, Job, JobSummary};
use agentd_engines::EngineRegistry;
use serde_json::{json, Value};

/// Keys stand in for users: `creator` and `current_user` describe the key.
pub fn user_info(key_id: i64, name: Option<&str>) -> Value {
    let display_name = name.map_or_else(|| format!("API key {key_id}"), str::to_owned);
    json!({
        "id": key_id,
        "email": format!("api-key-{key_id}@agentd.local"),
        "display_name": display_name,
        "first_name": display_name,
        "last_name": "",
    })
}

pub fn current_user(key: &ApiKey) -> Value {
    let mut user = user_info(key.id, Some(&key.name));
    user["date_joined"] = json!(format(&key.created_at));
    user["is_active"] = json!(true);
    user["is_staff"] = json!(false);
    user["is_superuser"] = json!(false);
    user["organization_id"] = json!(key.organization_id);
    user["scopes"] = json!(key
        .scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>());
    user
}

fn engine_name(engines: &EngineRegistry, class_id: &str) -> String {
    engines
        .get(class_id)
        .map_or_else(|| class_id.to_owned(), |e| e.name().to_owned())
}

pub fn base_agent(agent: &Agent, engines: &EngineRegistry) -> Value {
    json!({
        "id": agent.id,
        "creator": agent.creator_key_id.map(|id| user_info(id, None)),
        "created_at": format(&agent.created_at),
        "updated_at": format(&agent.updated_at),
        "name": agent.name,
        "disable_cache": agent.disable_cache,
        "cache_failed_jobs": agent.cache_failed_jobs,
        "organization_id": agent.organization_id,
        "engine_class_id": agent.engine_class_id,
        "current_version_id": agent.current_version_id,
        "job_count": agent.stats.job_count,
        "most_recent_job": agent.stats.most_recent_job.as_ref().map(format),
        "engine_name": engine_name(engines, &agent.engine_class_id),
        "tags": [],
        "skill_generation_state": null,
    })
}

pub fn agent_version(version: &AgentVersion, agent: &Agent, engines: &EngineRegistry) -> Value {
    json!({
        "id": version.id,
        "name": agent.name,
        "version_name": version.version_name,
        "creator": version.creator_key_id.map(|id| user_info(id, None)),
        "created_at": format(&version.created_at),
        "description": version.description.as_deref().unwrap_or_default(),
        "engine_class_id": agent.engine_class_id,
        "engine_name": engine_name(engines, &agent.engine_class_id),
        "supports_memory": false,
        "input_definitions": version.input_definitions,
        "engine_config": version.engine_config,
        "post_actions": [],
        "organization_id": agent.organization_id,
        "readonly": false,
        "base_agent": base_agent(agent, engines),
    })
}

/// Seconds since the epoch of the job's last status change.
fn job_timestamp(job: &Job) -> f64 {
    unix_seconds(&job.last_event_at())
}

/// `AgentJobSingleStatus`.
pub fn job_status(job: &Job) -> Value {
    let mut body = json!({"status": job.status.code(), "timestamp": job_timestamp(job)});
    if let Some(message) = &job.error_message {
        body["error_message"] = json!(message);
    }
    body
}

/// `AgentJobStatus` (bulk statuses).
pub fn job_status_item(job: &JobSummary) -> Value {
    json!({
        "id": job.id,
        "status": job.status.code(),
        "created_at": format(&job.created_at),
        "last_updated_at": format(&job.updated_at),
        "timestamp": unix_seconds(&job.updated_at),
        "error_message": job.error_message,
    })
}

pub fn missing_job_status(id: &str) -> Value {
    json!({
        "id": id,
        "status": null,
        "created_at": null,
        "last_updated_at": null,
        "timestamp": null,
        "error_message": "Job not found.",
    })
}

fn tokens(job: &Job) -> (Option<i64>, Option<i64>) {
    job.usage.map_or((None, None), |u| {
        (Some(u.input_tokens), Some(u.output_tokens))
    })
}

/// `AgentJobResultResponse`.
pub fn job_result(job: &Job) -> Value {
    let (input_tokens, output_tokens) = tokens(job);
    json!({
        "agent_id": job.agent_id,
        "agent_version_id": job.agent_version_id,
        "inputs": job.inputs,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "outputs": job.outputs.clone().unwrap_or_default(),
        "status": job.status.code(),
        "error_message": job.error_message,
        "cost": job.cost,
        "metadata": job.metadata,
    })
}

/// `AgentJobResultItem` (bulk results).
pub fn job_result_item(job: &Job) -> Value {
    let (input_tokens, output_tokens) = tokens(job);
    json!({
        "id": job.id,
        "status": job.status.code(),
        "result": job.outputs,
        "corrected_outputs": null,
        "agent_id": job.agent_id,
        "agent_version_id": job.agent_version_id,
        "cost": job.cost,
        "inputs": job.inputs,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "error_message": job.error_message,
    })
}

pub fn missing_job_result(id: &str) -> Value {
    json!({
        "id": id,
        "status": null,
        "result": null,
        "corrected_outputs": null,
        "agent_id": null,
        "agent_version_id": null,
        "cost": null,
        "inputs": null,
        "input_tokens": null,
        "output_tokens": null,
        "error_message": "Job not found.",
    })
}

/// `ListAgentJob.metadata` is a map of strings in Roe's schema: other
/// values are shown as their JSON text there (the job's result keeps them
/// as they were given).
fn metadata_as_strings(metadata: &Value) -> Value {
    match metadata {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), Value::String(text))
                })
                .collect(),
        ),
        _ => json!({}),
    }
}

/// `ListAgentJob`.
pub fn list_agent_job(job: &Job) -> Value {
    let (input_tokens, output_tokens) = tokens(job);
    let events: Vec<Value> = job
        .events
        .iter()
        .map(|event| {
            let mut body =
                json!({"timestamp": format(&event.timestamp), "status_code": event.status.code()});
            if let Some(message) = &event.error_message {
                body["error_message"] = json!(message);
            }
            body
        })
        .collect();
    json!({
        "id": job.id,
        "agent_version_name": job.agent_version_name,
        "agent_version_id": job.agent_version_id,
        "status_events": events,
        "status_code": job.status.code(),
        "created_at": format(&job.created_at),
        "last_updated_at": format(&job.updated_at),
        "duration_ms": job.duration_ms(),
        "job_inputs": job.inputs,
        "metadata": metadata_as_strings(&job.metadata),
        "ui_fields": {},
        "evaluation": null,
        "feedback_review": null,
        "review_state": "unreviewed",
        "creator": job.creator_key_id.map(|id| user_info(id, None)),
        "cost": job.cost,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "attempts": job.attempts,
        "error_message": job.error_message,
    })
}
