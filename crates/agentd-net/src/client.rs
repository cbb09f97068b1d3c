//! An HTTP client for user-supplied URLs that connects only to addresses the
//! [`AddressPolicy`] allows.
//!
//! - IP literals are checked before anything is sent (a client never
//!   resolves them, so the resolver below would not see them).
//! - Names are resolved once, by [`GuardedResolver`], which drops every
//!   address the policy refuses; the connection can only go to what is
//!   left, so a name that resolves to a public address when checked and to
//!   a private one later (DNS rebinding) cannot get through.
//! - Every redirect hop is checked the same way, at most
//!   [`MAX_REDIRECTS`] of them.
//! - No proxy from the environment (a proxy would connect on our behalf).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Method, RequestBuilder, Response};

use crate::policy::{AddressPolicy, Refusal};

/// Redirects followed before a fetch is refused.
pub const MAX_REDIRECTS: usize = 5;

/// The one error every refused URL and every failed connection gets, so that
/// an answer never tells whether an address was refused, a port closed or a
/// host silent. The real reason is logged for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("it is not reachable from this server")]
pub struct Unreachable;

impl Unreachable {
    /// Logs why a fetch failed and returns the generic error.
    pub fn because(reason: &dyn std::fmt::Display) -> Self {
        tracing::info!(reason = %reason, "outbound fetch refused or failed");
        Self
    }
}

impl From<reqwest::Error> for Unreachable {
    fn from(error: reqwest::Error) -> Self {
        // The URL is left out of the log line: it may carry credentials.
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        Self::because(&reason)
    }
}

/// Settings of a [`GuardedClient`].
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Time limit of a whole exchange, body included.
    pub timeout: Duration,
    /// Time limit of establishing a connection.
    pub connect_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A `reqwest` client that only reaches what its policy allows.
#[derive(Clone, Debug)]
pub struct GuardedClient {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl GuardedClient {
    pub fn new(policy: AddressPolicy, settings: &ClientSettings) -> reqwest::Result<Self> {
        let policy = Arc::new(policy);
        let client = guarded_builder(Arc::clone(&policy))
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .build()?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Checks `url` and starts a request to it; headers and a body may be
    /// added before [`Self::send`].
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, Unreachable> {
        let url = self
            .policy
            .check_url(url)
            .map_err(|refusal| Unreachable::because(&refusal))?;
        Ok(self.client.request(method, url))
    }

    /// Sends a request made by [`Self::request`]; any failure to connect or
    /// to get an answer is [`Unreachable`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, Unreachable> {
        Ok(request.send().await?)
    }

    /// GETs `url`; the response's status is the caller's to judge.
    pub async fn get(&self, url: &str) -> Result<Response, Unreachable> {
        self.send(self.request(Method::GET, url)?).await
    }
}

/// A client builder with the guard in place (resolver, redirect checks, no
/// proxies). The caller must still check the first URL with
/// [`AddressPolicy::check_url`]: prefer [`GuardedClient`], which does.
pub fn guarded_builder(policy: Arc<AddressPolicy>) -> reqwest::ClientBuilder {
    let redirect_policy = Arc::clone(&policy);
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(redirect::Policy::custom(move |attempt| {
            // `previous` holds the URLs already visited, the first included.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Refusal::TooManyRedirects(MAX_REDIRECTS));
            }
            match redirect_policy.check_parsed(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        }))
}

/// Resolves names with the system resolver and keeps only the addresses the
/// policy allows; with none left, the name does not resolve.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|address| policy.permits(address.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Refusal::NoAllowedAddress(host).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
