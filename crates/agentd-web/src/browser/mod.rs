//! Headless Chromium over CDP.
//!
//! One browser process per server, started on first use and again after a
//! crash, with a bounded pool of browser contexts (`max_pages`: further
//! requests wait for a free one). Each page gets its own context whose
//! requests all go through its own filtering proxy ([`proxy`]): the same
//! `AddressPolicy` as static fetches, DNS resolved once by the proxy, and
//! a cap on the bytes the page may load.

mod cdp;
mod interact;
mod launch;
mod page;
mod proxy;

pub use launch::find_chromium;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentd_net::AddressPolicy;
use tokio::sync::{Mutex, Semaphore};
use url::Url;

use crate::WebError;
use launch::Instance;
use page::Page;

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

/// Pool of browser contexts on one lazily started Chromium.
pub struct Browser {
    settings: BrowserSettings,
    policy: Arc<AddressPolicy>,
    free_pages: Arc<Semaphore>,
    instance: Mutex<Option<Arc<Instance>>>,
}

impl Browser {
    /// Starts nothing: Chromium is started on first use.
    pub fn new(settings: BrowserSettings) -> Self {
        let policy = Arc::new(settings.policy.clone());
        let free_pages = Arc::new(Semaphore::new(settings.max_pages.max(1)));
        Self {
            settings,
            policy,
            free_pages,
            instance: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &BrowserSettings {
        &self.settings
    }

    /// Whether a Chromium executable is found (nothing is started).
    pub fn is_available(&self) -> bool {
        find_chromium(self.settings.executable.as_deref()).is_some()
    }

    /// The process id of the running Chromium, if one is started.
    pub async fn process_id(&self) -> Option<u32> {
        let instance = self.instance.lock().await;
        instance
            .as_ref()
            .filter(|i| i.is_alive())
            .and_then(|i| i.process_id())
    }

    /// Renders `url` in a fresh context of the pool.
    pub async fn render(
        &self,
        url: &Url,
        options: &RenderOptions,
    ) -> Result<RenderedPage, WebError> {
        let session = self.open(url).await?;
        let rendered = session.snapshot(options).await;
        // Closing is best effort: a context left over is disposed of with the browser.
        let _ = tokio::time::timeout(self.settings.page_timeout, session.page.close()).await;
        rendered
    }

    /// Opens `url` in a context kept until the session is dropped.
    pub async fn open(&self, url: &Url) -> Result<PageSession, WebError> {
        self.policy
            .check_parsed(url)
            .map_err(|refusal| page::unreachable(&refusal))?;
        let permit = Arc::clone(&self.free_pages)
            .acquire_owned()
            .await
            .map_err(|_| WebError::Internal("the browser is shutting down".into()))?;
        let instance = self.instance().await?;
        // A hung browser must not hold a page of the pool forever.
        let timeout = self.settings.page_timeout;
        let create = Page::create(instance, &self.settings, Arc::clone(&self.policy), permit);
        let page = tokio::time::timeout(timeout, create)
            .await
            .map_err(|_| WebError::Timeout(timeout.as_secs()))??;
        page.navigate(url).await?;
        Ok(PageSession { page })
    }

    /// The running Chromium, started now if there is none or it died.
    async fn instance(&self) -> Result<Arc<Instance>, WebError> {
        let mut slot = self.instance.lock().await;
        if let Some(instance) = slot.as_ref().filter(|i| i.is_alive()) {
            return Ok(Arc::clone(instance));
        }
        let executable =
            find_chromium(self.settings.executable.as_deref()).ok_or_else(|| self.missing())?;
        let instance = Instance::launch(
            &executable,
            &self.settings.user_agent,
            Arc::clone(&self.policy),
        )
        .await
        .map_err(|reason| {
            tracing::error!(%reason, executable = %executable.display(), "Chromium did not start");
            WebError::Internal("the browser could not be started".into())
        })?;
        let instance = Arc::new(instance);
        *slot = Some(Arc::clone(&instance));
        Ok(instance)
    }

    fn missing(&self) -> WebError {
        let detail = match &self.settings.executable {
            Some(path) => format!(" ({} does not exist)", path.display()),
            None => String::new(),
        };
        WebError::BrowserMissing(format!(
            "rendering pages needs Chromium: install Debian's `chromium` package or set AGENTD_CHROMIUM_PATH{detail}"
        ))
    }
}

/// A page kept open across the steps of an Interactive Web run; its browser
/// context is closed when the session is dropped.
pub struct PageSession {
    page: Page,
}

impl PageSession {
    /// The visible interactive elements, numbered for [`Self::act`].
    pub async fn elements(&self) -> Result<Vec<InteractiveElement>, WebError> {
        self.page.bounded(interact::elements(&self.page)).await
    }

    /// Performs `action` and waits for a navigation it caused to settle.
    pub async fn act(&self, action: &PageAction) -> Result<(), WebError> {
        self.page.bounded(interact::act(&self.page, action)).await
    }

    /// The page now (after the last action).
    pub async fn snapshot(&self, options: &RenderOptions) -> Result<RenderedPage, WebError> {
        tokio::time::sleep(options.min_wait).await;
        self.page
            .bounded(self.page.capture(options.screenshot))
            .await
    }
}
