//! Provider metrics, recorded at one place for every protocol: the registry
//! wraps each provider it is given in a [`MeteredProvider`], so every model
//! call an engine makes (after retries, which count apart) is counted by
//! provider, model and outcome, timed, and its tokens added up.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::{Completion, CompletionRequest, ModelProvider, ProviderError};

/// Model calls by `provider`, `model` (the provider's name of it) and `outcome`.
pub const REQUESTS_TOTAL: &str = "agentd_provider_requests_total";
/// Seconds per model call (retries included) by `provider` and `model`.
pub const REQUEST_DURATION_SECONDS: &str = "agentd_provider_request_duration_seconds";
/// Tokens by `provider`, `model` and `kind` (`input`, `output`, `cached_input`).
pub const TOKENS_TOTAL: &str = "agentd_provider_tokens_total";
/// Retries of failed attempts by `provider` and the attempt's `outcome`.
pub const RETRIES_TOTAL: &str = "agentd_provider_retries_total";

/// The `outcome` label of a call: `success` or what went wrong.
pub fn outcome_label(result: &Result<Completion, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(error) => error_label(error),
    }
}

pub fn error_label(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Unavailable { .. } => "server_error",
        ProviderError::Timeout(_) => "timeout",
        ProviderError::Unauthorized { .. } => "auth_error",
        ProviderError::Rejected { .. } => "rejected",
        ProviderError::Malformed(_) => "malformed_response",
        ProviderError::Transport(_) => "transport_error",
        ProviderError::NoAnswer(_) => "no_answer",
        ProviderError::TooLarge(_) => "too_large",
    }
}

pub struct MeteredProvider {
    inner: Arc<dyn ModelProvider>,
}

impl MeteredProvider {
    pub fn new(inner: Arc<dyn ModelProvider>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl ModelProvider for MeteredProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn check_schema(&self, schema: &serde_json::Value) -> Result<(), String> {
        self.inner.check_schema(schema)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let result = self.inner.complete(request).await;
        record(self.name(), &request.upstream_model, &result, started);
        result
    }
}

fn record(
    provider: &str,
    model: &str,
    result: &Result<Completion, ProviderError>,
    started: Instant,
) {
    let labels = [
        ("provider", provider.to_owned()),
        ("model", model.to_owned()),
    ];
    metrics::counter!(
        REQUESTS_TOTAL,
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
        "outcome" => outcome_label(result)
    )
    .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, &labels).record(started.elapsed());
    if let Ok(completion) = result {
        let usage = &completion.usage;
        for (kind, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached_input", usage.cached_input_tokens),
        ] {
            metrics::counter!(
                TOKENS_TOTAL,
                "provider" => provider.to_owned(),
                "model" => model.to_owned(),
                "kind" => kind
            )
            .increment(u64::try_from(tokens).unwrap_or(0));
        }
    }
}
