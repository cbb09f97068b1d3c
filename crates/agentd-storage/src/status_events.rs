//! What a backend records when a job's status changes, shared by all of
//! them: the message of each status event and the texts of the queue.

use agentd_domain::webhook::{DeliveryState, WebhookEvent};
use agentd_domain::{JobId, JobStatus};

use crate::DeliveryNext;

/// The message of the RETRY event written when a worker's lease expired.
pub(crate) const RETRY_MESSAGE: &str =
    "The worker running this job stopped responding; the job is retried.";

/// The message of the RETRY event of a job its stopping worker handed back.
pub(crate) const HANDED_BACK: &str =
    "The worker running this job was shut down; the job is retried.";

/// Hands a job back (`$1` the time, `$2` its id, `$3` its lease owner);
/// the same text on every backend.
pub(crate) const HAND_BACK_SQL: &str =
    "UPDATE jobs SET status = 2, attempts = attempts - 1, lease_owner = NULL, \
     lease_expires_at = NULL, updated_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 1";

/// The error of a job whose worker vanished `max_attempts` times.
pub(crate) const ABANDONED: &str =
    "The job was abandoned: its worker stopped responding too many times.";

/// The message a status event carries: why a job is retried (its worker
/// vanished unless the change says otherwise), or its error when it
/// failed; nothing for other statuses.
fn event_message(status: JobStatus, error_message: Option<&str>) -> Option<String> {
    match status {
        JobStatus::Retry => Some(error_message.unwrap_or(RETRY_MESSAGE).to_owned()),
        JobStatus::Failure => error_message.map(str::to_owned),
        _ => None,
    }
}

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and the escape
/// character `\` taken literally (both backends use `\` as the escape).
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A job whose status was just set: each backend writes its event, in the
/// transaction that set it, from this (no database triggers).
#[derive(Clone, Debug)]
pub(crate) struct StatusChange {
    pub job: JobId,
    pub status: JobStatus,
    /// The job's error message after the change (a FAILURE's reason).
    pub error_message: Option<String>,
}

impl StatusChange {
    pub fn new(job: JobId, status: JobStatus) -> Self {
        Self {
            job,
            status,
            error_message: None,
        }
    }

    /// A running job its stopping worker gave back.
    pub fn handed_back(job: JobId) -> Self {
        Self {
            job,
            status: JobStatus::Retry,
            error_message: Some(HANDED_BACK.to_owned()),
        }
    }

    /// The events a new job starts with: PENDING, then its status when it
    /// is created final (a cache hit).
    pub fn created(job: JobId, status: JobStatus) -> Vec<Self> {
        let mut changes = vec![Self::new(job, JobStatus::Pending)];
        if status != JobStatus::Pending {
            changes.push(Self::new(job, status));
        }
        changes
    }

    /// The message its status event carries.
    pub fn event_message(&self) -> Option<String> {
        event_message(self.status, self.error_message.as_deref())
    }

    /// The webhook event it raises: subscribers to it get a delivery,
    /// queued in the same transaction.
    pub fn webhook_event(&self) -> Option<WebhookEvent> {
        WebhookEvent::for_status(self.status)
    }
}

/// How long a delivery waits for its next attempt, as the dispatcher asked;
/// none once it is over (delivered or given up).
pub(crate) fn next_attempt_delay(next: DeliveryNext) -> Option<std::time::Duration> {
    match next {
        DeliveryNext::RetryIn(delay) => Some(delay),
        DeliveryNext::Delivered | DeliveryNext::GiveUp => None,
    }
}

/// The state a delivery is left in after an attempt.
pub(crate) fn state_after(next: DeliveryNext) -> DeliveryState {
    match next {
        DeliveryNext::Delivered => DeliveryState::Delivered,
        DeliveryNext::RetryIn(_) => DeliveryState::Pending,
        DeliveryNext::GiveUp => DeliveryState::Failed,
    }
}

/// Events as stored: a JSON array of their names.
pub(crate) fn events_json(events: &[WebhookEvent]) -> String {
    serde_json::to_string(events).expect("event names serialize")
}

/// What a job's end costs its organization: nothing to write for a free run.
pub(crate) fn charge(cost: f64) -> Option<f64> {
    (cost != 0.0).then_some(cost)
}
