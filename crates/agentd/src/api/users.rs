//! `/v1/users/current_user/`: who the API key stands for.

use axum::Json;

use super::error::ApiError;
use super::wire;
use crate::auth::Caller;

#[utoipa::path(
    get,
    path = "/v1/users/current_user/",
    operation_id = "users_current_user_retrieve",
    tag = "users",
    summary = "Describe the API key the request is made with",
    responses((status = 200, body = wire::CurrentUser, description = "The key, as a user.")),
)]
pub async fn current_user(caller: Caller) -> Result<Json<wire::CurrentUser>, ApiError> {
    Ok(Json(wire::current_user(&caller.key)))
}
