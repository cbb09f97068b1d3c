//! Webhooks as the Standard Webhooks convention (standardwebhooks.com)
//! defines them: the events a subscription receives, its `whsec_` secret,
//! the `v1,` signature of each message and the retry schedule.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::{AgentId, DeliveryId, JobId, OrganizationId, WebhookId};
use crate::time::Timestamp;
use crate::JobStatus;

/// What happened to a job; a subscription names the events it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    /// The job was answered from the result cache (status CACHED).
    #[serde(rename = "job.cached")]
    JobCached,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 4] = [
        WebhookEvent::JobSucceeded,
        WebhookEvent::JobFailed,
        WebhookEvent::JobCancelled,
        WebhookEvent::JobCached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobSucceeded => "job.succeeded",
            Self::JobFailed => "job.failed",
            Self::JobCancelled => "job.cancelled",
            Self::JobCached => "job.cached",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == text)
    }

    /// The event a job reaching `status` raises; none for unfinished statuses.
    pub fn for_status(status: JobStatus) -> Option<Self> {
        match status {
            JobStatus::Success => Some(Self::JobSucceeded),
            JobStatus::Failure => Some(Self::JobFailed),
            JobStatus::Cancelled => Some(Self::JobCancelled),
            JobStatus::Cached => Some(Self::JobCached),
            JobStatus::Pending | JobStatus::Started | JobStatus::Retry => None,
        }
    }
}

impl std::fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shared secret of a subscription: `whsec_` and the base64 of the
/// HMAC key, as Standard Webhooks prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

/// Key sizes accepted from users: 24 bytes is what Standard Webhooks
/// generates; fewer than 16 is too weak, more than 64 is a mistake.
const MIN_KEY_BYTES: usize = 16;
const MAX_KEY_BYTES: usize = 64;
const SECRET_PREFIX: &str = "whsec_";

impl WebhookSecret {
    /// Bytes of a freshly generated key.
    pub const GENERATED_KEY_BYTES: usize = 24;

    pub fn from_key(key: &[u8]) -> Self {
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// Parses a secret given by a user; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("Must start with '{SECRET_PREFIX}' followed by base64 (Standard Webhooks).")
        })?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| format!("The part after '{SECRET_PREFIX}' is not valid base64."))?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(format!(
                "The key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, got {}.",
                key.len()
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn key(&self) -> Vec<u8> {
        // Parsed or built from a key: the base64 part is valid.
        STANDARD
            .decode(&self.0[SECRET_PREFIX.len()..])
            .unwrap_or_default()
    }

    /// The `webhook-signature` header of a message: `v1,` and the base64 of
    /// HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key()).expect("HMAC accepts a key of any length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// A subscription: where an agent's job events are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub organization_id: OrganizationId,
    pub agent_id: AgentId,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub secret: WebhookSecret,
    pub description: String,
    /// An inactive subscription receives nothing, resends included.
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// One try at sending a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryAttempt {
    pub attempted_at: Timestamp,
    /// The receiver's HTTP status; none when no answer came.
    pub response_status: Option<u16>,
    pub latency_ms: i64,
    /// Why the attempt failed, in words fit for the subscriber (never an
    /// internal error text); none when it succeeded.
    pub error: Option<String>,
}

impl DeliveryAttempt {
    pub fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

/// One message about one job to one subscription, with its attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub job_id: JobId,
    pub event: WebhookEvent,
    pub state: DeliveryState,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub attempts: Vec<DeliveryAttempt>,
}

/// When deliveries are retried: Standard Webhooks' schedule (immediately,
/// then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: about 27 h),
/// every delay multiplied by `scale` (below 1 only for tests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySchedule {
    pub scale: f64,
}

const STANDARD_DELAYS_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

impl Default for RetrySchedule {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

impl RetrySchedule {
    pub const ATTEMPTS: usize = STANDARD_DELAYS_SECS.len();

    /// The wait before the next attempt once `attempts_made` failed; none
    /// when the schedule is over.
    pub fn delay_after(&self, attempts_made: usize) -> Option<Duration> {
        let seconds = *STANDARD_DELAYS_SECS.get(attempts_made)?;
        Some(Duration::from_secs_f64(
            seconds as f64 * self.scale.max(0.0),
        ))
    }

    /// The whole span of the schedule, first attempt to last.
    pub fn span(&self) -> Duration {
        (1..Self::ATTEMPTS)
            .filter_map(|n| self.delay_after(n))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks reference libraries' tests.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_need_the_prefix_valid_base64_and_a_sane_length() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        let generated = WebhookSecret::from_key(&[7; WebhookSecret::GENERATED_KEY_BYTES]);
        assert_eq!(WebhookSecret::parse(generated.as_str()), Ok(generated));
    }

    #[test]
    fn the_schedule_spans_more_than_a_day_and_scales() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.delay_after(0), Some(Duration::ZERO));
        assert_eq!(schedule.delay_after(1), Some(Duration::from_secs(5)));
        assert_eq!(schedule.delay_after(RetrySchedule::ATTEMPTS), None);
        assert!(schedule.span() >= Duration::from_secs(24 * 3600));
        let fast = RetrySchedule { scale: 0.001 };
        assert_eq!(fast.delay_after(2), Some(Duration::from_millis(300)));
    }

    #[test]
    fn every_final_status_raises_one_event() {
        for status in JobStatus::ALL {
            assert_eq!(
                WebhookEvent::for_status(status).is_some(),
                status.is_final()
            );
        }
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
        }
    }
}
