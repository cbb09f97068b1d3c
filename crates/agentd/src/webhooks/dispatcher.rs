//! Sends webhook deliveries: claims due ones with a lease, POSTs each
//! through the outbound URL guard, signed, and records the attempt with
//! when to try again. Deliveries live in the database, so a restart (or
//! another process) takes them up where they were.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_domain::time;
use agentd_domain::webhook::DeliveryAttempt;
use agentd_net::{ClientSettings, GuardedClient};
use agentd_storage::{DeliveryClaim, DeliveryNext, DueDelivery, Storage};
use reqwest::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{payload, WebhookConfig};

/// How an attempt ended, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed; another attempt is scheduled.
    Retrying,
    /// It failed and the schedule is over.
    Failed,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }
}

/// Called after every recorded attempt: where a metrics registry counts
/// webhook deliveries by outcome.
pub type OutcomeHook = Arc<dyn Fn(DeliveryOutcome) + Send + Sync>;

/// What one attempt got from the receiver.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    /// Trying again cannot help (the job is gone).
    hopeless: bool,
}

impl Answer {
    fn failed(error: &str) -> Self {
        Self {
            status: None,
            error: Some(error.to_owned()),
            hopeless: false,
        }
    }

    fn job_gone() -> Self {
        Self {
            hopeless: true,
            ..Self::failed(JOB_GONE)
        }
    }
}

/// The texts an attempt's error may carry: fit for the subscriber, never
/// an internal error (the details go to the log).
const UNREACHABLE: &str =
    "No answer: the URL is not reachable from this server, or the receiver did not answer in time.";
const JOB_GONE: &str = "The job no longer exists.";
const INTERNAL: &str = "The delivery could not be prepared; it is retried.";

pub struct Dispatcher {
    storage: Arc<dyn Storage>,
    client: GuardedClient,
    config: WebhookConfig,
    /// Identifies this process's leases.
    owner: String,
    on_outcome: Option<OutcomeHook>,
}

impl Dispatcher {
    pub fn new(storage: Arc<dyn Storage>, config: WebhookConfig) -> reqwest::Result<Self> {
        let settings = ClientSettings {
            timeout: config.timeout,
            connect_timeout: config.timeout.min(Duration::from_secs(10)),
        };
        Ok(Self {
            client: GuardedClient::new(config.policy.clone(), &settings)?,
            storage,
            config,
            owner: format!("webhooks-{:016x}", rand::random::<u64>()),
            on_outcome: None,
        })
    }

    /// Calls `hook` after every recorded attempt.
    pub fn with_outcome_hook(mut self, hook: OutcomeHook) -> Self {
        self.on_outcome = Some(hook);
        self
    }

    /// A lease outlives any attempt, so two processes never send the same
    /// delivery at once unless one stalled far beyond its time limit.
    fn lease(&self) -> Duration {
        self.config.timeout * 2 + Duration::from_secs(30)
    }

    /// Sends deliveries until `shutdown`; none when concurrency is 0.
    pub fn spawn(self, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        if self.config.concurrency == 0 {
            return None;
        }
        Some(tokio::spawn(Arc::new(self).run(shutdown)))
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let mut in_flight = JoinSet::new();
        while !shutdown.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                self.claim(free).await
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {},
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            for due in claimed {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let dispatcher = Arc::clone(&self);
                in_flight.spawn(async move {
                    dispatcher.attempt(due).await;
                    drop(slot);
                });
            }
        }
        // Attempts under way finish (each within its time limit); what is
        // not recorded is sent again once its lease expires.
        while in_flight.join_next().await.is_some() {}
    }

    async fn claim(&self, limit: usize) -> Vec<DueDelivery> {
        let claim = DeliveryClaim {
            owner: self.owner.clone(),
            limit: limit as i64,
            lease: self.lease(),
        };
        match self.storage.claim_deliveries(&claim).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming webhook deliveries failed");
                Vec::new()
            }
        }
    }

    /// One attempt at one delivery, recorded with what follows it.
    async fn attempt(&self, due: DueDelivery) {
        let attempted_at = time::now();
        let started = Instant::now();
        let answer = self.send(&due).await;
        let hopeless = answer.hopeless;
        let attempt = DeliveryAttempt {
            attempted_at,
            response_status: answer.status,
            latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            error: answer.error,
        };
        let attempts_made = due.attempts_made + 1;
        let (next, outcome) = if attempt.succeeded() {
            (DeliveryNext::Delivered, DeliveryOutcome::Delivered)
        } else if hopeless {
            (DeliveryNext::GiveUp, DeliveryOutcome::Failed)
        } else {
            match self.config.schedule.delay_after(attempts_made) {
                Some(delay) => (DeliveryNext::RetryIn(delay), DeliveryOutcome::Retrying),
                None => (DeliveryNext::GiveUp, DeliveryOutcome::Failed),
            }
        };
        tracing::info!(
            delivery = %due.id,
            webhook = %due.webhook_id,
            job = %due.job_id,
            event = %due.event,
            attempt = attempts_made,
            status = attempt.response_status,
            latency_ms = attempt.latency_ms,
            outcome = outcome.as_str(),
            "webhook delivery attempt"
        );
        match self
            .storage
            .record_delivery_attempt(due.id, &self.owner, &attempt, next)
            .await
        {
            Ok(true) => {
                if let Some(hook) = &self.on_outcome {
                    hook(outcome);
                }
            }
            Ok(false) => {
                tracing::warn!(delivery = %due.id, "webhook delivery lease lost before recording")
            }
            // Unrecorded: sent again once the lease expires.
            Err(error) => {
                tracing::warn!(delivery = %due.id, %error, "recording a webhook attempt failed")
            }
        }
    }

    /// Builds, signs and POSTs the delivery's message.
    async fn send(&self, due: &DueDelivery) -> Answer {
        let job = match self.storage.get_job(due.organization_id, due.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => return Answer::job_gone(),
            Err(error) => {
                tracing::warn!(delivery = %due.id, %error, "loading a webhook's job failed");
                return Answer::failed(INTERNAL);
            }
        };
        let now = time::now();
        let body = payload(due.event, &job, &now).to_string().into_bytes();
        let message_id = due.id.to_string();
        let timestamp = now.timestamp();
        let signature = due.secret.sign(&message_id, timestamp, &body);
        let request = match self.client.request(Method::POST, &due.url) {
            Ok(request) => request,
            Err(_) => return Answer::failed(UNREACHABLE),
        };
        let request = request
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("agentd-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        match self.client.send(request).await {
            Ok(response) => {
                let status = response.status();
                Answer {
                    status: Some(status.as_u16()),
                    error: (!status.is_success())
                        .then(|| format!("The receiver answered HTTP {}.", status.as_u16())),
                    hopeless: false,
                }
            }
            Err(_) => Answer::failed(UNREACHABLE),
        }
    }
}
