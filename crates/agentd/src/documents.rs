//! Run-time checks, when a run is requested, on file inputs that will be
//! read as documents: a file input placed in a text field must be of a type
//! that can be read as text, and an uploaded PDF must open (not encrypted,
//! not corrupt, not over `AGENTD_MAX_PDF_PAGES`). What cannot be known yet
//! (files given by URL or by id, `*/*` inputs) is checked by the worker,
//! which fails the job with the same messages.

use agentd_documents::{kind_of_type, DocumentKind, TypeVerdict};
use agentd_domain::template::files_used_as_text;
use agentd_domain::{AgentVersion, CheckedInput, FileSource, InputDefinition, InputKind};

use crate::api::error::ApiError;
use crate::startup::AppState;

pub async fn check_run_inputs(
    state: &AppState,
    engine_class_id: &str,
    version: &AgentVersion,
    checked: &[(InputDefinition, CheckedInput)],
) -> Result<(), ApiError> {
    let file_fields = state
        .engines
        .get(engine_class_id)
        .map(|engine| engine.file_fields())
        .unwrap_or_default();
    let definitions = &version.input_definitions;
    let is_file_input = |key: &str| {
        definitions
            .iter()
            .any(|d| d.key == key && d.kind() == InputKind::File)
    };
    for used in files_used_as_text(&version.engine_config, &is_file_input, file_fields) {
        let Some(definition) = definitions.iter().find(|d| d.key == used.key) else {
            continue;
        };
        if kind_of_type(&definition.data_type) == TypeVerdict::Unreadable {
            return Err(ApiError::bad_request_field(
                &used.key,
                format!(
                    "Input '{}' is of type {}, which cannot be read as text (it is used in \
                     engine_config field '{}').",
                    used.key, definition.data_type, used.field
                ),
            ));
        }
    }
    for (definition, input) in checked {
        let CheckedInput::File(FileSource::Upload(upload)) = input else {
            continue;
        };
        let declared_pdf =
            kind_of_type(&definition.data_type) == TypeVerdict::Readable(DocumentKind::Pdf);
        if !(declared_pdf || upload.bytes.starts_with(b"%PDF-")) {
            continue;
        }
        if let Err(error) = state.documents.check_pdf(upload.bytes.clone()).await {
            return Err(if error.is_caller_fault() {
                ApiError::bad_request_field(
                    &definition.key,
                    format!("Input '{}': {error}.", definition.key),
                )
            } else {
                ApiError::Internal(anyhow::anyhow!("checking a PDF upload: {error}"))
            });
        }
    }
    Ok(())
}
