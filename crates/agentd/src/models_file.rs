//! The operator's model file (TOML, `--models-file` / `AGENTD_MODELS_FILE`):
//! models added to or overriding the built-in table, extra named
//! OpenAI-compatible endpoints, and per-provider limits.
//!
//! ```toml
//! [[models]]
//! id = "llama-3.1-8b"
//! provider = "vllm"
//! upstream = "meta-llama/Llama-3.1-8B-Instruct"
//! context_window = 131072
//! input_price = 0.0
//! output_price = 0.0
//!
//! [[endpoints]]
//! name = "vllm"
//! base_url = "http://127.0.0.1:8000/v1"
//! api_key_env = "VLLM_API_KEY"
//! models = ["llama-3.1-8b"]
//! max_concurrency = 8
//!
//! [providers.openai]
//! max_concurrency = 32
//! requests_per_minute = 500
//!
//! [[local_models]]
//! id = "local/qwen2.5-0.5b"
//! path = "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf"
//! context_size = 4096
//! ```

use std::collections::HashMap;
use std::path::Path;

use agentd_providers::limits::Limits;
use agentd_providers::{Capability, ModelCatalog, ModelSpec};
use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsFile {
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub providers: HashMap<String, LimitsEntry>,
    /// Further GGUF files run in-process.
    #[serde(default)]
    pub local_models: Vec<crate::local_model::LocalModelEntry>,
}

/// A model; fields left out keep the built-in entry's values (or defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub provider: Option<String>,
    pub upstream: Option<String>,
    pub context_window: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub capabilities: Option<Vec<Capability>>,
    pub supports_system_message: Option<bool>,
    pub supports_temperature: Option<bool>,
    pub supports_reasoning_effort: Option<bool>,
    pub supports_json_output: Option<bool>,
    pub supports_json_schema: Option<bool>,
    pub input_price: Option<f64>,
    pub output_price: Option<f64>,
    pub cached_input_price: Option<f64>,
}

/// A named OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub base_url: String,
    /// The environment variable holding its API key, if it needs one.
    pub api_key_env: Option<String>,
    /// Model ids it serves; ids not in the table are added with zero prices.
    #[serde(default)]
    pub models: Vec<String>,
    pub max_concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    pub max_concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
}

impl From<&LimitsEntry> for Limits {
    fn from(entry: &LimitsEntry) -> Self {
        Limits {
            max_concurrency: entry.max_concurrency,
            requests_per_minute: entry.requests_per_minute,
        }
    }
}

impl ModelsFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the models file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing the models file {}", path.display()))
    }

    /// The built-in table with this file's models and endpoint models applied.
    pub fn apply_to(&self, catalog: &mut ModelCatalog) -> anyhow::Result<()> {
        for endpoint in &self.endpoints {
            for id in &endpoint.models {
                let explicit = self.models.iter().any(|m| &m.id == id);
                if !explicit {
                    let mut spec = catalog
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| blank(id, &endpoint.name));
                    spec.provider = endpoint.name.clone();
                    catalog.upsert(spec);
                }
            }
        }
        for entry in &self.models {
            let base = catalog.get(&entry.id).cloned();
            let provider = entry
                .provider
                .clone()
                .or_else(|| base.as_ref().map(|b| b.provider.clone()))
                .with_context(|| {
                    format!("model '{}' in the models file needs a provider", entry.id)
                })?;
            let mut spec = base.unwrap_or_else(|| blank(&entry.id, &provider));
            spec.provider = provider;
            entry.apply(&mut spec);
            catalog.upsert(spec);
        }
        Ok(())
    }

    pub fn limits(&self, provider: &str) -> Limits {
        self.providers
            .get(provider)
            .map(Limits::from)
            .unwrap_or_default()
    }
}

fn blank(id: &str, provider: &str) -> ModelSpec {
    ModelSpec {
        id: id.to_owned(),
        provider: provider.to_owned(),
        upstream: id.to_owned(),
        context_window: 8192,
        max_output_tokens: 4096,
        capabilities: vec![Capability::Text],
        supports_system_message: true,
        supports_temperature: true,
        supports_reasoning_effort: false,
        supports_json_output: true,
        supports_json_schema: true,
        input_price: 0.0,
        output_price: 0.0,
        cached_input_price: None,
    }
}

impl ModelEntry {
    fn apply(&self, spec: &mut ModelSpec) {
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field.clone() { spec.$field = value; })*
            };
        }
        set!(
            upstream,
            context_window,
            max_output_tokens,
            capabilities,
            supports_system_message,
            supports_temperature,
            supports_reasoning_effort,
            supports_json_output,
            supports_json_schema,
            input_price,
            output_price
        );
        if self.cached_input_price.is_some() {
            spec.cached_input_price = self.cached_input_price;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_added_and_overridden() {
        let file: ModelsFile = toml::from_str(
            r#"
            [[models]]
            id = "gpt-4.1-2025-04-14"
            input_price = 1.0

            [[models]]
            id = "llama"
            provider = "vllm"
            capabilities = ["text"]

            [[endpoints]]
            name = "vllm"
            base_url = "http://127.0.0.1:8000/v1"
            models = ["llama", "qwen"]
            "#,
        )
        .unwrap();
        let mut catalog = ModelCatalog::builtin();
        file.apply_to(&mut catalog).unwrap();
        let gpt = catalog.get("gpt-4.1-2025-04-14").unwrap();
        assert_eq!((gpt.input_price, gpt.output_price), (1.0, 8.0));
        assert_eq!(catalog.get("llama").unwrap().provider, "vllm");
        assert_eq!(catalog.get("qwen").unwrap().provider, "vllm");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<ModelsFile>("[[models]]\nid = \"x\"\nprise = 1").is_err());
    }
}
