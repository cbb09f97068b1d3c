//! The worker pool: jobs are rows in storage; each worker claims one with a
//! lease, runs it with a heartbeat that renews the lease, and records the
//! outcome. A job whose worker died is claimed again when its
//! lease expires (RETRY), so nothing accepted is lost to a crash.

mod execute;
pub mod notices;
mod signals;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::{FailureKind, Job, JobId, JobOutcome, OrganizationId, Usage};
use agentd_storage::{ClaimRequest, LeaseState, Storage};
use futures_util::FutureExt as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use execute::{Attempted, Failure, JobExecutor};
pub use signals::JobSignals;

/// The `error_message` of a job that failed inside agentd (a bug, a panic,
/// a storage error that is not transient); the details are in the log.
pub const INTERNAL_FAILURE: &str =
    "The job failed because of an internal error in agentd; the error was logged.";

/// Attempts at a storage read before a job is postponed (about 4 s).
const READ_ATTEMPTS: u32 = 5;
/// Attempts at recording an outcome before it is left to the lease (about
/// 28 s): the outcome may have cost a model call, so it is worth waiting for.
const RECORD_ATTEMPTS: u32 = 10;
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(250);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs a storage call, retrying it with exponential backoff while it fails
/// for a transient reason (a full disk, a busy or unreachable database), at
/// most `attempts` times. Other errors and the last failure are returned.
pub(crate) async fn retry_transient<T, F, Fut>(
    what: &str,
    attempts: u32,
    mut call: F,
) -> agentd_storage::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = agentd_storage::Result<T>>,
{
    let mut delay = RETRY_FIRST_DELAY;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if error.is_transient() && attempt < attempts => {
                tracing::warn!(%error, attempt, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX_DELAY);
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs run at once by this process; 0 runs none (an API-only process).
    pub workers: usize,
    pub lease: Duration,
    pub max_attempts: i32,
    /// How often an idle dispatcher looks for work it was not told about
    /// (other processes' jobs, expired leases).
    pub poll_interval: Duration,
    /// How long running jobs may take to finish once shutdown begins;
    /// then they are handed back to the queue.
    pub shutdown_grace: Duration,
}

/// How an attempt at a job ended.
enum Ran {
    /// With an outcome to record, or with none (cancelled, lease lost,
    /// postponed): `None`.
    Ended(Option<JobOutcome>),
    /// Stopped because the process is stopping: the job goes back to the queue.
    Interrupted,
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

    /// Starts the workers; they stop claiming work when `shutdown` fires.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let pool = Arc::new(self);
        tokio::spawn(async move {
            if pool.config.workers == 0 {
                return;
            }
            tracing::info!(workers = pool.config.workers, owner = %pool.owner, "worker pool started");
            let workers: Vec<_> = (0..pool.config.workers)
                .map(|_| tokio::spawn(Arc::clone(&pool).work(shutdown.clone())))
                .collect();
            for worker in workers {
                let _ = worker.await;
            }
            tracing::info!("worker pool stopped claiming jobs");
        })
    }

    /// One worker: claims a job, runs it, and records its outcome together
    /// with the claim of the next, so that a busy worker needs one write
    /// transaction per job and no dispatcher stands in between.
    async fn work(self: Arc<Self>, shutdown: CancellationToken) {
        let mut enqueued = self.signals.watch_enqueued();
        let mut next: Option<Job> = None;
        // A job claimed with the last outcome as shutdown began is run too:
        // left to its lease, it would wait for it to expire before another
        // process could take it.
        while !shutdown.is_cancelled() || next.is_some() {
            let job = match next.take() {
                Some(job) => job,
                None => {
                    // Seen before claiming: work enqueued after the claim wakes us.
                    enqueued.borrow_and_update();
                    match self.storage.claim_jobs(&self.claim_request()).await {
                        Ok(mut jobs) if !jobs.is_empty() => jobs.remove(0),
                        Ok(_) => {
                            self.idle(&mut enqueued, &shutdown).await;
                            continue;
                        }
                        Err(error) => {
                            tracing::error!(%error, "claiming a job failed");
                            self.idle(&mut enqueued, &shutdown).await;
                            continue;
                        }
                    }
                }
            };
            next = self
                .run_and_record(&job, &shutdown)
                .instrument(job_span(&job))
                .await;
            self.signals.done(job.id);
        }
    }

    /// Runs a claimed job and records its outcome; returns the next job
    /// claimed with the record.
    async fn run_and_record(&self, job: &Job, shutdown: &CancellationToken) -> Option<Job> {
        if job.attempts <= 1 {
            let waited = (agentd_domain::time::now() - job.created_at).to_std();
            crate::metrics::record_queue_wait(waited.unwrap_or_default());
        }
        tracing::debug!(attempt = job.attempts, "job started");
        let Some(outcome) = self.run(job, shutdown).await else {
            tracing::debug!("job stopped without an outcome (cancelled, lease lost or postponed)");
            return None;
        };
        tracing::debug!(status = outcome.status().name(), "job finished");
        let claim = (!shutdown.is_cancelled()).then(|| self.claim_request());
        self.record(job, &outcome, claim.as_ref()).await
    }

    async fn idle(
        &self,
        enqueued: &mut tokio::sync::watch::Receiver<u64>,
        shutdown: &CancellationToken,
    ) {
        tokio::select! {
            _ = enqueued.changed() => {},
            _ = tokio::time::sleep(self.config.poll_interval) => {},
            _ = shutdown.cancelled() => {},
        }
    }

    fn claim_request(&self) -> ClaimRequest {
        ClaimRequest {
            owner: self.owner.clone(),
            limit: 1,
            lease: self.config.lease,
            max_attempts: self.config.max_attempts,
        }
    }

    /// Stores the outcome (and claims the next job when asked to),
    /// retrying while storage is full or busy.
    async fn record(
        &self,
        job: &Job,
        outcome: &JobOutcome,
        claim: Option<&ClaimRequest>,
    ) -> Option<Job> {
        let result = retry_transient(
            "recording a job outcome",
            RECORD_ATTEMPTS,
            move || async move {
                match claim {
                    Some(claim) => self.storage.finish_and_claim(job.id, outcome, claim).await,
                    None => self
                        .storage
                        .finish_job(job.id, outcome)
                        .await
                        .map(|()| Vec::new()),
                }
            },
        )
        .await;
        match result {
            Ok(mut claimed) => (!claimed.is_empty()).then(|| claimed.remove(0)),
            Err(error) => {
                // The lease expires and another attempt records the result.
                tracing::error!(job = %job.id, %error, "recording a job outcome failed");
                None
            }
        }
    }

    /// Runs one claimed job; `None` when it was cancelled, its lease was
    /// lost, it was postponed, or it was handed back because this process
    /// is stopping.
    async fn run(&self, job: &Job, shutdown: &CancellationToken) -> Option<JobOutcome> {
        match self.attempt(job, shutdown).await {
            Ran::Ended(outcome) => outcome,
            Ran::Interrupted => {
                self.hand_back(job).await;
                None
            }
        }
    }

    /// Gives an interrupted job back to the queue, so that another process
    /// runs it now rather than when its lease expires.
    async fn hand_back(&self, job: &Job) {
        let handed = retry_transient("handing a job back", READ_ATTEMPTS, || {
            self.storage.hand_back_job(job.id, &self.owner)
        })
        .await;
        match handed {
            Ok(true) => tracing::info!("job handed back at shutdown"),
            Ok(false) => {}
            // Its lease expires and another process retries it.
            Err(error) => tracing::warn!(%error, "handing a job back failed"),
        }
    }

    /// Runs one claimed job, renewing its lease until it ends or, once
    /// shutdown began, until the grace period is over. A panic fails the
    /// job, not the worker.
    async fn attempt(&self, job: &Job, shutdown: &CancellationToken) -> Ran {
        let cancel = self.signals.running(job.id);
        let started = std::time::Instant::now();
        let work = AssertUnwindSafe(self.executor.execute(job, &self.owner))
            .catch_unwind()
            .map(|attempted| match attempted {
                Ok(Attempted::Finished(outcome)) => Some(outcome),
                Ok(Attempted::Postponed) => None,
                Err(panic) => {
                    let message = crate::panics::panic_message(panic.as_ref());
                    tracing::error!(job = %job.id, panic = message, "a job panicked");
                    let outcome = JobOutcome::Failure {
                        error_message: INTERNAL_FAILURE.to_owned(),
                        kind: FailureKind::Internal,
                        usage: Usage::default(),
                        cost: 0.0,
                    };
                    let labels = crate::metrics::JobLabels::default();
                    crate::metrics::record_job_finished(&labels, &outcome, started.elapsed());
                    Some(outcome)
                }
            });
        tokio::pin!(work);
        let grace = self.config.shutdown_grace;
        let grace_over = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(grace_over);
        let mut heartbeat = tokio::time::interval(self.config.lease / 3);
        heartbeat.tick().await;
        // The job keeps running while its lease is renewed: the renewal may
        // wait for a database lock the job holds (SQLite's one writer, taken
        // by a result the job is saving), which it releases only if polled.
        let mut renewal = None;
        loop {
            tokio::select! {
                outcome = &mut work => return Ran::Ended(outcome),
                _ = cancel.cancelled() => return Ran::Ended(None),
                () = &mut grace_over => return Ran::Interrupted,
                _ = heartbeat.tick(), if renewal.is_none() => {
                    renewal = Some(self.storage.renew_lease(job.id, &self.owner, self.config.lease));
                }
                renewed = async { renewal.as_mut().expect("a renewal runs").await }, if renewal.is_some() => {
                    renewal = None;
                    match renewed {
                        Ok(LeaseState::Held) => {}
                        Ok(LeaseState::Cancelled | LeaseState::Lost) => return Ran::Ended(None),
                        Err(error) => tracing::warn!(job = %job.id, %error, "renewing a lease failed"),
                    }
                }
            }
        }
    }
}

/// The span around everything a worker does for a job, provider calls and
/// engine code included, so that every log line of the job names it.
fn job_span(job: &Job) -> tracing::Span {
    tracing::info_span!("job", job_id = %job.id, agent_id = %job.agent_id)
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
            _ = tokio::time::sleep(signals.recheck_interval()) => {},
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}
