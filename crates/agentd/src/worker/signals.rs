//! In-process signals between the API and the workers: new work, finished
//! jobs, and cancellation of a job that runs here. Storage stays the truth;
//! the signals only save waiting for the next poll.

use std::collections::HashMap;
use std::sync::Mutex;

use agentd_domain::JobId;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct JobSignals {
    work: Notify,
    waiters: Mutex<HashMap<JobId, Vec<oneshot::Sender<()>>>>,
    running: Mutex<HashMap<JobId, CancellationToken>>,
}

impl JobSignals {
    /// New jobs were stored.
    pub fn job_enqueued(&self) {
        self.work.notify_one();
    }

    pub(super) async fn enqueued(&self) {
        self.work.notified().await;
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
