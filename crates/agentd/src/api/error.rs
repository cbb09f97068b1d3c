//! Every error the API returns, mapped to HTTP in one place. Bodies are
//! `{"detail", "message"}` (same text; the seed reads `message`, the SDKs
//! `detail`), plus `errors` for field validation. 500s are logged, never shown.

use agentd_domain::{FieldErrors, JobId};
use agentd_storage::StorageError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        errors: Option<FieldErrors>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{message}")]
    GatewayTimeout { job_id: JobId, message: String },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            errors: None,
        }
    }

    pub fn bad_request_field(field: &str, message: impl Into<String>) -> Self {
        FieldErrors::single(field, message).into()
    }

    pub fn agent_not_found() -> Self {
        Self::NotFound("Agent not found.".into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps an axum rejection (body, JSON, multipart) to a JSON error.
    pub fn from_rejection(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(format!(
                "The request body is larger than this server accepts: {text}"
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(text),
            _ => Self::bad_request(text),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::BadRequest {
            message: errors.summary(),
            errors: Some(errors),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "Internal server error.".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({"detail": message, "message": message});
        match &self {
            Self::BadRequest {
                errors: Some(errors),
                ..
            } => body["errors"] = json!(errors),
            Self::GatewayTimeout { job_id, .. } => body["job_id"] = json!(job_id),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        if let Self::GatewayTimeout { job_id, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(&job_id.to_string()) {
                response.headers_mut().insert("x-job-id", value);
            }
        }
        response
    }
}
