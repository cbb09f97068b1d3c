//! Retries of transient provider failures: exponential backoff with full
//! jitter, `Retry-After` honoured, bounded in count and in total wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;

use crate::{Completion, CompletionRequest, ModelProvider, ProviderError};

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first call.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32, error: &ProviderError) -> Duration {
        if let Some(after) = error.retry_after() {
            return after.min(self.max_delay);
        }
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

pub struct RetryingProvider {
    inner: Arc<dyn ModelProvider>,
    policy: RetryPolicy,
}

impl RetryingProvider {
    pub fn new(inner: Arc<dyn ModelProvider>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
impl ModelProvider for RetryingProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn check_schema(&self, schema: &serde_json::Value) -> Result<(), String> {
        self.inner.check_schema(schema)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match self.inner.complete(request).await {
                Err(error) if error.is_transient() && attempt < self.policy.max_retries => {
                    let delay = self.policy.delay(attempt, &error);
                    if started.elapsed() + delay > self.policy.max_total {
                        return Err(error);
                    }
                    tracing::warn!(provider = self.name(), %error, ?delay, "retrying model call");
                    metrics::counter!(
                        crate::metered::RETRIES_TOTAL,
                        "provider" => self.name().to_owned(),
                        "outcome" => crate::metered::error_label(&error)
                    )
                    .increment(1);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Scripted(Mutex<Vec<Result<Completion, ProviderError>>>);

    #[async_trait]
    impl ModelProvider for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, ProviderError> {
            self.0.lock().unwrap().remove(0)
        }
    }

    fn request() -> CompletionRequest {
        CompletionRequest {
            upstream_model: "m".into(),
            messages: vec![],
            schema_name: "output".into(),
            schema: serde_json::json!({}),
            temperature: None,
            reasoning: None,
            max_output_tokens: None,
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_total: Duration::from_secs(5),
        }
    }

    fn unavailable() -> Result<Completion, ProviderError> {
        Err(ProviderError::Unavailable {
            status: 503,
            retry_after: None,
            message: "busy".into(),
        })
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let ok = Ok(Completion {
            text: "{}".into(),
            usage: Default::default(),
        });
        let scripted = Arc::new(Scripted(Mutex::new(vec![unavailable(), unavailable(), ok])));
        let provider = RetryingProvider::new(scripted, fast());
        assert!(provider.complete(&request()).await.is_ok());
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let scripted = Arc::new(Scripted(Mutex::new(vec![
            unavailable(),
            unavailable(),
            unavailable(),
        ])));
        let provider = RetryingProvider::new(scripted, fast());
        assert!(matches!(
            provider.complete(&request()).await,
            Err(ProviderError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn rejected_keys_are_not_retried() {
        let unauthorized = Err(ProviderError::Unauthorized {
            status: 401,
            message: "bad key".into(),
        });
        let scripted = Arc::new(Scripted(Mutex::new(vec![unauthorized])));
        let provider = RetryingProvider::new(scripted, fast());
        assert!(matches!(
            provider.complete(&request()).await,
            Err(ProviderError::Unauthorized { .. })
        ));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = fast();
        let error = ProviderError::RateLimited {
            retry_after: Some(Duration::from_millis(3)),
            message: String::new(),
        };
        assert_eq!(policy.delay(0, &error), Duration::from_millis(3));
        let long = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
            message: String::new(),
        };
        assert_eq!(policy.delay(0, &long), Duration::from_millis(5));
    }
}
