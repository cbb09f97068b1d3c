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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use agentd_domain::Usage;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    use super::*;
    use crate::{ModelCatalog, ProviderRegistry};

    /// Answers with its script, one reply per call.
    struct Scripted(Mutex<Vec<Result<Completion, ProviderError>>>);

    #[async_trait]
    impl ModelProvider for Scripted {
        fn name(&self) -> &str {
            "openai"
        }
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, ProviderError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    fn answer(input_tokens: i64, output_tokens: i64) -> Result<Completion, ProviderError> {
        Ok(Completion {
            text: "{}".into(),
            usage: Usage {
                input_tokens,
                output_tokens,
                cached_input_tokens: 0,
            },
        })
    }

    /// The counter `name` with exactly these labels, 0 when absent.
    fn counter(
        snapshot: &[(metrics_util::CompositeKey, DebugValue)],
        name: &str,
        labels: &[(&str, &str)],
    ) -> u64 {
        snapshot
            .iter()
            .filter(|(key, _)| key.kind() == MetricKind::Counter && key.key().name() == name)
            .filter(|(key, _)| {
                let mut got: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
                let mut want = labels.to_vec();
                got.sort_unstable();
                want.sort_unstable();
                got == want
            })
            .map(|(_, value)| match value {
                DebugValue::Counter(count) => *count,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn every_call_through_the_registry_is_counted_by_provider_model_and_outcome() {
        let scripted = Scripted(Mutex::new(vec![
            answer(100, 20),
            Err(ProviderError::RateLimited {
                retry_after: None,
                message: "slow down".into(),
            }),
            answer(50, 10),
            Err(ProviderError::Unauthorized {
                status: 401,
                message: "bad key".into(),
            }),
        ]));
        let mut registry = ProviderRegistry::new(ModelCatalog::builtin(), "gpt-4.1-2025-04-14");
        registry.register(Arc::new(scripted));
        let resolved = registry.resolve("gpt-4.1-2025-04-14").unwrap();
        let request = CompletionRequest {
            upstream_model: resolved.spec.upstream.clone(),
            messages: vec![],
            schema_name: "output".into(),
            schema: serde_json::json!({}),
            temperature: None,
            reasoning: None,
            max_output_tokens: None,
        };
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                for _ in 0..4 {
                    let _ = resolved.provider.complete(&request).await;
                }
            });
        });
        let snapshot: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key, value))
            .collect();
        let model = request.upstream_model.as_str();
        let requests = |outcome| {
            counter(
                &snapshot,
                REQUESTS_TOTAL,
                &[
                    ("provider", "openai"),
                    ("model", model),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(requests("success"), 2);
        assert_eq!(requests("rate_limited"), 1);
        assert_eq!(requests("auth_error"), 1);
        let tokens = |kind| {
            counter(
                &snapshot,
                TOKENS_TOTAL,
                &[("provider", "openai"), ("model", model), ("kind", kind)],
            )
        };
        assert_eq!(tokens("input"), 150);
        assert_eq!(tokens("output"), 30);
        assert_eq!(tokens("cached_input"), 0);
    }
}
