//! The HTTP API: one module per resource, errors mapped in [`error`].

pub mod agents;
pub mod discovery;
pub mod docs;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod mcp;
pub mod monitoring;
pub mod openapi;
pub mod pagination;
pub mod references;
pub mod run_body;
pub mod runs;
pub mod submit;
pub mod usage;
pub mod users;
pub mod versions;
pub mod webhooks;
pub mod wire;

use std::sync::Arc;

use agentd_domain::{Agent, AgentId};
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Caller;
use crate::startup::AppState;
use error::ApiError;

pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.config.max_request_bytes;
    let router = Router::new()
        .route("/v1/agents/", get(agents::list).post(agents::create))
        .route("/v1/agents/types/", get(discovery::engine_types))
        .route("/v1/agents/models/", get(discovery::models))
        .route("/v1/agents/usage/", get(usage::usage))
        .route(
            "/v1/agents/{agent_id}/",
            get(agents::retrieve)
                .put(agents::update)
                .patch(agents::partial_update)
                .delete(agents::delete),
        )
        .route("/v1/agents/{agent_id}/duplicate/", post(agents::duplicate))
        .route(
            "/v1/agents/{agent_id}/versions/",
            get(versions::list).post(versions::create),
        )
        .route(
            "/v1/agents/{agent_id}/versions/current/",
            get(versions::current),
        )
        .route(
            "/v1/agents/{agent_id}/versions/{agent_version_id}/",
            get(versions::retrieve)
                .put(versions::update)
                .patch(versions::partial_update)
                .delete(versions::delete),
        )
        .route(
            "/v1/agents/{agent_id}/webhooks/",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/v1/agents/{agent_id}/webhooks/{webhook_id}/",
            get(webhooks::retrieve)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/agents/{agent_id}/webhooks/{webhook_id}/deliveries/",
            get(webhooks::deliveries),
        )
        .route(
            "/v1/agents/jobs/{job_id}/webhook/resend/",
            post(webhooks::resend),
        )
        .route("/v1/agents/{agent_id}/jobs/", get(jobs::list))
        .route(
            "/v1/agents/{agent_id}/jobs/cancel-all/",
            post(jobs::cancel_all),
        )
        .route("/v1/agents/jobs/statuses/", post(jobs::statuses))
        .route("/v1/agents/jobs/results/", post(jobs::results))
        .route("/v1/agents/jobs/{job_id}/status/", get(jobs::status))
        .route("/v1/agents/jobs/{job_id}/result/", get(jobs::result))
        .route("/v1/agents/jobs/{job_id}/cancel/", post(jobs::cancel))
        .route(
            "/v1/agents/jobs/{job_id}/delete-data/",
            post(jobs::delete_data),
        )
        .route(
            "/v1/agents/jobs/{job_id}/references/{resource_id}/",
            get(references::retrieve),
        )
        .route(
            "/v1/agents/jobs/{job_id}/artifacts/result/",
            get(references::artifact_result),
        )
        .route("/v1/agents/run/{agent_id}/", post(runs::run_sync))
        .route("/v1/agents/run/{agent_id}/async/", post(runs::run_async))
        .route(
            "/v1/agents/run/{agent_id}/async/many/",
            post(runs::run_async_many),
        )
        .route(
            "/v1/agents/run/{agent_id}/versions/{agent_version_id}/",
            post(runs::run_version_sync),
        )
        .route(
            "/v1/agents/run/{agent_id}/versions/{agent_version_id}/async/",
            post(runs::run_version_async),
        )
        .route("/v1/users/current_user/", get(users::current_user))
        .route("/mcp", mcp::service(Arc::clone(&state)))
        .route("/health", get(|| async { "ok" }))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(docs::page))
        .route("/docs/{asset}", get(docs::asset))
        .merge(monitoring::routes())
        .merge(crate::console::router())
        .fallback(|| async { ApiError::NotFound("Not found.".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body));
    #[cfg(debug_assertions)]
    let router = router.layer(axum::middleware::from_fn(crate::panics::panic_on_request));
    with_common_layers(router, state)
}

/// The probes and metrics alone, for `AGENTD_METRICS_ADDR`.
pub fn monitoring_router(state: Arc<AppState>) -> Router {
    let router = monitoring::routes()
        .fallback(|| async { ApiError::NotFound("Not found.".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    with_common_layers(router, state)
}

/// Panics answered as JSON 500s, request tracing, and HTTP metrics.
fn with_common_layers(router: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        // Outermost: it sees the answer to every request, panics included.
        .layer(axum::middleware::from_fn(crate::metrics::http::track))
        .with_state(state)
}

/// A handler panicked: logged, answered with a generic JSON 500.
fn panic_response(panic: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    let message = crate::panics::panic_message(panic.as_ref());
    ApiError::Internal(anyhow::anyhow!("a request handler panicked: {message}")).into_response()
}

/// An agent of the caller's organization: 404 for a malformed id, an
/// unknown agent or another organization's; 403 for a key limited to
/// other agents.
pub async fn load_agent(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Agent, ApiError> {
    let id: AgentId = raw_id.parse().map_err(|_| ApiError::agent_not_found())?;
    let agent = state
        .storage
        .get_agent(caller.organization_id(), id)
        .await?
        .ok_or_else(ApiError::agent_not_found)?;
    if !caller.key.may_access_agent(&agent.id) {
        return Err(ApiError::Forbidden(
            "This API key does not have access to this agent.".into(),
        ));
    }
    Ok(agent)
}
