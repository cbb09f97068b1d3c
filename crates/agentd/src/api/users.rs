//! `/v1/users/current_user/`: who the API key stands for.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use super::wire;
use crate::auth::Caller;
use crate::startup::AppState;

/// Roe's user fields, plus what the console shows and checks before an
/// upload: the organization's name and the largest request body accepted.
#[utoipa::path(
    get,
    path = "/v1/users/current_user/",
    operation_id = "users_current_user_retrieve",
    tag = "users",
    summary = "Describe the API key the request is made with",
    responses((status = 200, body = wire::CurrentUser, description = "The key, as a user.")),
)]
pub async fn current_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<wire::CurrentUser>, ApiError> {
    let organization = state
        .storage
        .get_organization(caller.organization_id())
        .await?;
    Ok(Json(wire::current_user(
        &caller.key,
        organization.map(|org| org.name),
        state.config.max_request_bytes,
    )))
}
