//! What jobs kept for their callers: reference files (with HTTP ranges and
//! `download=true` for an attachment) and artifacts (`{"result": …}`).

use std::sync::Arc;

use agentd_domain::{Operation, ReferenceId};
use agentd_storage::ReferenceLookup;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::QueryParams;
use super::jobs::load_job;
use super::openapi::{AgentJobIdParameter, ErrorBody};
use crate::auth::Caller;
use crate::startup::AppState;

fn reference_not_found() -> ApiError {
    ApiError::NotFound("Reference not found for this agent job.".into())
}

/// `{resource_id}` of a reference's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; the handler takes `Path<(String, String)>`
pub struct ReferenceIdParameter {
    /// The reference's id, as the job's result names it.
    resource_id: String,
}

/// The query a reference accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads it with `QueryParams`
pub struct ReferenceQuery {
    /// Set true to receive a Content-Disposition attachment header.
    download: Option<bool>,
}

/// The header a reference reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header, names("Range"))]
#[allow(dead_code)] // documents the header; the handler reads it from the `HeaderMap`
pub struct RangeHeader(
    /// One byte range (`bytes=first-last`, `bytes=first-`, `bytes=-suffix`):
    /// answered with 206. Several ranges, another unit or a malformed
    /// header are answered with the whole file.
    Option<String>,
);

/// A file's bytes; the `Content-Type` answered is the stored file's.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the answer; the handler answers the bytes
pub struct FileBytes(Vec<u8>);

/// Serves a file the job's engine saved (a PDF of selected pages, ...):
/// `inline` unless `download=true`, one byte range on request.
#[utoipa::path(
    get,
    path = "/v1/agents/jobs/{agent_job_id}/references/{resource_id}/",
    operation_id = "agents_jobs_references_retrieve",
    tag = "agents",
    summary = "Get a reference file of a job",
    params(AgentJobIdParameter, ReferenceIdParameter, ReferenceQuery, RangeHeader),
    responses(
        (
            status = 200,
            body = FileBytes,
            content_type = "application/octet-stream",
            description = "The file's bytes. The actual Content-Type is the stored file's \
                           (a PDF, an image, ...).",
            headers(
                ("Content-Disposition" = String, description = "`inline`, or `attachment` with `download=true`, with the file name."),
                ("Accept-Ranges" = String, description = "`bytes`."),
            ),
        ),
        (
            status = 206,
            body = FileBytes,
            content_type = "application/octet-stream",
            description = "The requested byte range of the file.",
            headers(
                ("Content-Range" = String, description = "`bytes first-last/size`."),
                ("Content-Disposition" = String, description = "As for 200."),
                ("Accept-Ranges" = String, description = "`bytes`."),
            ),
        ),
        (status = 400, body = ErrorBody, description = "An unknown query parameter, or `download` is not a boolean."),
        (status = 404, body = ErrorBody, description = "No such job, or the job has no such reference."),
        (
            status = 416,
            body = ErrorBody,
            description = "The range starts past the end of the file.",
            headers(("Content-Range" = String, description = "`bytes */size`.")),
        ),
    ),
)]
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((job_id, resource_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(&["download"])?;
    let download = params.flag("download")?.unwrap_or(false);
    let job = load_job(&state, &caller, &job_id).await?;
    let id: ReferenceId = resource_id.parse().map_err(|_| reference_not_found())?;
    let opened = state
        .references
        .open(
            caller.organization_id(),
            job.id,
            ReferenceLookup::Reference(id),
        )
        .await?
        .ok_or_else(reference_not_found)?;
    let file = &opened.reference.file;
    let disposition = content_disposition(download, &file.file_name);
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map_or(ByteRange::Whole, |text| {
            byte_range(text, opened.bytes.len() as u64)
        });
    let total = opened.bytes.len();
    let (status, body, content_range) = match range {
        ByteRange::Whole => (StatusCode::OK, opened.bytes, None),
        ByteRange::Part { first, last } => (
            StatusCode::PARTIAL_CONTENT,
            opened.bytes[first as usize..=last as usize].to_vec(),
            Some(format!("bytes {first}-{last}/{total}")),
        ),
        ByteRange::Unsatisfiable => {
            let headers = [(header::CONTENT_RANGE, format!("bytes */{total}"))];
            let message =
                format!("The requested range is not satisfiable: the file has {total} bytes.");
            // The body every error has (see `ApiError`), with the header 416 needs.
            let body = json!({"detail": message, "message": message});
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers, Json(body)).into_response());
        }
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, header_value(&file.content_type));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_DISPOSITION, header_value(&disposition));
    if let Some(content_range) = content_range {
        out.insert(header::CONTENT_RANGE, header_value(&content_range));
    }
    Ok(response)
}

