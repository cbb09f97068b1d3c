//! The JSON shapes of the Roe API, built from domain values. Each shape is a
//! typed struct whose `ToSchema` derive is what `/openapi.json` documents,
//! so the document cannot drift from what the handlers send. Schema names
//! are Roe's.

use agentd_domain::time::{format, unix_seconds};
use agentd_domain::{Agent, ApiKey, Job, JobSummary};
use agentd_engines::EngineRegistry;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Keys stand in for users: `creator` describes the key that created a
/// record.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserInfo {
    /// The API key's id.
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
}

impl UserInfo {
    pub fn of_key(key_id: i64, name: Option<&str>) -> Self {
        let display_name = name.map_or_else(|| format!("API key {key_id}"), str::to_owned);
        Self {
            id: key_id,
            email: format!("api-key-{key_id}@agentd.local"),
            first_name: display_name.clone(),
            display_name,
            last_name: String::new(),
        }
    }
}

/// The API key a request was made with, described as Roe describes a user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct CurrentUser {
    #[serde(flatten)]
    pub user: UserInfo,
    pub date_joined: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// The organization the key belongs to.
    #[schema(value_type = String, format = Uuid)]
    pub organization_id: agentd_domain::OrganizationId,
    /// The key's scopes (`read`, `write`, `run`, `read_jobs`, `admin`, ...).
    pub scopes: Vec<String>,
    /// The name of the key's organization (null if it has none recorded).
    #[schema(required = true)]
    pub organization_name: Option<String>,
    /// The largest request body, in bytes, the server accepts (uploads
    /// included); the console checks files against it before sending them.
    pub max_upload_bytes: usize,
}

pub fn current_user(
    key: &ApiKey,
    organization_name: Option<String>,
    max_upload_bytes: usize,
) -> CurrentUser {
    CurrentUser {
        user: UserInfo::of_key(key.id, Some(&key.name)),
        date_joined: format(&key.created_at),
        is_active: true,
        is_staff: false,
        is_superuser: false,
        organization_id: key.organization_id,
        scopes: key.scopes.iter().map(ToString::to_string).collect(),
        organization_name,
        max_upload_bytes,
    }
}

fn engine_name(engines: &EngineRegistry, class_id: &str) -> String {
    engines
        .get(class_id)
        .map_or_else(|| class_id.to_owned(), |e| e.name().to_owned())
}

/// An agent tag. Agents carry none here; the shape is Roe's.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentTag {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub color: String,
    pub created_at: String,
    #[schema(required = true)]
    pub creator: Option<i64>,
    pub usage_count: i64,
}

/// A base agent (the agent's configuration across its versions).
#[derive(Debug, Serialize, ToSchema)]
pub struct BaseAgent {
    #[schema(value_type = String, format = Uuid)]
    pub id: agentd_domain::AgentId,
    #[schema(required = true)]
    pub creator: Option<UserInfo>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub name: String,
    /// Whether to disable job cache fetching for this agent.
    pub disable_cache: bool,
    /// Whether to cache failed jobs for this agent.
    pub cache_failed_jobs: bool,
    #[schema(value_type = String, format = Uuid)]
    pub organization_id: agentd_domain::OrganizationId,
    pub engine_class_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub current_version_id: agentd_domain::AgentVersionId,
    /// Number of jobs; null when the list was asked with `include_job_stats=false`.
    #[schema(required = true)]
    pub job_count: Option<i64>,
    #[schema(format = DateTime)]
    #[schema(required = true)]
    pub most_recent_job: Option<String>,
    pub engine_name: String,
    pub tags: Vec<AgentTag>,
    /// Always null: skills are not generated on this server.
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub skill_generation_state: Option<Value>,
}

pub fn base_agent(agent: &Agent, engines: &EngineRegistry) -> BaseAgent {
    BaseAgent {
        id: agent.id,
        creator: agent.creator_key_id.map(|id| UserInfo::of_key(id, None)),
        created_at: format(&agent.created_at),
        updated_at: format(&agent.updated_at),
        name: agent.name.clone(),
        disable_cache: agent.disable_cache,
        cache_failed_jobs: agent.cache_failed_jobs,
        organization_id: agent.organization_id,
        engine_class_id: agent.engine_class_id.clone(),
        current_version_id: agent.current_version_id,
        job_count: Some(agent.stats.job_count),
        most_recent_job: agent.stats.most_recent_job.as_ref().map(format),
        engine_name: engine_name(engines, &agent.engine_class_id),
        tags: Vec::new(),
        skill_generation_state: None,
    }
}

