//! Panics never reach a client or kill a worker: the API catches them per
//! request (a JSON 500, see [`crate::api::router`]) and the worker per job
//! (the job fails with a generic message). This module holds what both
//! share, and a debug-only hook that panics on demand so the end-to-end
//! tests can prove it.
//!
//! `AGENTD_TEST_PANIC_ON` (debug builds only; release builds compile the
//! hook out and ignore the variable) lists where to panic, comma-separated:
//! - `request`: a request carrying the header [`PANIC_HEADER`];
//! - `job`: a job with an input value containing [`JOB_PANIC_MARKER`].

use std::any::Any;

use agentd_domain::Job;

pub const PANIC_HEADER: &str = "x-agentd-test-panic";
pub const JOB_PANIC_MARKER: &str = "AGENTD_TEST_PANIC";

/// The text a panic was raised with, for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)")
}

#[cfg(debug_assertions)]
fn hook_enabled(point: &str) -> bool {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    POINTS
        .get_or_init(|| {
            std::env::var("AGENTD_TEST_PANIC_ON")
                .map(|text| text.split(',').map(|p| p.trim().to_owned()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|enabled| enabled == point)
}

/// Middleware of debug builds: panics for a request that asks for it.
#[cfg(debug_assertions)]
pub async fn panic_on_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if hook_enabled("request") && request.headers().contains_key(PANIC_HEADER) {
        panic!("test panic requested by the {PANIC_HEADER} header");
    }
    next.run(request).await
}

/// Panics while running a job that asks for it (debug builds only).
#[cfg(debug_assertions)]
pub fn panic_on_job(job: &Job) {
    if hook_enabled("job")
        && job
            .inputs
            .iter()
            .any(|input| input.value.contains(JOB_PANIC_MARKER))
    {
        panic!("test panic requested by job {}", job.id);
    }
}

#[cfg(not(debug_assertions))]
pub fn panic_on_job(_job: &Job) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_both_payload_types() {
        let owned = std::panic::catch_unwind(|| panic!("owned {}", 1)).unwrap_err();
        assert_eq!(panic_message(owned.as_ref()), "owned 1");
        let fixed = std::panic::catch_unwind(|| std::panic::panic_any("fixed")).unwrap_err();
        assert_eq!(panic_message(fixed.as_ref()), "fixed");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(other.as_ref()), "(a panic without a message)");
    }
}