/// The query of an artifact's result.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads it with `QueryParams`
pub struct ArtifactQuery {
    /// The artifact key, as the job's result names it.
    artifact_key: String,
}

/// An artifact's content.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentJobArtifactResult {
    /// The artifact's result content (any JSON value).
    pub result: Value,
}

/// The JSON a job's engine saved under an artifact key (the details of a
/// page selection, ...).
#[utoipa::path(
    get,
    path = "/v1/agents/jobs/{agent_job_id}/artifacts/result/",
    operation_id = "agents_jobs_artifacts_result_retrieve",
    tag = "agents",
    summary = "Get an artifact of a job (result only)",
    params(AgentJobIdParameter, ArtifactQuery),
    responses(
        (status = 200, body = AgentJobArtifactResult, description = "The artifact's result field."),
        (status = 400, body = ErrorBody, description = "`artifact_key` is missing, or an unknown query parameter."),
        (status = 404, body = ErrorBody, description = "No such job, or the job has no such artifact."),
    ),
)]
pub async fn artifact_result(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(job_id): Path<String>,
    uri: Uri,
) -> Result<Json<AgentJobArtifactResult>, ApiError> {
    caller.require(Operation::ReadJobs)?;
    let params = QueryParams::from_uri(&uri);
    params.reject_unknown(&["artifact_key"])?;
    let key = params.first("artifact_key").ok_or_else(|| {
        ApiError::bad_request_field("artifact_key", "This parameter is required.")
    })?;
    let job = load_job(&state, &caller, &job_id).await?;
    let opened = state
        .references
        .open(
            caller.organization_id(),
            job.id,
            ReferenceLookup::ArtifactKey(key),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("Artifact not found in storage.".into()))?;
    let result: Value = serde_json::from_slice(&opened.bytes).map_err(|error| {
        ApiError::Internal(anyhow::anyhow!("artifact {key} is not JSON: {error}"))
    })?;
    Ok(Json(AgentJobArtifactResult { result }))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `attachment` (with `download=true`) or `inline`, with the stored name:
/// an ASCII fallback and the exact name percent-encoded (RFC 6266).
fn content_disposition(download: bool, file_name: &str) -> String {
    let kind = if download { "attachment" } else { "inline" };
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = file_name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteRange {
    /// No usable range (none, several, another unit, malformed): the whole
    /// file, as RFC 9110 allows.
    Whole,
    /// Bytes `first..=last`.
    Part {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

fn byte_range(header: &str, len: u64) -> ByteRange {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    let (first, last) = match (start.trim().is_empty(), end.trim().is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(end) {
            Some(0) => return ByteRange::Unsatisfiable,
            Some(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            None => return ByteRange::Whole,
        },
        // `a-`: from a to the end.
        (false, true) => match number(start) {
            Some(a) => (a, len.saturating_sub(1)),
            None => return ByteRange::Whole,
        },
        (false, false) => match (number(start), number(end)) {
            (Some(a), Some(b)) if a <= b => (a, b.min(len.saturating_sub(1))),
            _ => return ByteRange::Whole,
        },
        (true, true) => return ByteRange::Whole,
    };
    if len == 0 || first >= len {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Part { first, last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_served_and_others_fall_back_to_the_whole_file() {
        let part = |first, last| ByteRange::Part { first, last };
        assert_eq!(byte_range("bytes=0-9", 100), part(0, 9));
        assert_eq!(byte_range("bytes=90-200", 100), part(90, 99));
        assert_eq!(byte_range("bytes=95-", 100), part(95, 99));
        assert_eq!(byte_range("bytes=-10", 100), part(90, 99));
        assert_eq!(byte_range("bytes=-500", 100), part(0, 99));
        assert_eq!(byte_range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=5-2", 100), ByteRange::Whole);
        assert_eq!(byte_range("bytes=0-1,4-5", 100), ByteRange::Whole);
        assert_eq!(byte_range("items=0-1", 100), ByteRange::Whole);
        assert_eq!(byte_range("bytes=x-y", 100), ByteRange::Whole);
    }

    #[test]
    fn file_names_are_quoted_safely() {
        assert_eq!(
            content_disposition(true, "pages 1-3.pdf"),
            "attachment; filename=\"pages 1-3.pdf\"; filename*=UTF-8''pages%201-3.pdf"
        );
        assert_eq!(
            content_disposition(false, "a\"b\u{e9}.pdf"),
            "inline; filename=\"a_b_.pdf\"; filename*=UTF-8''a%22b%C3%A9.pdf"
        );
    }
}