/// One input an agent version takes (the domain's `InputDefinition`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentInputDefinition {
    /// The unique identifier for this input definition.
    pub key: String,
    /// The data type of the input: `text/plain`, `application/pdf`, `image/*`, ...
    pub data_type: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepts_multiple_files: Option<bool>,
    /// Used when a run omits the input; an input without one is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A version of an agent: its inputs and engine configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentVersion {
    #[schema(value_type = String, format = Uuid)]
    pub id: agentd_domain::AgentVersionId,
    pub name: String,
    pub version_name: String,
    #[schema(required = true)]
    pub creator: Option<UserInfo>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub description: String,
    pub engine_class_id: String,
    pub engine_name: String,
    pub supports_memory: bool,
    #[schema(value_type = Vec<AgentInputDefinition>)]
    pub input_definitions: Vec<agentd_domain::InputDefinition>,
    /// Engine configuration (its schema is the engine's `input_schema` in
    /// `GET /v1/agents/types/`).
    #[schema(value_type = Object)]
    pub engine_config: Value,
    #[schema(value_type = Vec<Object>)]
    pub post_actions: Vec<Value>,
    #[schema(value_type = String, format = Uuid)]
    pub organization_id: agentd_domain::OrganizationId,
    pub readonly: bool,
    pub base_agent: BaseAgent,
    /// Only with `get_supports_eval=true`: evaluations are not part of this
    /// server, so it is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supports_eval: Option<bool>,
}

pub fn agent_version(
    version: &agentd_domain::AgentVersion,
    agent: &Agent,
    engines: &EngineRegistry,
) -> AgentVersion {
    AgentVersion {
        id: version.id,
        name: agent.name.clone(),
        version_name: version.version_name.clone(),
        creator: version.creator_key_id.map(|id| UserInfo::of_key(id, None)),
        created_at: format(&version.created_at),
        description: version.description.clone().unwrap_or_default(),
        engine_class_id: agent.engine_class_id.clone(),
        engine_name: engine_name(engines, &agent.engine_class_id),
        supports_memory: false,
        input_definitions: version.input_definitions.clone(),
        engine_config: version.engine_config.clone(),
        post_actions: Vec::new(),
        organization_id: agent.organization_id,
        readonly: false,
        base_agent: base_agent(agent, engines),
        supports_eval: None,
    }
}

/// One output of a job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AgentDatum)]
pub struct AgentDatumSchema {
    /// The key of the output.
    pub key: String,
    pub description: String,
    /// The MIME data type of the output.
    pub data_type: String,
    /// The value of the output, serialized as a string.
    pub value: String,
    /// The cost in dollars of producing it.
    #[schema(required = true)]
    pub cost: Option<f64>,
}

/// One input of a job as it was stored (files by id and name).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JobInput)]
pub struct JobInputSchema {
    pub key: String,
    pub description: String,
    pub data_type: String,
    /// The text, or the stored file's id, or the URL it is fetched from.
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// Seconds since the epoch of the job's last status change.
fn job_timestamp(job: &Job) -> f64 {
    unix_seconds(&job.last_event_at())
}

/// Status codes: 0 PENDING, 1 STARTED, 2 RETRY, 3 SUCCESS, 4 FAILURE,
/// 5 CANCELLED, 6 CACHED.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobSingleStatus {
    /// 0 PENDING, 1 STARTED, 2 RETRY, 3 SUCCESS, 4 FAILURE, 5 CANCELLED, 6 CACHED.
    pub status: i16,
    /// Unix timestamp in seconds (fractional) of the last status change.
    pub timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

pub fn job_status(job: &Job) -> AgentJobSingleStatus {
    AgentJobSingleStatus {
        status: job.status.code(),
        timestamp: job_timestamp(job),
        error_message: job.error_message.clone(),
    }
}

/// One answer of the bulk statuses: all null but `id` and
/// `error_message` for a job that is not found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobStatus {
    pub id: String,
    #[schema(required = true)]
    pub status: Option<i16>,
    #[schema(format = DateTime)]
    #[schema(required = true)]
    pub created_at: Option<String>,
    #[schema(format = DateTime)]
    #[schema(required = true)]
    pub last_updated_at: Option<String>,
    #[schema(required = true)]
    pub timestamp: Option<f64>,
    #[schema(required = true)]
    pub error_message: Option<String>,
}

pub fn job_status_item(job: &JobSummary) -> AgentJobStatus {
    AgentJobStatus {
        id: job.id.to_string(),
        status: Some(job.status.code()),
        created_at: Some(format(&job.created_at)),
        last_updated_at: Some(format(&job.updated_at)),
        timestamp: Some(unix_seconds(&job.updated_at)),
        error_message: job.error_message.clone(),
    }
}

