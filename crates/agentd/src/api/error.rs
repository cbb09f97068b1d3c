//! Every error the API returns, mapped to HTTP in one place. Bodies are
//! `{"detail", "message"}` (same text; the seed reads `message`, the SDKs
//! `detail`). A 400 for invalid fields also carries Roe's flat field map
//! beside them: `{"name": ["..."], "detail": "...", "message": "..."}`.
//! 500s are logged, never shown.

use agentd_domain::{FieldErrors, JobId};
use agentd_storage::{StorageError, StorageErrorKind};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::files::FileError;

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
    UnprocessableEntity(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{message}")]
    GatewayTimeout { job_id: JobId, message: String },
    /// Storage is full or unavailable: nothing is wrong with the request.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// A client error the MCP transport found (wrong `Accept`, unknown
    /// session, ...), with its status and its message.
    #[error("{message}")]
    McpTransport { status: StatusCode, message: String },
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
            Self::UnprocessableEntity(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::McpTransport { status, .. } => *status,
            Self::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

pub const STORAGE_FULL: &str = "The server's storage is full; try again later.";
pub const STORAGE_UNAVAILABLE: &str =
    "The server's database is busy or unavailable; try again later.";
/// A bucket (`AGENTD_OBJECT_STORE_URL`) that did not answer or refused.
pub const FILE_STORE_UNAVAILABLE: &str = "The server's file store is unavailable; try again later.";

/// The one place storage failures become statuses: never the caller's fault
/// (no 4xx) except a conflict; the database's own text is only logged.
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error.kind() {
            StorageErrorKind::Conflict => Self::Conflict(format!("{error}.")),
            StorageErrorKind::Full => {
                tracing::warn!(%error, "storage is full");
                Self::ServiceUnavailable(STORAGE_FULL.into())
            }
            StorageErrorKind::Unavailable => {
                tracing::warn!(%error, "storage is unavailable");
                Self::ServiceUnavailable(STORAGE_UNAVAILABLE.into())
            }
            StorageErrorKind::Internal => Self::Internal(error.into()),
        }
    }
}

/// The file store's I/O failures, mapped like storage ones (a full disk is
/// 503); a rejected file is the caller's 400.
impl From<FileError> for ApiError {
    fn from(error: FileError) -> Self {
        match error {
            FileError::Rejected(message) => Self::bad_request(message),
            FileError::Storage(error) => error.into(),
            FileError::Io(io) if agentd_storage::is_disk_full(&io) => {
                tracing::warn!(error = %io, "the file store is full");
                Self::ServiceUnavailable(STORAGE_FULL.into())
            }
            FileError::Unavailable(error) => {
                tracing::warn!(%error, "the object store is unavailable");
                Self::ServiceUnavailable(FILE_STORE_UNAVAILABLE.into())
            }
            FileError::Io(io) => Self::Internal(anyhow::Error::new(io).context("file store")),
            FileError::Missing(id) => {
                Self::Internal(anyhow::anyhow!("the bytes of file {id} are missing"))
            }
        }
    }
}

/// Puts each field's messages beside `detail` and `message`, as Roe (DRF)
/// does. A field that is itself named `detail` or `message` is reported as
/// `field:detail` / `field:message`, so the summary keys keep their meaning.
fn add_field_errors(body: &mut serde_json::Value, errors: &FieldErrors) {
    for (field, messages) in errors.fields() {
        let key = match field.as_str() {
            "detail" | "message" => format!("field:{field}"),
            _ => field.clone(),
        };
        body[key] = json!(messages);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        self.respond(body)
    }
}

impl ApiError {
    /// `{"detail", "message"}` and, for a 400 with field errors, the flat
    /// field map; an internal error is logged and shown generically.
    fn body(&self) -> serde_json::Value {
        let message = match self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "Internal server error.".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({"detail": message, "message": message});
        match self {
            Self::BadRequest {
                errors: Some(errors),
                ..
            } => add_field_errors(&mut body, errors),
            Self::GatewayTimeout { job_id, .. } => body["job_id"] = json!(job_id),
            _ => {}
        }
        body
    }

    fn respond(&self, body: serde_json::Value) -> Response {
        let status = self.status();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
        }
        if let Self::GatewayTimeout { job_id, .. } = self {
            if let Ok(value) = HeaderValue::from_str(&job_id.to_string()) {
                response.headers_mut().insert("x-job-id", value);
            }
        }
        response
    }

    /// The answer for operations whose 400 Roe documents as
    /// `ApiErrorResponse` (`{"error": ...}`): the usual body, and for a 400
    /// the message under `error` too.
    pub fn into_response_with_error_field(self) -> Response {
        let mut body = self.body();
        if matches!(self, Self::BadRequest { .. }) {
            body["error"] = body["detail"].clone();
        }
        self.respond(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: impl Into<ApiError>) -> (StatusCode, serde_json::Value) {
        let response = error.into().into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn storage_failures_are_never_the_callers_fault() {
        let (status, body) = answer(StorageError::from(sqlx::Error::PoolTimedOut)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["detail"], STORAGE_UNAVAILABLE);
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let (status, body) = answer(FileError::Io(full)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["detail"], STORAGE_FULL);
        let (status, _) = answer(StorageError::Conflict("organization x".into())).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = answer(StorageError::Corrupt("secret row text".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["detail"], "Internal server error.");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let (status, _) = answer(FileError::Io(missing)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let unreachable = object_store::Error::Generic {
            store: "S3",
            source: "connection refused to 127.0.0.1:9".into(),
        };
        let (status, body) = answer(FileError::Unavailable(unreachable)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["detail"], FILE_STORE_UNAVAILABLE);
        let (status, _) = answer(FileError::Rejected("not a PNG".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
