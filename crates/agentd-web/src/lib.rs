//! Web pages for the web engines (Web Insights, Interactive Web).
//!
//! - [`content`]: an HTML page's main content as Markdown, with its title,
//!   metadata and links (what the model reads and what is saved).
//! - [`browser`]: headless Chromium over CDP: a small pool of browser
//!   contexts that render pages (full-page screenshots) and drive them
//!   step by step, every request of the page checked by the URL guard.
//! - [`fetch`]: static fetching through `agentd_net::GuardedClient`.
//! - [`robots`]: robots.txt rules.
//!
//! [`Web`] ties them together: it decides whether a page is fetched or
//! rendered, and checks robots.txt first.

#![forbid(unsafe_code)]

pub mod browser;
pub mod content;
pub mod fetch;
pub mod robots;

mod web;

pub use web::{LoadedPage, PageRequest, Web, WebSettings, DEFAULT_USER_AGENT};

/// Why a page could not be read. The text is shown to users (job
/// `error_message`), so it never holds internal details.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The URL is refused by the guard, or unreachable, or answered badly.
    #[error("{0}")]
    Unreachable(String),
    /// The page took longer than the page timeout.
    #[error("the page did not load within {0} s")]
    Timeout(u64),
    /// The page is bigger than the configured maximum.
    #[error("the page is larger than {0} bytes")]
    TooLarge(u64),
    /// The site's robots.txt disallows the page.
    #[error("{0}")]
    Refused(String),
    /// A browser-only option was asked for but no browser is installed.
    #[error("{0}")]
    BrowserMissing(String),
    /// The browser failed (crashed, protocol error): logged, shown generically.
    #[error("{0}")]
    Internal(String),
}
