//! The in-process model: loaded at start-up from a GGUF file (the default
//! weights, and any further files of the models file), registered as a
//! provider, and made the default model when no other is asked for.

use std::path::PathBuf;
use std::sync::Arc;

use agentd_provider_local::{model_path_in, LocalModelConfig, LocalProvider, DEFAULT_MODEL_ID};
use agentd_providers::{ModelProvider, ModelSpec, ProviderRegistry};
use anyhow::Context as _;
use serde::Deserialize;

use crate::config::ServeConfig;

/// A further GGUF file declared in the models file (`[[local_models]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalModelEntry {
    pub id: String,
    pub path: PathBuf,
    pub context_size: Option<u32>,
    pub threads: Option<usize>,
    pub sequences: Option<usize>,
    pub max_output_tokens: Option<u32>,
    /// A llama.cpp template name (`chatml`, ...) or a Jinja template,
    /// instead of the one in the GGUF.
    pub chat_template: Option<String>,
}

/// Settings shared by every local model, from flags and environment.
fn settings(config: &ServeConfig, path: PathBuf) -> LocalModelConfig {
    let mut settings = LocalModelConfig::new(path);
    if let Some(threads) = config.local_threads {
        settings.threads = threads.max(1);
    }
    if let Some(sequences) = config.local_sequences {
        settings.max_sequences = sequences.max(1);
    }
    if let Some(context) = config.local_context_size {
        settings.context_size = context;
    }
    if let Some(max) = config.local_max_output_tokens {
        settings.max_output_tokens = max;
    }
    settings
}

/// Loads a GGUF off the async threads (it takes a fraction of a second).
async fn load(settings: LocalModelConfig) -> anyhow::Result<LocalProvider> {
    let path = settings.path.clone();
    tokio::task::spawn_blocking(move || LocalProvider::load(settings))
        .await?
        .with_context(|| format!("loading the local model {}", path.display()))
}

fn default_model_path(config: &ServeConfig) -> PathBuf {
    config
        .local_model_path
        .clone()
        .unwrap_or_else(|| model_path_in(&config.data_dir))
}

/// Whether the default local model is to be loaded: `on`, or `auto` with
/// the weights in place.
pub fn default_model_wanted(config: &ServeConfig) -> bool {
    match config.local_model.as_str() {
        "off" => false,
        "auto" => default_model_path(config).exists(),
        _ => true,
    }
}

/// Whether every local model the configuration asks for is loaded and
/// registered (readiness): the default one, and the models file's own,
/// which start-up loads or refuses to start.
pub fn local_models_loaded(config: &ServeConfig, models: &ProviderRegistry) -> bool {
    !default_model_wanted(config) || models.is_configured(agentd_provider_local::PROVIDER_NAME)
}

/// The default local model, if it is to be loaded.
pub async fn default_model(
    config: &ServeConfig,
) -> anyhow::Result<Option<(ModelSpec, Arc<dyn ModelProvider>)>> {
    let path = default_model_path(config);
    if !default_model_wanted(config) {
        if config.local_model != "off" {
            tracing::info!(
                path = %path.display(),
                "no local model (run scripts/fetch-model.sh to get the default weights)"
            );
        }
        return Ok(None);
    }
    let provider = load(settings(config, path.clone())).await?;
    let spec = ModelSpec {
        id: DEFAULT_MODEL_ID.to_owned(),
        ..provider.spec()
    };
    Ok(Some((spec, Arc::new(provider))))
}

/// A local model of the models file, served as provider `local:<id>`.
pub async fn declared_model(
    config: &ServeConfig,
    entry: &LocalModelEntry,
) -> anyhow::Result<(ModelSpec, Arc<dyn ModelProvider>)> {
    let mut settings = settings(config, entry.path.clone());
    if let Some(context) = entry.context_size {
        settings.context_size = context;
    }
    if let Some(threads) = entry.threads {
        settings.threads = threads.max(1);
    }
    if let Some(sequences) = entry.sequences {
        settings.max_sequences = sequences.max(1);
    }
    if let Some(max) = entry.max_output_tokens {
        settings.max_output_tokens = max;
    }
    settings.chat_template = entry.chat_template.clone();
    let name = format!("local:{}", entry.id);
    let provider = load(settings).await?.named(&name);
    let spec = ModelSpec {
        id: entry.id.clone(),
        provider: name,
        ..provider.spec()
    };
    Ok((spec, Arc::new(provider)))
}
