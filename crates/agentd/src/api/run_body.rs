//! The run-body extractor: reads the three body shapes of a run request
//! (flat JSON, `{"inputs": ...}` JSON, multipart form; urlencoded forms too)
//! into the domain's [`agentd_domain::run_body::RunBody`], whose rules the
//! fuzz target `run_body` exercises.

use agentd_domain::run_body::{self, RunBody as ParsedBody};
use agentd_domain::{InputDefinition, RawInput, Upload};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::error::ApiError;
use super::extract::JsonObject;

pub use agentd_domain::run_body::RunRequest;

/// A JSON run body: every input key of the agent version's input
/// definitions, plus `metadata`. `{"inputs": {...}, "metadata": {...}}` is
/// accepted too. A file input is a URL, a stored file id, or a data URL.
/// (`organization_id` may be given here too, as everywhere; it is
/// documented as the query parameter.)
pub struct AgentExecutionRequest;

impl PartialSchema for AgentExecutionRequest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "Every key of the agent's input definitions is a property (its text, or for a \
                 file input a URL, a stored file id or a data URL); `metadata` is stored on the job.",
            ))
            .property(
                "metadata",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                        Type::Object,
                        Type::Null,
                    ]))
                    .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                    .description(Some(
                        "Stored on the job as given (a JSON-encoded object string is accepted too).",
                    )),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([serde_json::json!({
                "text": "The battery lasts two days and the screen is sharp.",
                "metadata": {"batch": "7"}
            })])
            .into()
    }
}

impl ToSchema for AgentExecutionRequest {
    fn name() -> std::borrow::Cow<'static, str> {
        "AgentExecutionRequest".into()
    }
}

/// A multipart run body: one part per input (a file part for a file
/// input, a text part otherwise), plus `metadata` as JSON text.
pub struct AgentExecutionForm;

impl PartialSchema for AgentExecutionForm {
    fn schema() -> RefOr<Schema> {
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream");
        ObjectBuilder::new()
            .description(Some(
                "One part per input of the agent's input definitions: a file part (with a \
                 file name) for a file input, a text part otherwise.",
            ))
            .property(
                "metadata",
                text().description(Some("A JSON object, as text; stored on the job.")),
            )
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(
                OneOfBuilder::new().item(text()).item(file).build(),
            )))))
            .into()
    }
}

impl ToSchema for AgentExecutionForm {
    fn name() -> std::borrow::Cow<'static, str> {
        "AgentExecutionForm".into()
    }
}

/// A run body before it is matched with the agent's input definitions.
pub struct RunBody(ParsedBody);

impl<S: Send + Sync> FromRequest<S> for RunBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, state).await.map_err(|r| {
                ApiError::from_rejection(
                    r.status(),
                    format!("Malformed multipart body: {}", r.body_text()),
                )
            })?;
            return read_multipart(multipart)
                .await
                .map(|fields| RunBody(ParsedBody::Form(fields)));
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = bytes::Bytes::from_request(req, state)
                .await
                .map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
            return run_body::parse_urlencoded(&bytes)
                .map(RunBody)
                .map_err(ApiError::bad_request);
        }
        if content_type.is_empty() || content_type.contains("json") {
            let JsonObject(map) = JsonObject::from_request(req, state).await?;
            return Ok(RunBody::json(map));
        }
        Err(ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type '{content_type}': send application/json or multipart/form-data."
        )))
    }
}

async fn read_multipart(mut multipart: Multipart) -> Result<Vec<(String, RawInput)>, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::from_rejection(
            e.status(),
            format!("Malformed multipart body: {}", e.body_text()),
        )
    };
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(ApiError::bad_request(
                "Malformed multipart body: a part has no name.",
            ));
        };
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.map_err(malformed)?;
        let value =
            match file_name {
                Some(file_name) => RawInput::File(Upload {
                    file_name,
                    content_type,
                    bytes: bytes.to_vec(),
                }),
                None => RawInput::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::bad_request_field(&name, "A text field must be UTF-8.")
                })?),
            };
        fields.push((name, value));
    }
    Ok(fields)
}

impl RunBody {
    /// A JSON object body, as one item of a batch carries it.
    pub fn json(map: Map<String, Value>) -> Self {
        RunBody(ParsedBody::Json(map))
    }

    /// Splits the body into inputs, `metadata` and `organization_id`.
    pub fn into_request(self, definitions: &[InputDefinition]) -> Result<RunRequest, ApiError> {
        self.0.into_request(definitions).map_err(ApiError::from)
    }
}
