//! `/v1/agents/types/` and `/v1/agents/models/`.

use std::sync::Arc;

use agentd_domain::Operation;
use agentd_providers::{Capability, ModelSpec};
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::QueryParams;
use crate::auth::Caller;
use crate::startup::AppState;

pub async fn engine_types(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let engines: Vec<Value> = state
        .engines
        .all()
        .iter()
        .map(|engine| {
            json!({
                "engine_class_id": engine.class_id(),
                "name": engine.name(),
                "description": engine.description(),
                "input_schema": engine.config_schema(),
                "default_engine_config": engine.default_config(),
            })
        })
        .collect();
    Ok(Json(json!({
        "engine_types": state.engines.class_ids(),
        "total_count": engines.len(),
        "engines": engines,
    })))
}

fn model_json(model: &ModelSpec, usable: bool) -> Value {
    json!({
        "id": model.id,
        "providers": [model.provider],
        "capabilities": model.capabilities,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "supports_system_message": model.supports_system_message,
        "supports_temperature": model.supports_temperature,
        "supports_reasoning_effort": model.supports_reasoning_effort,
        "supports_thinking": model.supports_reasoning_effort,
        "supports_json_output": model.supports_json_output,
        "supports_json_schema": model.supports_json_schema,
        "input_price_per_million_tokens": model.input_price,
        "output_price_per_million_tokens": model.output_price,
        "usable": usable,
    })
}

pub async fn models(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    caller.require(Operation::Read)?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(&["capability", "all"])?;
    /// What a `capability` filter asks for.
    enum Wanted {
        Any,
        Only(Capability),
        /// A modality Roe knows that no model here takes.
        Unsupported,
    }
    let wanted = match params.first("capability") {
        None => Wanted::Any,
        Some("audio" | "video") => Wanted::Unsupported,
        Some(text) => Wanted::Only(serde_json::from_value::<Capability>(json!(text)).map_err(
            |_| {
                ApiError::bad_request_field(
                    "capability",
                    format!("Unknown capability '{text}' (text, image, audio or video)."),
                )
            },
        )?),
    };
    // `all=true`: also models whose provider is not configured here.
    let show_all = params.flag("all")?.unwrap_or(false);
    let models: Vec<Value> = state
        .models
        .catalog()
        .models()
        .iter()
        .filter(|m| match wanted {
            Wanted::Any => true,
            Wanted::Only(capability) => m.supports(capability),
            Wanted::Unsupported => false,
        })
        .filter_map(|m| {
            // Listed: models whose own provider is configured. Usable: also
            // those the local fallback would run.
            let listed = show_all || state.models.is_configured(&m.provider);
            listed.then(|| model_json(m, state.models.is_usable(m)))
        })
        .collect();
    Ok(Json(json!({
        "models": models,
        "total_count": models.len(),
        "tenant_scope": "all",
    })))
}
