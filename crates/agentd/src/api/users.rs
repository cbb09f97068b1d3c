//! `/v1/users/current_user/`: who the API key stands for.

use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::wire;
use crate::auth::Caller;

pub async fn current_user(caller: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(wire::current_user(&caller.key)))
}
