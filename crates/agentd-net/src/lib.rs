//! The outbound URL guard of agentd. Every fetch of a URL a user supplied
//! (file inputs, `images`, web pages, webhooks) goes through a
//! [`GuardedClient`], which refuses loopback, private, link-local, metadata
//! and similar addresses unless the operator allows them
//! (`AGENTD_ALLOW_PRIVATE_URLS`). Operator-configured URLs (provider base
//! URLs) do not need it.

#![forbid(unsafe_code)]

mod client;
mod policy;

pub use client::{guarded_builder, ClientSettings, GuardedClient, Unreachable, MAX_REDIRECTS};
pub use policy::{is_public, AddressPolicy, Refusal};
