//! Which providers are configured, and the route from a model id to one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{ModelCatalog, ModelProvider, ModelSpec};

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
}

impl ProviderRegistry {
    pub fn new(catalog: ModelCatalog) -> Self {
        Self {
            catalog,
            providers: HashMap::new(),
        }
    }

    pub fn register(&mut self, provider: Arc<dyn ModelProvider>) {
        self.providers.insert(provider.name().to_owned(), provider);
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
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

    pub fn resolve(&self, model: &str) -> Result<ResolvedModel, ResolveError> {
        let spec = self.spec(model)?;
        let provider = self.providers.get(&spec.provider).ok_or_else(|| {
            ResolveError::ProviderNotConfigured {
                model: model.to_owned(),
                provider: spec.provider.clone(),
            }
        })?;
        Ok(ResolvedModel {
            spec: spec.clone(),
            provider: Arc::clone(provider),
        })
    }
}
