//! Webhooks: the rules of a subscription (where it may point, which events
//! it names, its secret) and the [`dispatcher`] that sends deliveries.

pub mod dispatcher;

use std::net::IpAddr;
use std::time::Duration;

use agentd_domain::webhook::{RetrySchedule, WebhookEvent, WebhookSecret};
use agentd_domain::Job;
use agentd_net::{AddressPolicy, Refusal};
use rand::RngCore;
use serde_json::{json, Value};

pub use dispatcher::{DeliveryOutcome, Dispatcher, OutcomeHook};

/// Longest target URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How deliveries are sent.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Deliveries sent at once by this process (0: this process sends none).
    pub concurrency: usize,
    /// Time limit of one attempt, answer included.
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll_interval: Duration,
    /// Where deliveries may connect (`AGENTD_ALLOW_PRIVATE_URLS`).
    pub policy: AddressPolicy,
}

/// A fresh random secret (Standard Webhooks' 24-byte key).
pub fn generate_secret() -> WebhookSecret {
    let mut key = [0u8; WebhookSecret::GENERATED_KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    WebhookSecret::from_key(&key)
}

/// Parses a list of event names; none given means every event.
pub fn parse_events(names: &[String]) -> Result<Vec<WebhookEvent>, String> {
    let mut events = Vec::new();
    for name in names {
        let event = WebhookEvent::parse(name).ok_or_else(|| {
            format!(
                "'{name}' is not an event. Events: {}.",
                WebhookEvent::ALL.map(WebhookEvent::as_str).join(", ")
            )
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err("Name at least one event.".into());
    }
    Ok(events)
}

/// Why a target URL is refused, in words for the subscriber.
fn refusal_text(refusal: &Refusal) -> String {
    const ALLOWANCE: &str =
        "The server's operator can allow such addresses with AGENTD_ALLOW_PRIVATE_URLS.";
    match refusal {
        Refusal::Malformed => "Not a valid URL.".into(),
        Refusal::Scheme(scheme) => {
            format!("The scheme '{scheme}' is not allowed; use http or https.")
        }
        Refusal::NoHost => "The URL names no host.".into(),
        Refusal::Address(ip) => format!(
            "It points to {ip}, a loopback, private, link-local or metadata address. {ALLOWANCE}"
        ),
        Refusal::NoAllowedAddress(host) => format!(
            "The host '{host}' resolves to a loopback, private, link-local or metadata address. \
             {ALLOWANCE}"
        ),
        Refusal::TooManyRedirects(_) => "Too many redirects.".into(),
    }
}

/// Checks a subscription's target now: its form, and every address its
/// host resolves to (each delivery checks again, as DNS can change).
pub async fn check_target(policy: &AddressPolicy, text: &str) -> Result<String, String> {
    if text.len() > MAX_URL_LENGTH {
        return Err(format!("At most {MAX_URL_LENGTH} characters."));
    }
    let url = policy.check_url(text).map_err(|r| refusal_text(&r))?;
    let Some(url::Host::Domain(host)) = url.host() else {
        // An IP literal: check_url judged it.
        return Ok(url.to_string());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| format!("The host '{host}' does not resolve."))?
        .map(|address| address.ip())
        .collect();
    if addresses.is_empty() {
        return Err(format!("The host '{host}' does not resolve."));
    }
    if let Some(refused) = addresses.iter().find(|ip| !policy.permits(**ip)) {
        return Err(refusal_text(&Refusal::Address(*refused)));
    }
    Ok(url.to_string())
}

/// The body of a delivery (Standard Webhooks' `type`, `timestamp`, `data`):
/// the job as it is now, so a job whose data was deleted sends none.
pub fn payload(event: WebhookEvent, job: &Job, at: &agentd_domain::time::Timestamp) -> Value {
    let mut data = json!(crate::api::wire::job_result(job));
    data["job_id"] = json!(job.id);
    data["status_name"] = json!(job.status.name());
    data["data_deleted"] = json!(job.data_deleted);
    json!({
        "type": event.as_str(),
        "timestamp": agentd_domain::time::format(at),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_with_the_reason() {
        let policy = AddressPolicy::PublicOnly;
        for url in [
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://localhost:8080/hook",
        ] {
            let error = check_target(&policy, url).await.unwrap_err();
            assert!(
                error.contains("AGENTD_ALLOW_PRIVATE_URLS"),
                "{url}: {error}"
            );
        }
        let error = check_target(&policy, "ftp://example.com/")
            .await
            .unwrap_err();
        assert!(error.contains("scheme 'ftp'"), "{error}");
        assert!(
            check_target(&AddressPolicy::AllowAll, "http://127.0.0.1:9/hook")
                .await
                .is_ok()
        );
    }

    #[test]
    fn events_are_named_and_deduplicated() {
        let names = ["job.failed".to_owned(), "job.failed".to_owned()];
        assert_eq!(parse_events(&names), Ok(vec![WebhookEvent::JobFailed]));
        assert!(parse_events(&["job.done".to_owned()])
            .unwrap_err()
            .contains("job.succeeded"));
        assert!(parse_events(&[]).is_err());
    }
}
