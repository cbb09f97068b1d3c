//! `/v1/agents/{agent_id}/webhooks/`: an agent's webhook subscriptions and
//! their delivery logs, and Roe's `POST /v1/agents/jobs/{job_id}/webhook/resend/`.
//!
//! A subscription's secret is shown in full once, when it is created (or
//! replaced by PATCH); afterwards only its last four characters are.

use std::sync::Arc;

use agentd_domain::time::{format, now};
use agentd_domain::webhook::{
    DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent, WebhookSecret,
};
use agentd_domain::{Agent, Operation, WebhookId};
use agentd_storage::{DeliveryTargets, WebhookUpdate};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject, QueryParams};
use super::jobs::load_job;
use super::openapi::{AgentIdParameter, ErrorBody, JobIdParameter};
use super::pagination::PageRequest;
use super::{load_agent, wire};
use crate::auth::Caller;
use crate::startup::AppState;
use crate::webhooks::{check_target, generate_secret, parse_events, MAX_DESCRIPTION_CHARS};

const FIELDS: &[&str] = &["url", "events", "secret", "description", "active"];

fn webhook_not_found() -> ApiError {
    ApiError::NotFound("Webhook not found.".into())
}

/// The secret as listings show it: enough to tell secrets apart.
fn masked(secret: &WebhookSecret) -> String {
    let text = secret.as_str();
    format!("whsec_…{}", &text[text.len().saturating_sub(4)..])
}

/// A webhook subscription of an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentWebhook {
    #[schema(value_type = String, format = Uuid)]
    pub id: WebhookId,
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: agentd_domain::AgentId,
    pub url: String,
    /// The job events it receives.
    #[schema(value_type = Vec<String>)]
    pub events: Vec<WebhookEvent>,
    pub description: String,
    pub active: bool,
    /// In full when created or replaced; otherwise only its last four characters.
    pub secret: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn webhook_body(webhook: &Webhook, show_secret: bool) -> AgentWebhook {
    AgentWebhook {
        id: webhook.id,
        agent_id: webhook.agent_id,
        url: webhook.url.clone(),
        events: webhook.events.clone(),
        description: webhook.description.clone(),
        active: webhook.active,
        secret: if show_secret {
            webhook.secret.as_str().to_owned()
        } else {
            masked(&webhook.secret)
        },
        created_at: format(&webhook.created_at),
        updated_at: format(&webhook.updated_at),
    }
}

/// One try at delivering an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryAttempt {
    #[schema(format = DateTime)]
    pub attempted_at: String,
    /// The receiver's HTTP status; null when it could not be reached.
    #[schema(required = true)]
    pub response_status: Option<u16>,
    pub latency_ms: i64,
    /// Why the attempt failed; null when it succeeded.
    #[schema(required = true)]
    pub error: Option<String>,
    pub succeeded: bool,
}

fn attempt_body(attempt: &DeliveryAttempt) -> WebhookDeliveryAttempt {
    WebhookDeliveryAttempt {
        attempted_at: format(&attempt.attempted_at),
        response_status: attempt.response_status,
        latency_ms: attempt.latency_ms,
        error: attempt.error.clone(),
        succeeded: attempt.succeeded(),
    }
}

/// One event sent (or to be sent) to a subscription, with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryLog {
    #[schema(value_type = String, format = Uuid)]
    pub id: agentd_domain::DeliveryId,
    #[schema(value_type = String, format = Uuid)]
    pub webhook_id: WebhookId,
    #[schema(value_type = String, format = Uuid)]
    pub job_id: agentd_domain::JobId,
    #[schema(value_type = String)]
    pub event: WebhookEvent,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    pub attempt_count: usize,
    #[schema(required = true)]
    pub response_status: Option<u16>,
    #[schema(required = true)]
    pub latency_ms: Option<i64>,
    #[schema(format = DateTime, required = true)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub attempts: Vec<WebhookDeliveryAttempt>,
}

fn delivery_body(delivery: &WebhookDelivery) -> WebhookDeliveryLog {
    let last = delivery.attempts.last();
    WebhookDeliveryLog {
        id: delivery.id,
        webhook_id: delivery.webhook_id,
        job_id: delivery.job_id,
        event: delivery.event,
        status: delivery.state.as_str(),
        attempt_count: delivery.attempts.len(),
        response_status: last.and_then(|a| a.response_status),
        latency_ms: last.map(|a| a.latency_ms),
        next_attempt_at: delivery.next_attempt_at.as_ref().map(format),
        created_at: format(&delivery.created_at),
        attempts: delivery.attempts.iter().map(attempt_body).collect(),
    }
}

