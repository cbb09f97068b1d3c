//! In-process signals between the API and the workers: new work, finished
//! jobs, and cancellation of a job that runs here. Storage stays the truth;
//! the signals only save waiting for the next poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use agentd_domain::JobId;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

pub struct JobSignals {
    /// Counts enqueue events; idle workers wait for it to change.
    work: watch::Sender<u64>,
    waiters: Mutex<HashMap<JobId, Vec<oneshot::Sender<()>>>>,
    running: Mutex<HashMap<JobId, CancellationToken>>,
    /// Other processes' job changes reach this one (PostgreSQL notifications).
    hears_other_processes: AtomicBool,
}

/// How often a waiter looks at a job that may end in another process,
/// when nothing would tell it…
const RECHECK_UNINFORMED: Duration = Duration::from_secs(1);
/// …and when notifications would (a safety net for a lost one).
const RECHECK_INFORMED: Duration = Duration::from_secs(15);

impl Default for JobSignals {
    fn default() -> Self {
        Self {
            work: watch::channel(0).0,
            waiters: Mutex::default(),
            running: Mutex::default(),
            hears_other_processes: AtomicBool::new(false),
        }
    }
}

impl JobSignals {
    /// New jobs were stored: wakes every idle worker.
    pub fn job_enqueued(&self) {
        self.work
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    pub(super) fn watch_enqueued(&self) -> watch::Receiver<u64> {
        self.work.subscribe()
    }

    /// Resolves when the job ends in this process.
    pub fn subscribe(&self, job: JobId) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut waiters = self.waiters.lock().expect("signals lock");
        let list = waiters.entry(job).or_default();
        list.retain(|s| !s.is_closed());
        list.push(sender);
        receiver
    }

    /// Registers a job running here; the token fires when it is cancelled.
    pub(super) fn running(&self, job: JobId) -> CancellationToken {
        let token = CancellationToken::new();
        self.running
            .lock()
            .expect("signals lock")
            .insert(job, token.clone());
        token
    }

    pub(super) fn done(&self, job: JobId) {
        self.running.lock().expect("signals lock").remove(&job);
        if let Some(waiters) = self.waiters.lock().expect("signals lock").remove(&job) {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    /// Stops a job if it runs in this process (it was marked CANCELLED, or
    /// became final elsewhere) and wakes its waiters.
    pub fn cancel(&self, job: JobId) {
        if let Some(token) = self.running.lock().expect("signals lock").get(&job) {
            token.cancel();
        }
        if let Some(waiters) = self.waiters.lock().expect("signals lock").remove(&job) {
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }

    /// Wakes every waiter to read its job again (notifications were lost).
    pub(super) fn wake_all_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().expect("signals lock"));
        for waiter in waiters.into_values().flatten() {
            let _ = waiter.send(());
        }
    }

    /// From now on other processes' job changes are relayed here.
    pub(super) fn hear_other_processes(&self) {
        self.hears_other_processes.store(true, Ordering::Relaxed);
    }

    /// How long a waiter may sleep before it reads a job again, in case the
    /// job ended in another process without this one hearing of it.
    pub fn recheck_interval(&self) -> Duration {
        if self.hears_other_processes.load(Ordering::Relaxed) {
            RECHECK_INFORMED
        } else {
            RECHECK_UNINFORMED
        }
    }
}
