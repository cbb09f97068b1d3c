//! Which providers are configured, and the route from a model id to one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{MeteredProvider, ModelCatalog, ModelProvider, ModelSpec};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown model '{model}'{}", suggest(.suggestions))]
    UnknownModel {
        model: String,
        suggestions: Vec<String>,
    },
    #[error(
        "model '{model}' needs the {provider} provider, which is not configured on this server"
    )]
    ProviderNotConfigured { model: String, provider: String },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; closest known models: {}", suggestions.join(", "))
    }
}

pub struct ResolvedModel {
    pub spec: ModelSpec,
    pub provider: Arc<dyn ModelProvider>,
}

pub struct ProviderRegistry {
    catalog: ModelCatalog,
    providers: HashMap<String, Arc<dyn ModelProvider>>,
    default_model: String,
    /// Runs models whose provider is not configured (the local model).
    fallback_model: Option<String>,
}

impl ProviderRegistry {
    /// `default_model` serves configs that name no model.
    pub fn new(catalog: ModelCatalog, default_model: impl Into<String>) -> Self {
        Self {
            catalog,
            providers: HashMap::new(),
            default_model: default_model.into(),
            fallback_model: None,
        }
    }

    /// Adds a provider; its calls are counted and timed (see [`MeteredProvider`]).
    pub fn register(&mut self, provider: Arc<dyn ModelProvider>) {
        self.providers.insert(
            provider.name().to_owned(),
            Arc::new(MeteredProvider::new(provider)),
        );
    }

    /// Adds a model to the table and the provider that serves it.
    pub fn register_model(&mut self, spec: ModelSpec, provider: Arc<dyn ModelProvider>) {
        self.catalog.upsert(spec);
        self.register(provider);
    }

    pub fn set_default_model(&mut self, model: impl Into<String>) {
        self.default_model = model.into();
    }

    /// Models whose provider is not configured run on `model` instead.
    pub fn set_fallback_model(&mut self, model: Option<String>) {
        self.fallback_model = model;
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    /// Whether a model can run here now (its provider, or the fallback).
    pub fn is_usable(&self, spec: &ModelSpec) -> bool {
        self.is_configured(&spec.provider) || self.fallback_model.is_some()
    }

    /// The model a config's `model` names; the default when it names none.
    pub fn model_or_default<'a>(&'a self, model: Option<&'a str>) -> &'a str {
        model.unwrap_or(&self.default_model)
    }

    pub fn is_configured(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    /// The table entry for a model id, whether or not its provider is here.
    pub fn spec(&self, model: &str) -> Result<&ModelSpec, ResolveError> {
        self.catalog
            .get(model)
            .ok_or_else(|| ResolveError::UnknownModel {
                model: model.to_owned(),
                suggestions: self
                    .catalog
                    .closest(model, 3)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            })
    }

    /// The model and provider that run `model`: its own provider, else the
    /// fallback model when one is set.
    pub fn resolve(&self, model: &str) -> Result<ResolvedModel, ResolveError> {
        let spec = self.spec(model)?;
        if let Some(provider) = self.providers.get(&spec.provider) {
            return Ok(ResolvedModel {
                spec: spec.clone(),
                provider: Arc::clone(provider),
            });
        }
        match &self.fallback_model {
            Some(fallback) if fallback != model => self.resolve(fallback),
            _ => Err(ResolveError::ProviderNotConfigured {
                model: model.to_owned(),
                provider: spec.provider.clone(),
            }),
        }
    }

    /// Checks that the provider running `model` can enforce `schema`.
    pub fn check_schema(&self, model: &str, schema: &serde_json::Value) -> Result<(), String> {
        match self.resolve(model) {
            Ok(resolved) => resolved.provider.check_schema(schema),
            Err(_) => Ok(()),
        }
    }
}