pub fn missing_job_status(id: &str) -> AgentJobStatus {
    AgentJobStatus {
        id: id.to_owned(),
        status: None,
        created_at: None,
        last_updated_at: None,
        timestamp: None,
        error_message: Some("Job not found.".into()),
    }
}

fn tokens(job: &Job) -> (Option<i64>, Option<i64>) {
    job.usage.map_or((None, None), |u| {
        (Some(u.input_tokens), Some(u.output_tokens))
    })
}

/// The result of one finished job.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobResultResponse {
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: agentd_domain::AgentId,
    #[schema(value_type = String, format = Uuid)]
    pub agent_version_id: agentd_domain::AgentVersionId,
    #[schema(value_type = Vec<JobInputSchema>)]
    pub inputs: Vec<agentd_domain::JobInput>,
    #[schema(required = true)]
    pub input_tokens: Option<i64>,
    #[schema(required = true)]
    pub output_tokens: Option<i64>,
    #[schema(value_type = Vec<AgentDatumSchema>)]
    pub outputs: Vec<agentd_domain::AgentDatum>,
    pub status: i16,
    #[schema(required = true)]
    pub error_message: Option<String>,
    #[schema(required = true)]
    pub cost: Option<f64>,
    /// The metadata given with the run, as it was given.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

pub fn job_result(job: &Job) -> AgentJobResultResponse {
    let (input_tokens, output_tokens) = tokens(job);
    AgentJobResultResponse {
        agent_id: job.agent_id,
        agent_version_id: job.agent_version_id,
        inputs: job.inputs.clone(),
        input_tokens,
        output_tokens,
        outputs: job.outputs.clone().unwrap_or_default(),
        status: job.status.code(),
        error_message: job.error_message.clone(),
        cost: job.cost,
        metadata: job.metadata.clone(),
    }
}

/// One answer of the bulk results: all null but `id` and `error_message`
/// for a job that is not found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobResultItem {
    pub id: String,
    #[schema(required = true)]
    pub status: Option<i16>,
    #[schema(value_type = Option<Vec<AgentDatumSchema>>)]
    #[schema(required = true)]
    pub result: Option<Vec<agentd_domain::AgentDatum>>,
    #[schema(value_type = Option<Vec<AgentDatumSchema>>)]
    #[schema(required = true)]
    pub corrected_outputs: Option<Vec<agentd_domain::AgentDatum>>,
    #[schema(value_type = Option<String>, format = Uuid)]
    #[schema(required = true)]
    pub agent_id: Option<agentd_domain::AgentId>,
    #[schema(value_type = Option<String>, format = Uuid)]
    #[schema(required = true)]
    pub agent_version_id: Option<agentd_domain::AgentVersionId>,
    #[schema(required = true)]
    pub cost: Option<f64>,
    #[schema(value_type = Option<Vec<JobInputSchema>>)]
    #[schema(required = true)]
    pub inputs: Option<Vec<agentd_domain::JobInput>>,
    #[schema(required = true)]
    pub input_tokens: Option<i64>,
    #[schema(required = true)]
    pub output_tokens: Option<i64>,
    #[schema(required = true)]
    pub error_message: Option<String>,
}

pub fn job_result_item(job: &Job) -> AgentJobResultItem {
    let (input_tokens, output_tokens) = tokens(job);
    AgentJobResultItem {
        id: job.id.to_string(),
        status: Some(job.status.code()),
        result: job.outputs.clone(),
        corrected_outputs: None,
        agent_id: Some(job.agent_id),
        agent_version_id: Some(job.agent_version_id),
        cost: job.cost,
        inputs: Some(job.inputs.clone()),
        input_tokens,
        output_tokens,
        error_message: job.error_message.clone(),
    }
}

pub fn missing_job_result(id: &str) -> AgentJobResultItem {
    AgentJobResultItem {
        id: id.to_owned(),
        status: None,
        result: None,
        corrected_outputs: None,
        agent_id: None,
        agent_version_id: None,
        cost: None,
        inputs: None,
        input_tokens: None,
        output_tokens: None,
        error_message: Some("Job not found.".into()),
    }
}

/// `ListAgentJob.metadata` is a map of strings in Roe's schema: other
/// values are shown as their JSON text there (the job's result keeps them
/// as they were given).
fn metadata_as_strings(metadata: &Value) -> serde_json::Map<String, Value> {
    match metadata {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), Value::String(text))
            })
            .collect(),
        _ => serde_json::Map::new(),
    }
}