/// The body of a create (`url` required) or an update (every field optional).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON object the handler reads field by field
pub struct AgentWebhookRequest {
    /// Where events are POSTed (http or https; not a private address unless allowed).
    url: Option<String>,
    /// Job events to send (default: all).
    events: Option<Vec<String>>,
    /// The signing secret (`whsec_` + base64); generated when not given.
    secret: Option<String>,
    description: Option<String>,
    active: Option<bool>,
}

/// `{webhook_id}` with `{agent_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; handlers take `Path<(String, String)>`
pub struct WebhookParameters {
    /// The agent's id.
    #[param(format = Uuid)]
    agent_id: String,
    /// The subscription's id.
    #[param(format = Uuid)]
    webhook_id: String,
}

/// Page parameters of the webhook and delivery lists.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; `page_request` reads it
pub struct WebhookPageParameters {
    /// A page number within the paginated result set.
    page: Option<i64>,
    /// Number of results to return per page (at most 1000).
    page_size: Option<i64>,
}

/// A page of webhook subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaginatedAgentWebhookList {
    pub count: i64,
    #[schema(format = Uri, required = true)]
    pub next: Option<String>,
    #[schema(format = Uri, required = true)]
    pub previous: Option<String>,
    pub results: Vec<AgentWebhook>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaginatedWebhookDeliveryList {
    pub count: i64,
    #[schema(format = Uri, required = true)]
    pub next: Option<String>,
    #[schema(format = Uri, required = true)]
    pub previous: Option<String>,
    pub results: Vec<WebhookDeliveryLog>,
}

/// The body of a resend.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON object `queue_resend` reads
pub struct ResendAgentJobWebhookRequest {
    /// Send to only this subscription; omit for every active one of the agent.
    #[schema(format = Uuid)]
    webhook_id: Option<String>,
}

/// What a resend queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobWebhookResendResponse {
    /// Always `queued`.
    pub status: &'static str,
    /// Deliveries queued; 0 when the agent has no active subscription.
    pub queued: u64,
}

/// Refuses fields this resource does not have (a typo would otherwise be
/// ignored silently).
fn reject_unknown_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        Some(key) => Err(ApiError::bad_request_field(
            key,
            format!("Unknown field. Fields: {}.", FIELDS.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The fields of a create or update body; `None` for those not given.
struct WebhookFields {
    url: Option<String>,
    events: Option<Vec<WebhookEvent>>,
    secret: Option<WebhookSecret>,
    description: Option<String>,
    active: Option<bool>,
}

async fn read_fields(
    state: &AppState,
    body: &Map<String, Value>,
    creating: bool,
) -> Result<WebhookFields, ApiError> {
    reject_unknown_fields(body)?;
    let mut reader = FieldReader::new(body);
    let url = if creating {
        reader.required_string("url")
    } else {
        reader.non_blank_string("url")
    };
    let events = match body.get("events").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            let names: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            match parse_events(&names) {
                Ok(events) => Some(events),
                Err(message) => {
                    reader.errors.add("events", message);
                    None
                }
            }
        }
        Some(_) => {
            reader
                .errors
                .add("events", "Must be a list of event names.");
            None
        }
    };
    let secret = reader
        .string("secret")
        .and_then(|text| match WebhookSecret::parse(&text) {
            Ok(secret) => Some(secret),
            Err(message) => {
                reader.errors.add("secret", message);
                None
            }
        });
    let description = reader.string("description").and_then(|text| {
        reader.check("description", text, |t| {
            if t.chars().count() > MAX_DESCRIPTION_CHARS {
                Err(format!("At most {MAX_DESCRIPTION_CHARS} characters."))
            } else {
                Ok(())
            }
        })
    });
    let active = reader.bool("active");
    let url = match url {
        Some(text) => match check_target(&state.config.allow_private_urls, &text).await {
            Ok(url) => Some(url),
            Err(message) => {
                reader.errors.add("url", message);
                None
            }
        },
        None => None,
    };
    reader.finish()?;
    Ok(WebhookFields {
        url,
        events,
        secret,
        description,
        active,
    })
}

async fn load_webhook(
    state: &AppState,
    caller: &Caller,
    agent: &Agent,
    raw_id: &str,
) -> Result<Webhook, ApiError> {
    let id: WebhookId = raw_id.parse().map_err(|_| webhook_not_found())?;
    state
        .storage
        .get_webhook(caller.organization_id(), agent.id, id)
        .await?
        .ok_or_else(webhook_not_found)
}

fn page_request(uri: &Uri) -> Result<PageRequest, ApiError> {
    let params = QueryParams::from_uri(uri);
    params.reject_unknown(&["page", "page_size"])?;
    PageRequest::parse(params.first("page"), params.first("page_size"))
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/webhooks/",
    operation_id = "agents_webhooks_list",
    tag = "agents",
    summary = "List an agent's webhook subscriptions",
    params(AgentIdParameter, WebhookPageParameters),
    responses(
        (status = 200, body = PaginatedAgentWebhookList, description = "A page of subscriptions (secrets masked)."),
        (status = 400, body = ErrorBody, description = "An invalid or unknown query parameter."),
        (status = 404, body = ErrorBody, description = "No such agent, or the page is past the end."),
    ),
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    uri: Uri,
) -> Result<Json<wire::Page<AgentWebhook>>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let page = page_request(&uri)?;
    let found = state
        .storage
        .list_webhooks(
            caller.organization_id(),
            agent.id,
            page.offset(),
            page.page_size,
        )
        .await?;
    let results = found.items.iter().map(|w| webhook_body(w, false)).collect();
    Ok(Json(page.respond(
        found.total,
        results,
        &uri,
        state.public_url(),
    )?))
}

