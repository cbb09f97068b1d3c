//! Headless Chromium over CDP (interface; the implementation lands with
//! the browser work).
//!
//! One browser process per server, started on first use, with a bounded
//! pool of browser contexts (`AGENTD_WEB_MAX_PAGES`); every request a page
//! makes is intercepted and checked by the same `AddressPolicy` as static
//! fetches, so a page cannot make the browser reach an internal address.

use std::path::PathBuf;
use std::time::Duration;

use agentd_net::AddressPolicy;
use url::Url;

use crate::WebError;

/// Operator settings of the browser.
#[derive(Clone, Debug)]
pub struct BrowserSettings {
    /// `AGENTD_CHROMIUM_PATH`, else `chromium` / `chromium-browser` on PATH.
    pub executable: Option<PathBuf>,
    /// Concurrent pages (browser contexts) per process.
    pub max_pages: usize,
    pub page_timeout: Duration,
    pub max_page_bytes: u64,
    pub user_agent: String,
    pub policy: AddressPolicy,
}

/// How to render one page.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Extra wait after the load event (`min_wait_time_sec`).
    pub min_wait: Duration,
    pub screenshot: bool,
}

/// A page as the browser shows it.
#[derive(Clone, Debug)]
pub struct RenderedPage {
    /// After redirects.
    pub final_url: Url,
    /// The DOM serialized after scripts ran.
    pub html: String,
    /// Full-page PNG, when asked for.
    pub screenshot_png: Option<Vec<u8>>,
}

/// An element a model may act on (Interactive Web).
#[derive(Clone, Debug)]
pub struct InteractiveElement {
    /// Stable within one step: what the model names in its action.
    pub index: usize,
    /// `a`, `button`, `input[type=text]`, `select`, `textarea`, …
    pub kind: String,
    /// Visible text, label, placeholder or name.
    pub label: String,
    /// For `select`: the options' texts.
    pub options: Vec<String>,
}

/// One step of Interactive Web.
#[derive(Clone, Debug)]
pub enum PageAction {
    Click {
        index: usize,
    },
    Type {
        index: usize,
        text: String,
        submit: bool,
    },
    Select {
        index: usize,
        option: String,
    },
    Scroll {
        down: bool,
    },
    Wait {
        duration: Duration,
    },
}

/// Pool of browser contexts.
pub struct Browser {
    settings: BrowserSettings,
}

impl Browser {
    pub fn new(settings: BrowserSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &BrowserSettings {
        &self.settings
    }

    /// Renders `url` in a fresh context of the pool.
    pub async fn render(
        &self,
        url: &Url,
        options: &RenderOptions,
    ) -> Result<RenderedPage, WebError> {
        let _ = (url, options);
        Err(self.missing())
    }

    /// Opens `url` in a context kept until the session is dropped.
    pub async fn open(&self, url: &Url) -> Result<PageSession, WebError> {
        let _ = url;
        Err(self.missing())
    }

    fn missing(&self) -> WebError {
        WebError::BrowserMissing(
            "rendering pages needs Chromium: install Debian's `chromium` package or set AGENTD_CHROMIUM_PATH".into(),
        )
    }
}

/// A page kept open across the steps of an Interactive Web run.
pub struct PageSession {
    _private: (),
}

impl PageSession {
    pub async fn elements(&self) -> Result<Vec<InteractiveElement>, WebError> {
        Err(WebError::Internal("not implemented".into()))
    }

    pub async fn act(&self, action: &PageAction) -> Result<(), WebError> {
        let _ = action;
        Err(WebError::Internal("not implemented".into()))
    }

    /// The page now (after the last action).
    pub async fn snapshot(&self, options: &RenderOptions) -> Result<RenderedPage, WebError> {
        let _ = options;
        Err(WebError::Internal("not implemented".into()))
    }
}
