//! The local model provider of agentd: a GGUF model run in-process by
//! llama.cpp, decoding greedily under a grammar compiled from the request's
//! JSON Schema (llguidance), so that every answer parses and validates.
//!
//! Load it once per process with [`LocalProvider::load`]; requests then run
//! on one decoder thread that batches up to `max_sequences` of them in one
//! llama.cpp context, each slot keeping its prompt prefix cached.

mod config;
mod grammar;
mod model;
mod prompt;
mod sequence;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use agentd_providers::{
    Capability, Completion, CompletionRequest, ModelProvider, ModelSpec, ProviderError,
};
use async_trait::async_trait;
use tokio::sync::oneshot;

pub use config::{
    available_cores, default_model_path, model_path_in, LocalModelConfig, DEFAULT_MODEL_FILE,
    DEFAULT_MODEL_ID, MODEL_PATH_ENV,
};
pub use grammar::{check_schema, JsonLayout, MAX_BLANK_RUN};
pub use sequence::DecodeStats;

use model::LoadedModel;
use sequence::{Job, Shared};

/// The provider name in the model table.
pub const PROVIDER_NAME: &str = "local";

/// Why the local model could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "local model weights not found at {0}: run scripts/fetch-model.sh or set \
         AGENTD_LOCAL_MODEL_PATH"
    )]
    MissingWeights(PathBuf),
    #[error("invalid local model settings: {0}")]
    Config(String),
    #[error("llama.cpp could not be initialised: {0}")]
    Backend(String),
    #[error("could not load the local model from {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("the local model's chat template is unusable: {0}")]
    Template(String),
    #[error("could not prepare constrained decoding for the local model: {0}")]
    Grammar(String),
    #[error("could not create a llama.cpp context: {0}")]
    Context(String),
    #[error("could not start a local model worker thread: {0}")]
    Spawn(String),
}

/// A GGUF model served in-process.
pub struct LocalProvider {
    /// The provider name in the model table: `local` for the default
    /// weights, another for each further GGUF an operator registers.
    name: String,
    shared: Arc<Shared>,
    jobs: Sender<Job>,
}

impl LocalProvider {
    /// Loads the weights and starts the sequence slots. Blocks for the load
    /// (about 0.1–0.2 s for the default weights); call it from a blocking
    /// context in async code.
    pub fn load(config: LocalModelConfig) -> Result<Self, LocalError> {
        validate(&config)?;
        let started = Instant::now();
        let model = LoadedModel::load(&config)?;
        tracing::info!(
            path = %config.path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            threads = config.threads,
            sequences = config.max_sequences,
            prefix_cache = config.prefix_cache,
            "local model loaded"
        );
        let shared = Arc::new(Shared {
            prefix_cache: config.prefix_cache,
            model,
            config,
            busy: AtomicUsize::new(0),
        });
        let jobs = sequence::spawn_decoder(&shared)?;
        Ok(Self {
            name: PROVIDER_NAME.to_owned(),
            shared,
            jobs,
        })
    }

