//! The worker pool: jobs are rows in storage; a dispatcher claims them with
//! a lease, runs each in its own task with a heartbeat that renews the lease,
//! and records the outcome. A job whose worker died is claimed again when its
//! lease expires (RETRY), so nothing accepted is lost to a crash.

mod execute;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::{Job, JobId, OrganizationId};
use agentd_storage::{ClaimRequest, LeaseState, Storage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use execute::{Failure, JobExecutor};
pub use signals::JobSignals;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs run at once by this process; 0 runs none (an API-only process).
    pub workers: usize,
    pub lease: Duration,
    pub max_attempts: i32,
    /// How often an idle dispatcher looks for work it was not told about
    /// (other processes' jobs, expired leases).
    pub poll_interval: Duration,
}

pub struct WorkerPool {
    storage: Arc<dyn Storage>,
    executor: Arc<JobExecutor>,
    signals: Arc<JobSignals>,
    config: WorkerConfig,
    owner: String,
}

impl WorkerPool {
    pub fn new(
        storage: Arc<dyn Storage>,
        executor: Arc<JobExecutor>,
        signals: Arc<JobSignals>,
        config: WorkerConfig,
    ) -> Self {
        let owner = format!("{}-{}", std::process::id(), JobId::new());
        Self {
            storage,
            executor,
            signals,
            config,
            owner,
        }
    }

    /// Starts the dispatcher; it stops claiming work when `shutdown` fires.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let pool = Arc::new(self);
        tokio::spawn(async move { pool.dispatch(shutdown).await })
    }

    async fn dispatch(self: Arc<Self>, shutdown: CancellationToken) {
        if self.config.workers == 0 {
            return;
        }
        tracing::info!(workers = self.config.workers, owner = %self.owner, "worker pool started");
        let slots = Arc::new(Semaphore::new(self.config.workers));
        loop {
            let first = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
                permits.push(permit);
            }
            let jobs = match self.claim(permits.len()).await {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::error!(%error, "claiming jobs failed");
                    Vec::new()
                }
            };
            let idle = jobs.is_empty();
            for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                tokio::spawn(Arc::clone(&self).run(job, permit));
            }
            drop(permits);
            if idle {
                tokio::select! {
                    _ = self.signals.enqueued() => {},
                    _ = tokio::time::sleep(self.config.poll_interval) => {},
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        tracing::info!("worker pool stopped claiming jobs");
    }

    async fn claim(&self, limit: usize) -> agentd_storage::Result<Vec<Job>> {
        self.storage
            .claim_jobs(&ClaimRequest {
                owner: self.owner.clone(),
                limit: limit as i64,
                lease: self.config.lease,
                max_attempts: self.config.max_attempts,
            })
            .await
    }

    /// Runs one claimed job, renewing its lease until it ends.
    async fn run(self: Arc<Self>, job: Job, _slot: OwnedSemaphorePermit) {
        let cancel = self.signals.running(job.id);
        let work = self.executor.execute(&job);
        tokio::pin!(work);
        let mut heartbeat = tokio::time::interval(self.config.lease / 3);
        heartbeat.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break Some(outcome),
                _ = cancel.cancelled() => break None,
                _ = heartbeat.tick() => {
                    match self.storage.renew_lease(job.id, &self.owner, self.config.lease).await {
                        Ok(LeaseState::Held) => {}
                        Ok(LeaseState::Cancelled | LeaseState::Lost) => break None,
                        Err(error) => tracing::warn!(job = %job.id, %error, "renewing a lease failed"),
                    }
                }
            }
        };
        if let Some(outcome) = outcome {
            if let Err(error) = self.storage.finish_job(job.id, &outcome).await {
                // The lease expires and another attempt records the result.
                tracing::error!(job = %job.id, %error, "recording a job outcome failed");
            }
        }
        self.signals.done(job.id);
    }
}

/// Waits until a job is final, up to `timeout`; `None` when it is not.
pub async fn wait_until_final(
    storage: &dyn Storage,
    signals: &JobSignals,
    organization_id: OrganizationId,
    job_id: JobId,
    timeout: Duration,
) -> agentd_storage::Result<Option<Job>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Subscribe first, so that an end between the read and the wait is seen.
        let finished = signals.subscribe(job_id);
        if let Some(job) = storage.get_job(organization_id, job_id).await? {
            if job.status.is_final() {
                return Ok(Some(job));
            }
        }
        tokio::select! {
            _ = finished => {},
            // Another process may run the job: look again now and then.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}
