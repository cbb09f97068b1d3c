//! Relays what other processes on the database announce (new work, jobs
//! that became final) to this process's [`JobSignals`], so that idle
//! workers, sync runs and running jobs hear of it within milliseconds
//! instead of at their next poll.

use std::sync::Arc;
use std::time::Duration;

use agentd_storage::{JobNotice, Storage};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::JobSignals;

const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// Listens until `shutdown`; nothing to do (and no task) where the
/// database sends no notices.
pub fn spawn(
    storage: &dyn Storage,
    signals: Arc<JobSignals>,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let mut notices = storage.job_notices()?;
    signals.hear_other_processes();
    Some(tokio::spawn(async move {
        let mut delay = RECONNECT_FIRST_DELAY;
        loop {
            let notice = tokio::select! {
                notice = notices.next() => notice,
                () = shutdown.cancelled() => return,
            };
            match notice {
                Ok(notice) => {
                    delay = RECONNECT_FIRST_DELAY;
                    relay(&signals, notice);
                }
                Err(error) => {
                    tracing::warn!(%error, "listening for job notifications failed; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return,
                    }
                    delay = (delay * 2).min(RECONNECT_MAX_DELAY);
                }
            }
        }
    }))
}

fn relay(signals: &JobSignals, notice: JobNotice) {
    match notice {
        JobNotice::Runnable => signals.job_enqueued(),
        // A final job may have ended anywhere: its attempt here (if any) is moot.
        JobNotice::Final(job) => {
            tracing::debug!(%job, "notified: job is final");
            signals.cancel(job);
        }
        JobNotice::Resumed => {
            tracing::info!("listening for job notifications");
            // Whatever was announced while nobody listened is looked up again.
            signals.job_enqueued();
            signals.wake_all_waiters();
        }
    }
}
