//! Per-provider limits: at most N calls in flight and at most M calls
//! started in any minute. Calls wait for room rather than fail.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::{Completion, CompletionRequest, ModelProvider, ProviderError};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_concurrency: Option<usize>,
    pub requests_per_minute: Option<u32>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.max_concurrency.is_none() && self.requests_per_minute.is_none()
    }
}

pub struct LimitedProvider {
    inner: Arc<dyn ModelProvider>,
    in_flight: Option<Semaphore>,
    per_minute: Option<(u32, Mutex<VecDeque<Instant>>)>,
}

impl LimitedProvider {
    pub fn new(inner: Arc<dyn ModelProvider>, limits: Limits) -> Self {
        Self {
            inner,
            in_flight: limits.max_concurrency.map(|n| Semaphore::new(n.max(1))),
            per_minute: limits
                .requests_per_minute
                .map(|n| (n.max(1), Mutex::new(VecDeque::new()))),
        }
    }

    /// Waits until starting one more call keeps within the per-minute limit.
    async fn wait_for_rate(&self) {
        let Some((limit, started)) = &self.per_minute else {
            return;
        };
        let window = Duration::from_secs(60);
        loop {
            let wait = {
                let mut started = started.lock().await;
                let now = Instant::now();
                while started
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    started.pop_front();
                }
                if started.len() < *limit as usize {
                    started.push_back(now);
                    return;
                }
                window - now.duration_since(*started.front().expect("the window is full"))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl ModelProvider for LimitedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn check_schema(&self, schema: &serde_json::Value) -> Result<(), String> {
        self.inner.check_schema(schema)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let _permit = match &self.in_flight {
            Some(semaphore) => Some(semaphore.acquire().await.expect("never closed")),
            None => None,
        };
        self.wait_for_rate().await;
        self.inner.complete(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow {
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl ModelProvider for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn complete(&self, _: &CompletionRequest) -> Result<Completion, ProviderError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(Completion {
                text: "{}".into(),
                usage: Default::default(),
            })
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

    #[tokio::test]
    async fn concurrency_is_capped() {
        let slow = Arc::new(Slow {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let limited = Arc::new(LimitedProvider::new(
            slow.clone(),
            Limits {
                max_concurrency: Some(2),
                requests_per_minute: None,
            },
        ));
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let limited = Arc::clone(&limited);
                tokio::spawn(async move { limited.complete(&request()).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(slow.peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_delays_calls_past_the_window() {
        let slow = Arc::new(Slow {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let limited = LimitedProvider::new(
            slow,
            Limits {
                max_concurrency: None,
                requests_per_minute: Some(2),
            },
        );
        let start = Instant::now();
        for _ in 0..3 {
            limited.complete(&request()).await.unwrap();
        }
        assert!(start.elapsed() >= Duration::from_secs(60));
    }
}
