//! The JSON shapes of the Roe API, built from domain values.

use agentd_domain::time::format;
use agentd_domain::{Agent, AgentVersion, ApiKey};
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
        "description": version.description,
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