#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/webhooks/",
    operation_id = "agents_webhooks_create",
    tag = "agents",
    summary = "Subscribe a URL to an agent's job events",
    params(AgentIdParameter),
    request_body = AgentWebhookRequest,
    responses(
        (status = 201, body = AgentWebhook, description = "The subscription, with its secret in full."),
        (status = 400, body = ErrorBody, description = "Invalid or unknown fields."),
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
    let fields = read_fields(&state, &body, true).await?;
    let created_at = now();
    let webhook = Webhook {
        id: WebhookId::new(),
        organization_id: agent.organization_id,
        agent_id: agent.id,
        url: fields.url.unwrap_or_default(),
        events: fields.events.unwrap_or_else(|| WebhookEvent::ALL.to_vec()),
        secret: fields.secret.unwrap_or_else(generate_secret),
        description: fields.description.unwrap_or_default(),
        active: fields.active.unwrap_or(true),
        created_at,
        updated_at: created_at,
    };
    state.storage.create_webhook(&webhook).await?;
    Ok((StatusCode::CREATED, Json(webhook_body(&webhook, true))))
}

#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/webhooks/{webhook_id}/",
    operation_id = "agents_webhooks_retrieve",
    tag = "agents",
    summary = "Get a webhook subscription",
    params(WebhookParameters),
    responses(
        (status = 200, body = AgentWebhook, description = "The subscription (secret masked)."),
        (status = 404, body = ErrorBody, description = "No such agent or subscription."),
    ),
)]
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
) -> Result<Json<AgentWebhook>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let webhook = load_webhook(&state, &caller, &agent, &webhook_id).await?;
    Ok(Json(webhook_body(&webhook, false)))
}

#[utoipa::path(
    patch,
    path = "/v1/agents/{agent_id}/webhooks/{webhook_id}/",
    operation_id = "agents_webhooks_partial_update",
    tag = "agents",
    summary = "Change a webhook subscription",
    params(WebhookParameters),
    request_body = AgentWebhookRequest,
    responses(
        (status = 200, body = AgentWebhook, description = "The subscription (its secret in full when replaced)."),
        (status = 400, body = ErrorBody, description = "Invalid or unknown fields."),
        (status = 404, body = ErrorBody, description = "No such agent or subscription."),
    ),
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<AgentWebhook>, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let webhook = load_webhook(&state, &caller, &agent, &webhook_id).await?;
    let fields = read_fields(&state, &body, false).await?;
    let new_secret = fields.secret.is_some();
    let updated = state
        .storage
        .update_webhook(
            caller.organization_id(),
            agent.id,
            webhook.id,
            WebhookUpdate {
                url: fields.url,
                events: fields.events,
                secret: fields.secret,
                description: fields.description,
                active: fields.active,
            },
        )
        .await?
        .ok_or_else(webhook_not_found)?;
    Ok(Json(webhook_body(&updated, new_secret)))
}

