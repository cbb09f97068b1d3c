//! In-process signals between the API and the workers: new work, finished
//! jobs, and cancellation of a job that runs here. Storage stays the truth;
//! the signals only save waiting for the next poll.

use std::collections::HashMap;
use std::sync::Mutex;

use agentd_domain::JobId;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

pub struct JobSignals {
    /// Counts enqueue events; idle workers wait for it to change.
    work: watch::Sender<u64>,
    waiters: Mutex<HashMap<JobId, Vec<oneshot::Sender<()>>>>,
    running: Mutex<HashMap<JobId, CancellationToken>>,
}

impl Default for JobSignals {
    fn default() -> Self {
        Self {
            work: watch::channel(0).0,
            waiters: Mutex::default(),
            running: Mutex::default(),
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

    /// Stops a job if it runs in this process (it was marked CANCELLED).
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
}
