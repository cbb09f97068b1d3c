//! `/v1/agents/types/` and `/v1/agents/models/`.

use std::sync::Arc;

use agentd_domain::Operation;
use agentd_providers::{Capability, ModelSpec};
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::QueryParams;
use super::openapi::ErrorBody;
use crate::auth::Caller;
use crate::startup::AppState;

/// The engines agents can be created with.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentEngineTypeList {
    /// The `engine_class_id` values accepted when creating an agent.
    pub engine_types: Vec<String>,
    pub total_count: usize,
    /// Each engine's `engine_class_id`, `name`, `description`,
    /// `input_schema` (the JSON Schema of its `engine_config`) and
    /// `default_engine_config`.
    #[schema(value_type = Vec<Object>)]
    pub engines: Vec<Value>,
}

#[utoipa::path(
    get,
    path = "/v1/agents/types/",
    operation_id = "discovery_agent_engine_types_list",
    tag = "discovery",
    summary = "List the engines and the configuration each takes",
    responses((status = 200, body = AgentEngineTypeList, description = "The engines.")),
)]
pub async fn engine_types(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<AgentEngineTypeList>, ApiError> {
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
    Ok(Json(AgentEngineTypeList {
        engine_types: state
            .engines
            .class_ids()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        total_count: engines.len(),
        engines,
    }))
}

/// A model `engine_config.model` may name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SupportedLLMModel)]
pub struct SupportedLlmModel {
    pub id: String,
    /// The provider that serves it.
    pub providers: Vec<String>,
    /// Input capabilities: `text`, `image`.
    #[schema(value_type = Vec<String>)]
    pub capabilities: Vec<Capability>,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub supports_system_message: bool,
    pub supports_temperature: bool,
    pub supports_reasoning_effort: bool,
    pub supports_thinking: bool,
    pub supports_json_output: bool,
    pub supports_json_schema: bool,
    /// US dollars per million input tokens.
    pub input_price_per_million_tokens: f64,
    /// US dollars per million output tokens.
    pub output_price_per_million_tokens: f64,
    /// Whether a run with it can be served now (its provider, or the local
    /// fallback, is configured).
    pub usable: bool,
}

impl SupportedLlmModel {
    fn new(model: &ModelSpec, usable: bool) -> Self {
        Self {
            id: model.id.clone(),
            providers: vec![model.provider.clone()],
            capabilities: model.capabilities.clone(),
            context_window: model.context_window,
            max_output_tokens: model.max_output_tokens,
            supports_system_message: model.supports_system_message,
            supports_temperature: model.supports_temperature,
            supports_reasoning_effort: model.supports_reasoning_effort,
            supports_thinking: model.supports_reasoning_effort,
            supports_json_output: model.supports_json_output,
            supports_json_schema: model.supports_json_schema,
            input_price_per_million_tokens: model.input_price,
            output_price_per_million_tokens: model.output_price,
            usable,
        }
    }
}

/// The models of this server.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SupportedLLMModelList)]
pub struct SupportedLlmModelList {
    pub models: Vec<SupportedLlmModel>,
    pub total_count: usize,
    /// Always `all`.
    pub tenant_scope: String,
}

/// The models list's query parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads it with `QueryParams`
pub struct ModelQuery {
    /// Only models that take this input: text, image, audio or video.
    capability: Option<String>,
    /// Also models whose provider is not configured here.
    all: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/v1/agents/models/",
    operation_id = "discovery_supported_models_list",
    tag = "discovery",
    summary = "List the models engine configurations may name",
    params(ModelQuery),
    responses(
        (status = 200, body = SupportedLlmModelList, description = "The models."),
        (status = 400, body = ErrorBody, description = "An unknown capability or query parameter."),
    ),
)]
pub async fn models(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<SupportedLlmModelList>, ApiError> {
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
    let models: Vec<SupportedLlmModel> = state
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
            listed.then(|| SupportedLlmModel::new(m, state.models.is_usable(m)))
        })
        .collect();
    Ok(Json(SupportedLlmModelList {
        total_count: models.len(),
        models,
        tenant_scope: "all".into(),
    }))
}
