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
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{FieldReader, JsonObject, QueryParams};
use super::jobs::load_job;
use super::{load_agent, wire};
use super::pagination::PageRequest;
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

fn webhook_body(webhook: &Webhook, show_secret: bool) -> Value {
    json!({
        "id": webhook.id,
        "agent_id": webhook.agent_id,
        "url": webhook.url,
        "events": webhook.events,
        "description": webhook.description,
        "active": webhook.active,
        "secret": if show_secret { webhook.secret.as_str().to_owned() } else { masked(&webhook.secret) },
        "created_at": format(&webhook.created_at),
        "updated_at": format(&webhook.updated_at),
    })
}

fn attempt_body(attempt: &DeliveryAttempt) -> Value {
    json!({
        "attempted_at": format(&attempt.attempted_at),
        "response_status": attempt.response_status,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "succeeded": attempt.succeeded(),
    })
}

fn delivery_body(delivery: &WebhookDelivery) -> Value {
    let last = delivery.attempts.last();
    json!({
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "job_id": delivery.job_id,
        "event": delivery.event,
        "status": delivery.state.as_str(),
        "attempt_count": delivery.attempts.len(),
        "response_status": last.and_then(|a| a.response_status),
        "latency_ms": last.map(|a| a.latency_ms),
        "next_attempt_at": delivery.next_attempt_at.as_ref().map(format),
        "created_at": format(&delivery.created_at),
        "attempts": delivery.attempts.iter().map(attempt_body).collect::<Vec<_>>(),
    })
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

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(agent_id): Path<String>,
    uri: Uri,
) -> Result<Json<wire::Page<Value>>, ApiError> {
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

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let agent = load_agent(&state, &caller, &agent_id).await?;
    let webhook = load_webhook(&state, &caller, &agent, &webhook_id).await?;
    Ok(Json(webhook_body(&webhook, false)))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
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
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((agent_id, webhook_id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<wire::Page<Value>>, ApiError> {
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
        Ok(queued) => Json(json!({"status": "queued", "queued": queued})).into_response(),
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