    /// Serves under another provider name (for further GGUF files).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn config(&self) -> &LocalModelConfig {
        &self.shared.config
    }

    /// The model-table entry for the loaded weights, with this provider's
    /// context window and answer cap.
    pub fn spec(&self) -> ModelSpec {
        let config = &self.shared.config;
        ModelSpec {
            context_window: config.context_size,
            max_output_tokens: config.max_output_tokens,
            ..default_model_spec(&config.path)
        }
    }

    /// Prompt tokens `request` would take, after any cut to fit the context
    /// window. Tokenizes on the calling thread.
    pub fn prompt_tokens(&self, request: &CompletionRequest) -> Result<usize, ProviderError> {
        sequence::fitted_prompt(&self.shared, request).map(|fitted| fitted.tokens.len())
    }

    /// Requests being decoded right now (not counting queued ones).
    ///
    /// A cancelled request stops counting before the decoder's next step.
    pub fn busy_sequences(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// [`ModelProvider::complete`], with the request's timings. Dropping the
    /// future stops the decoding at the next token.
    pub async fn complete_with_stats(
        &self,
        request: &CompletionRequest,
    ) -> Result<(Completion, DecodeStats), ProviderError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancel));
        let enqueued = Instant::now();
        // Tokenizing and compiling the grammar take a few milliseconds:
        // off the async threads, and off the decoder's.
        let (shared, owned) = (Arc::clone(&self.shared), request.clone());
        // In the caller's span (a job's), so that its log lines name the job.
        let span = tracing::Span::current();
        let (prompt, matcher, max_output) = tokio::task::spawn_blocking(move || {
            span.in_scope(|| sequence::prepare(&shared, &owned))
        })
        .await
        .map_err(|_| stopped())??;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            prompt,
            matcher,
            max_output,
            cancel,
            enqueued,
            reply,
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl ModelProvider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn check_schema(&self, schema: &serde_json::Value) -> Result<(), String> {
        check_schema(schema)
    }

    /// `request.upstream_model` is not consulted: a provider serves the one
    /// GGUF it loaded. `temperature` and `reasoning` are ignored (greedy
    /// decoding).
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        self.complete_with_stats(request)
            .await
            .map(|(completion, _)| completion)
    }
}

/// Tells the slot to stop when the caller's future is dropped (or done,
/// when it no longer matters).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn stopped() -> ProviderError {
    ProviderError::Unavailable {
        status: 503,
        retry_after: None,
        message: "the local model's workers have stopped".into(),
    }
}

fn validate(config: &LocalModelConfig) -> Result<(), LocalError> {
    if config.threads == 0 || config.max_sequences == 0 {
        return Err(LocalError::Config(
            "threads and max_sequences must be at least 1".into(),
        ));
    }
    if config.max_output_tokens == 0 || config.max_output_tokens >= config.context_size {
        return Err(LocalError::Config(format!(
            "max_output_tokens ({}) must be at least 1 and below context_size ({})",
            config.max_output_tokens, config.context_size
        )));
    }
    Ok(())
}

/// The model-table entry of the default local model (SmolLM2-135M-Instruct)
/// loaded from `path`: free, text only, JSON Schema enforced by grammar.
pub fn default_model_spec(path: impl AsRef<Path>) -> ModelSpec {
    ModelSpec {
        id: DEFAULT_MODEL_ID.into(),
        provider: PROVIDER_NAME.into(),
        upstream: path.as_ref().display().to_string(),
        context_window: 2048,
        max_output_tokens: 512,
        capabilities: vec![Capability::Text],
        supports_system_message: true,
        supports_temperature: false,
        supports_reasoning_effort: false,
        supports_json_output: true,
        supports_json_schema: true,
        input_price: 0.0,
        output_price: 0.0,
        cached_input_price: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_free_and_text_only() {
        let spec = default_model_spec("data/models/x.gguf");
        assert_eq!(spec.id, "local/smollm2-135m-instruct");
        assert_eq!(spec.provider, "local");
        assert_eq!(spec.upstream, "data/models/x.gguf");
        assert_eq!(spec.context_window, 2048);
        assert_eq!(spec.capabilities, vec![Capability::Text]);
        assert!(spec.supports_json_schema && !spec.supports_temperature);
        assert!(!spec.supports_reasoning_effort);
        assert_eq!(spec.input_price + spec.output_price, 0.0);
    }

    #[test]
    fn missing_weights_say_how_to_get_them() {
        let error = LocalProvider::load(LocalModelConfig::new("/nonexistent/model.gguf"))
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("scripts/fetch-model.sh"),
            "{error}"
        );
    }

    #[test]
    fn answer_cap_must_leave_room_for_input() {
        let mut config = LocalModelConfig::new("/nonexistent/model.gguf");
        config.max_output_tokens = config.context_size;
        assert!(matches!(validate(&config), Err(LocalError::Config(_))));
    }
}