/// One status change of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicAgentJobStatusEvent {
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub status_code: i16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A job as the agent's job list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListAgentJob {
    #[schema(value_type = String, format = Uuid)]
    pub id: agentd_domain::JobId,
    #[schema(required = true)]
    pub agent_version_name: Option<String>,
    #[schema(value_type = String, format = Uuid)]
    pub agent_version_id: agentd_domain::AgentVersionId,
    pub status_events: Vec<PublicAgentJobStatusEvent>,
    pub status_code: i16,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_updated_at: String,
    /// Null while the job runs.
    #[schema(required = true)]
    pub duration_ms: Option<i64>,
    #[schema(value_type = Vec<JobInputSchema>)]
    pub job_inputs: Vec<agentd_domain::JobInput>,
    /// Absent with `exclude_metadata=true`; values that are not strings are
    /// shown as their JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[schema(value_type = Object)]
    pub ui_fields: Value,
    /// Always null: jobs are not evaluated on this server.
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub evaluation: Option<Value>,
    /// Always null: jobs are not reviewed on this server.
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub feedback_review: Option<Value>,
    pub review_state: String,
    #[schema(required = true)]
    pub creator: Option<UserInfo>,
    #[schema(required = true)]
    pub cost: Option<f64>,
    #[schema(required = true)]
    pub input_tokens: Option<i64>,
    #[schema(required = true)]
    pub output_tokens: Option<i64>,
    pub attempts: i32,
    #[schema(required = true)]
    pub error_message: Option<String>,
}

pub fn list_agent_job(job: &Job) -> ListAgentJob {
    let (input_tokens, output_tokens) = tokens(job);
    ListAgentJob {
        id: job.id,
        agent_version_name: job.agent_version_name.clone(),
        agent_version_id: job.agent_version_id,
        status_events: job
            .events
            .iter()
            .map(|event| PublicAgentJobStatusEvent {
                timestamp: format(&event.timestamp),
                status_code: event.status.code(),
                error_message: event.error_message.clone(),
            })
            .collect(),
        status_code: job.status.code(),
        created_at: format(&job.created_at),
        last_updated_at: format(&job.updated_at),
        duration_ms: job.duration_ms(),
        job_inputs: job.inputs.clone(),
        metadata: Some(metadata_as_strings(&job.metadata)),
        ui_fields: json!({}),
        evaluation: None,
        feedback_review: None,
        review_state: "unreviewed".into(),
        creator: job.creator_key_id.map(|id| UserInfo::of_key(id, None)),
        cost: job.cost,
        input_tokens,
        output_tokens,
        attempts: job.attempts,
        error_message: job.error_message.clone(),
    }
}

/// A page of a list (DRF page-number pagination), as
/// [`super::pagination::PageRequest::respond`] builds it.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// A documented page type under Roe's name: utoipa names generic
/// instances itself, so each page of a list is its own type.
macro_rules! paginated {
    ($name:ident, $item:ty) => {
        #[doc = concat!("A page of ", stringify!($item), " (DRF page-number pagination).")]
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub count: i64,
            /// The next page's URL; null on the last page.
            #[schema(format = Uri, required = true)]
            pub next: Option<String>,
            /// The previous page's URL; null on the first page.
            #[schema(format = Uri, required = true)]
            pub previous: Option<String>,
            pub results: Vec<$item>,
        }

        impl From<Page<$item>> for $name {
            fn from(page: Page<$item>) -> Self {
                Self {
                    count: page.count,
                    next: page.next,
                    previous: page.previous,
                    results: page.results,
                }
            }
        }
    };
}

paginated!(PaginatedBaseAgentList, BaseAgent);
paginated!(PaginatedListAgentJobList, ListAgentJob);

/// `{"message": ...}`: a success that has nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented property names of a schema.
    fn documented<T: ToSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .expect("an object schema")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn keys(value: Value) -> Vec<String> {
        let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// The mirrors of domain types document every key the domain sends.
    #[test]
    fn domain_mirrors_document_every_serialized_field() {
        let datum = agentd_domain::AgentDatum {
            key: "k".into(),
            description: "d".into(),
            data_type: "text/plain".into(),
            value: "v".into(),
            cost: Some(0.1),
        };
        assert_eq!(
            keys(serde_json::to_value(datum).unwrap()),
            documented::<AgentDatumSchema>()
        );
        let input = agentd_domain::JobInput {
            key: "k".into(),
            description: "d".into(),
            data_type: "text/plain".into(),
            value: "v".into(),
            file_name: Some("a.pdf".into()),
        };
        assert_eq!(
            keys(serde_json::to_value(input).unwrap()),
            documented::<JobInputSchema>()
        );
        let definition = agentd_domain::InputDefinition {
            example: Some("e".into()),
            accepts_multiple_files: Some(false),
            default: Some("x".into()),
            ..agentd_domain::InputDefinition::new("k", "text/plain")
        };
        assert_eq!(
            keys(serde_json::to_value(definition).unwrap()),
            documented::<AgentInputDefinition>()
        );
    }
}
