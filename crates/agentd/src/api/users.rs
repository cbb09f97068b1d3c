//! `/v1/users/current_user/`: who the API key stands for.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::wire;
use crate::auth::Caller;
use crate::startup::AppState;

/// Roe's user fields, plus what the console shows and checks before an
/// upload: the organization's name and the largest request body accepted.
pub async fn current_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let organization = state
        .storage
        .get_organization(caller.organization_id())
        .await?;
    let mut user = wire::current_user(&caller.key);
    user["organization_name"] = json!(organization.map(|org| org.name));
    user["max_upload_bytes"] = json!(state.config.max_request_bytes);
    Ok(Json(user))
}
