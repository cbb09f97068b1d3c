//! What a backend records when a job's status changes, shared by all of
//! them: the message of each status event and the texts of the queue.

use agentd_domain::JobStatus;

/// The message of the RETRY event written when a worker's lease expired.
/// (SQLite's `job_status_changed` trigger, migration 0004, holds the same text.)
pub(crate) const RETRY_MESSAGE: &str =
    "The worker running this job stopped responding; the job is retried.";

/// The error of a job whose worker vanished `max_attempts` times.
pub(crate) const ABANDONED: &str =
    "The job was abandoned: its worker stopped responding too many times.";

/// The message a status event carries: why a job is retried, or its error
/// when it failed; nothing for other statuses.
pub(crate) fn event_message(status: JobStatus, error_message: Option<&str>) -> Option<String> {
    match status {
        JobStatus::Retry => Some(RETRY_MESSAGE.to_owned()),
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