#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}/webhooks/{webhook_id}/",
    operation_id = "agents_webhooks_destroy",
    tag = "agents",
    summary = "Delete a webhook subscription",
    params(WebhookParameters),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, body = ErrorBody, description = "No such agent or subscription."),
    ),
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Operation::Write)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let webhook = load_webhook(&state, &caller, &agent, &webhook_id).await?;
    if !state
        .storage
        .delete_webhook(caller.organization_id(), agent.id, webhook.id)
        .await?
    {
        return Err(webhook_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A subscription's deliveries, newest first, each with every attempt.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/webhooks/{webhook_id}/deliveries/",
    operation_id = "agents_webhooks_deliveries_list",
    tag = "agents",
    summary = "List a subscription's deliveries",
    params(WebhookParameters, WebhookPageParameters),
    responses(
        (status = 200, body = PaginatedWebhookDeliveryList, description = "A page of deliveries, newest first."),
        (status = 400, body = ErrorBody, description = "An invalid or unknown query parameter."),
        (status = 404, body = ErrorBody, description = "No such agent or subscription, or the page is past the end."),
    ),
)]
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<wire::Page<WebhookDeliveryLog>>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let webhook = load_webhook(&state, &caller, &agent, &webhook_id).await?;
    let page = page_request(&uri)?;
    let found = state
        .storage
        .list_deliveries(webhook.id, page.offset(), page.page_size)
        .await?;
    let results = found.items.iter().map(delivery_body).collect();
    Ok(Json(page.respond(
        found.total,
        results,
        &uri,
        state.public_url(),
    )?))
}

/// Queues the job's event again for every active subscription of its
/// agent, or for the one `webhook_id` names; 400 while the job runs.
#[utoipa::path(
    post,
    path = "/v1/agents/jobs/{job_id}/webhook/resend/",
    operation_id = "agents_jobs_webhook_resend_create",
    tag = "agents",
    summary = "Send a finished job's webhook again",
    params(JobIdParameter),
    request_body = ResendAgentJobWebhookRequest,
    responses(
        (status = 200, body = AgentJobWebhookResendResponse, description = "The deliveries queued."),
        (status = 400, body = ErrorBody, description = "The job has not finished, or `webhook_id` is invalid (the text is in `error` too)."),
        (status = 404, body = ErrorBody, description = "No such job or subscription."),
    ),
)]
pub async fn resend(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Response {
    let queued = match body {
        Ok(JsonObject(body)) => queue_resend(&state, &caller, &job_id, &body).await,
        Err(error) => Err(error),
    };
    match queued {
        Ok(queued) => Json(AgentJobWebhookResendResponse {
            status: "queued",
            queued,
        })
        .into_response(),
        Err(error) => error.into_response_with_error_field(),
    }
}

async fn queue_resend(
    state: &AppState,
    caller: &Caller,
    job_id: &str,
    body: &Map<String, Value>,
) -> Result<u64, ApiError> {
    caller.require(Operation::Run)?;
    let job = load_job(state, caller, job_id).await?;
    let mut reader = FieldReader::new(body);
    let only = reader
        .string("webhook_id")
        .and_then(|text| match text.parse::<WebhookId>() {
            Ok(id) => Some(id),
            Err(_) => {
                reader
                    .errors
                    .add("webhook_id", format!("'{text}' is not a valid UUID."));
                None
            }
        });
    reader.finish()?;
    let Some(event) = WebhookEvent::for_status(job.status) else {
        return Err(ApiError::bad_request(format!(
            "Agent job {} has not reached a terminal status (status {}); \
             its webhook is sent when it finishes.",
            job.id,
            job.status.name()
        )));
    };
    let targets = match only {
        Some(id) => {
            state
                .storage
                .get_webhook(caller.organization_id(), job.agent_id, id)
                .await?
                .ok_or_else(|| {
                    ApiError::NotFound("Webhook not found for this job's agent.".into())
                })?;
            DeliveryTargets::One(id)
        }
        None => DeliveryTargets::AllActive,
    };
    Ok(state
        .storage
        .queue_deliveries(job.id, event, targets)
        .await?)
}
