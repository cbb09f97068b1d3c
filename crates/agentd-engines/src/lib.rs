//! Engines: an agent is an engine plus a configuration. Each engine declares
//! the JSON Schema of its config, checks a config when an agent is created,
//! and turns rendered config + inputs into outputs through model providers.

pub mod answer;
mod config_schema;
pub mod interactive_web;
pub mod multimodal;
pub mod page_selection;
pub mod pdf_extraction;
pub mod sources;
pub mod web_insights;

use std::sync::Arc;

use agentd_documents::Documents;
use agentd_domain::output_schema::field_errors;
use agentd_domain::{AgentDatum, FieldErrors, FileId, FileRef, ResolvedInputs, Usage};
use agentd_providers::{ProviderError, ProviderRegistry, ResolveError};
use async_trait::async_trait;
use serde_json::Value;

/// Reads files stored for the job's organization.
#[async_trait]
pub trait FileReader: Send + Sync {
    async fn read(&self, id: FileId) -> Result<(FileRef, Vec<u8>), String>;
    /// Downloads an http(s) URL within the server's size and time limits;
    /// returns a file name and the bytes.
    async fn fetch(&self, url: &str) -> Result<(String, Vec<u8>), String>;
}

/// A file a job saved for its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedReference {
    /// Its `resource_id`.
    pub resource_id: String,
    /// Where the caller downloads it:
    /// `<public URL>/v1/agents/jobs/{job}/references/{resource_id}/`.
    pub url: String,
}

/// Saves what a running job produces for its caller, kept with the job
/// (and removed by its delete-data): references are files served as they
/// are (derived PDFs, page images, web pages), artifacts are keyed results
/// served by `/v1/agents/jobs/{job}/artifacts/result/?artifact_key=…`.
#[async_trait]
pub trait JobReferences: Send + Sync {
    async fn save_reference(
        &self,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<SavedReference, EngineError>;
    /// Saves `result` under a key made of the job and `name` (unique within
    /// the job); returns the artifact key.
    async fn save_artifact(&self, name: &str, result: &Value) -> Result<String, EngineError>;
}

/// Where an engine says how far a long run has got ("batch 3/20 done"):
/// the job's status events.
#[async_trait]
pub trait Progress: Send + Sync {
    async fn report(&self, message: String);
}

/// Progress nobody reads (tests, tools without jobs).
pub struct NoProgress;

#[async_trait]
impl Progress for NoProgress {
    async fn report(&self, _message: String) {}
}

/// What an engine may use while it runs.
pub struct EngineContext<'a> {
    pub models: &'a ProviderRegistry,
    pub files: &'a dyn FileReader,
    pub documents: &'a Documents,
    pub references: &'a dyn JobReferences,
    pub progress: &'a dyn Progress,
    /// Web pages: static fetching and the browser (the web engines).
    pub web: &'a agentd_web::Web,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The rendered config or the inputs cannot be run (the caller's fault).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Model(#[from] ResolveError),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The model answered, but not with what the schema demands.
    #[error("the model's answer was rejected: {0}")]
    InvalidAnswer(String),
    /// The server failed (saving a result): logged, never shown to users.
    #[error("{0}")]
    Internal(String),
}

/// A failed run still reports the tokens it spent.
#[derive(Debug)]
pub struct EngineFailure {
    pub error: EngineError,
    pub usage: Usage,
    pub cost: f64,
}

impl<E: Into<EngineError>> From<E> for EngineFailure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            usage: Usage::default(),
            cost: 0.0,
        }
    }
}

#[derive(Debug)]
pub struct EngineOutput {
    pub outputs: Vec<AgentDatum>,
    pub usage: Usage,
    pub cost: f64,
}

#[async_trait]
pub trait Engine: Send + Sync {
    /// `engine_class_id`, as Roe names it.
    fn class_id(&self) -> &'static str;
    /// Display name (`engine_name`).
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of `engine_config`.
    fn config_schema(&self) -> Value;
    fn default_config(&self) -> Value;

    /// Top-level `engine_config` fields whose values are files (images,
    /// PDFs), given as file inputs, URLs or ids. A file input anywhere else
    /// stands for the file's text.
    fn file_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// Rules the schema cannot say (known model, parsable output schema).
    fn check_config_rules(&self, config: &Value, models: &ProviderRegistry) -> FieldErrors;

    /// Checks a config when an agent or version is created.
    fn check_config(&self, config: &Value, models: &ProviderRegistry) -> Result<(), FieldErrors> {
        let mut errors = field_errors(&self.config_schema(), config, "engine_config");
        errors.merge(self.check_config_rules(config, models));
        errors.into_result()
    }

    async fn run(
        &self,
        context: &EngineContext<'_>,
        config: &Value,
        inputs: &ResolvedInputs,
    ) -> Result<EngineOutput, EngineFailure>;
}

/// The engines this server offers.
#[derive(Clone)]
pub struct EngineRegistry {
    engines: Vec<Arc<dyn Engine>>,
}

impl EngineRegistry {
    pub fn builtin() -> Self {
        Self {
            engines: vec![
                Arc::new(multimodal::MultimodalExtractionEngine),
                Arc::new(pdf_extraction::PdfExtractionEngine),
                Arc::new(page_selection::PdfPageSelectionEngine),
                Arc::new(web_insights::WebInsightsEngine),
                Arc::new(interactive_web::InteractiveWebEngine),
            ],
        }
    }

    pub fn get(&self, class_id: &str) -> Option<Arc<dyn Engine>> {
        self.engines
            .iter()
            .find(|e| e.class_id() == class_id)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<dyn Engine>] {
        &self.engines
    }

    pub fn class_ids(&self) -> Vec<&'static str> {
        self.engines.iter().map(|e| e.class_id()).collect()
    }
}

/// A string template placeholder is checked at run time, not creation.
pub(crate) fn is_template(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.trim_start().starts_with('$'))
}

/// Reads a file reference from a rendered config: a file id (a file input
/// renders to its id), a `data:` URL or an http(s) URL. `what` names the
/// expected kind in errors ("an image", "a PDF").
pub(crate) async fn load_file(
    files: &dyn FileReader,
    reference: &str,
    what: &str,
) -> Result<(String, Vec<u8>), EngineError> {
    if let Ok(id) = reference.parse::<FileId>() {
        let (file, bytes) = files.read(id).await.map_err(EngineError::Invalid)?;
        Ok((file.file_name, bytes))
    } else if reference.starts_with("data:") {
        let upload = agentd_domain::input::decode_data_url(reference)
            .map_err(EngineError::Invalid)?
            .ok_or_else(|| EngineError::Invalid("malformed data: URL".into()))?;
        Ok((upload.file_name, upload.bytes))
    } else if reference.starts_with("http://") || reference.starts_with("https://") {
        files.fetch(reference).await.map_err(EngineError::Invalid)
    } else {
        Err(EngineError::Invalid(format!(
            "'{reference}' is not {what}: expected a file input, a URL or a file id"
        )))
    }
}
