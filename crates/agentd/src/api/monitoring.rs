//! Probes and metrics for operators: `/healthz` (the process runs),
//! `/readyz` (it can serve: the database answers and the configured local
//! model is loaded) and `/metrics` (Prometheus text format).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::startup::AppState;

/// A database that has not answered within this is not ready.
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/healthz`, `/readyz` and `/metrics`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Liveness: answers while the process runs, whatever its dependencies do.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when every check passes, else 503 naming what failed.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let database = database_check(&state).await;
    let local_model = if crate::local_model::local_models_loaded(&state.config, &state.models) {
        "ok"
    } else {
        "not loaded"
    };
    let mut not_ready = Vec::new();
    if database != "ok" {
        not_ready.push(format!("database: {database}"));
    }
    if local_model != "ok" {
        not_ready.push(format!("local model: {local_model}"));
    }
    let checks = json!({"database": database, "local_model": local_model});
    if not_ready.is_empty() {
        return Json(json!({"status": "ready", "checks": checks})).into_response();
    }
    let message = format!("Not ready: {}.", not_ready.join("; "));
    let body = json!({
        "status": "not ready",
        "checks": checks,
        "detail": message,
        "message": message,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// `ok`, or why the database is not usable (its own error only logged).
async fn database_check(state: &AppState) -> &'static str {
    match tokio::time::timeout(DATABASE_PROBE_TIMEOUT, state.storage.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the database failed");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            "timed out"
        }
    }
}

/// The metrics of this process and the job gauges of the database.
pub async fn metrics(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    if let Some(token) = &state.config.metrics_token {
        if let Err(error) = crate::auth::check_metrics_token(&parts, token) {
            return error.into_response();
        }
    }
    let mut text = state
        .metrics
        .as_ref()
        .map(metrics_exporter_prometheus::PrometheusHandle::render)
        .unwrap_or_default();
    text.push_str(&state.job_counts.render(state.models.default_model()).await);
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}
