//! Provider limits that hold across every process on one database: a call
//! waits for a slot (at most N in flight) and for room in the minute (at most
//! M started), both recorded in the database, so that four worker hosts
//! under a 500 RPM limit send at most 500 calls a minute, not 2,000.

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::JobId;
use agentd_providers::limits::Limits;
use agentd_providers::{Completion, CompletionRequest, ModelProvider, ProviderError};
use agentd_storage::provider_limits::Admission;
use agentd_storage::Storage;
use async_trait::async_trait;
use tokio::sync::Semaphore;

/// How long a slot outlives its process: a killed process's slots free
/// themselves after this.
const SLOT_LEASE: Duration = Duration::from_secs(30);
/// How often a call in flight extends its slot's lease.
const SLOT_RENEWAL: Duration = Duration::from_secs(10);
/// How long to wait before asking again when the database is unavailable:
/// a limit is never skipped because it cannot be checked.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

pub struct SharedLimitedProvider {
    inner: Arc<dyn ModelProvider>,
    storage: Arc<dyn Storage>,
    limits: Limits,
    /// This process never holds more slots than the limit: waiters queue
    /// here instead of polling the database.
    local_slots: Option<Semaphore>,
}

impl SharedLimitedProvider {
    pub fn new(inner: Arc<dyn ModelProvider>, limits: Limits, storage: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            storage,
            local_slots: limits.max_concurrency.map(|n| Semaphore::new(n.max(1))),
            limits,
        }
    }

    /// Asks `ask` until it grants, sleeping as told in between.
    async fn wait_for<F, Fut>(&self, what: &str, mut ask: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = agentd_storage::Result<Admission>>,
    {
        loop {
            let wait = match ask().await {
                Ok(Admission::Granted) => return,
                Ok(Admission::RetryIn(wait)) => wait,
                Err(error) => {
                    tracing::warn!(provider = self.name(), %error, "checking the shared {what} failed");
                    STORAGE_RETRY
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn take_slot(&self, max_in_flight: usize) -> HeldSlot {
        let slot = JobId::new().to_string();
        self.wait_for("concurrency limit", || {
            self.storage
                .take_provider_slot(self.name(), max_in_flight, &slot, SLOT_LEASE)
        })
        .await;
        HeldSlot {
            storage: Arc::clone(&self.storage),
            id: slot,
        }
    }

    async fn wait_for_rate(&self, per_minute: u32) {
        self.wait_for("per-minute limit", || {
            self.storage.admit_provider_call(self.name(), per_minute)
        })
        .await;
    }
}

/// A slot held in the database; released when dropped (also when the call
/// is abandoned, as a cancelled job does).
struct HeldSlot {
    storage: Arc<dyn Storage>,
    id: String,
}

impl HeldSlot {
    /// Extends the lease for as long as the call runs (never returns).
    async fn keep_alive(&self) {
        loop {
            tokio::time::sleep(SLOT_RENEWAL).await;
            if let Err(error) = self.storage.renew_provider_slot(&self.id, SLOT_LEASE).await {
                tracing::warn!(%error, "renewing a provider slot failed");
            }
        }
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        let storage = Arc::clone(&self.storage);
        let id = std::mem::take(&mut self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // A slot not released expires with its lease.
                if let Err(error) = storage.release_provider_slot(&id).await {
                    tracing::warn!(%error, "releasing a provider slot failed");
                }
            });
        }
    }
}

#[async_trait]
impl ModelProvider for SharedLimitedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn check_schema(&self, schema: &serde_json::Value) -> Result<(), String> {
        self.inner.check_schema(schema)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let _local = match &self.local_slots {
            Some(slots) => Some(slots.acquire().await.expect("never closed")),
            None => None,
        };
        let slot = match self.limits.max_concurrency {
            Some(max) => Some(self.take_slot(max).await),
            None => None,
        };
        if let Some(per_minute) = self.limits.requests_per_minute {
            self.wait_for_rate(per_minute).await;
        }
        match &slot {
            Some(slot) => tokio::select! {
                result = self.inner.complete(request) => result,
                _ = slot.keep_alive() => unreachable!("keep_alive never returns"),
            },
            None => self.inner.complete(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A model that counts the calls in flight across every provider using it.
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_on_one_database_share_the_concurrency_limit() {
        let dir = std::env::temp_dir().join(format!("agentd-shared-limits-{}", JobId::new()));
        let url = format!("sqlite://{}/agentd.db", dir.display());
        let slow = Arc::new(Slow {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let limits = Limits {
            max_concurrency: Some(2),
            requests_per_minute: None,
        };
        // Each "process" opens the database on its own and may hold 2 slots itself.
        let mut processes = Vec::new();
        for _ in 0..2 {
            let storage = agentd_storage::connect(&url).await.unwrap();
            processes.push(Arc::new(SharedLimitedProvider::new(
                slow.clone(),
                limits,
                storage,
            )));
        }
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let provider = Arc::clone(&processes[i % 2]);
                tokio::spawn(async move { provider.complete(&request()).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        // A limit per process would let 4 run at once.
        let peak = slow.peak.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&peak),
            "{peak} calls in flight between both"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
