//! One page in its own browser context: created, navigated, captured and
//! disposed of, every step within the page timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentd_net::AddressPolicy;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use url::Url;

use super::cdp::{CdpError, Event};
use super::launch::Instance;
use super::proxy::GuardProxy;
use super::{BrowserSettings, RenderedPage};
use crate::WebError;

/// Screenshots taller than this are cut (memory of one PNG).
const MAX_SCREENSHOT_HEIGHT: f64 = 16_384.0;

pub(crate) struct Page {
    instance: Arc<Instance>,
    context_id: String,
    pub(crate) target_id: String,
    session_id: String,
    proxy: GuardProxy,
    page_timeout: Duration,
    closed: bool,
    dialogs: Option<tokio::task::JoinHandle<()>>,
    _permit: OwnedSemaphorePermit,
}

/// The text every refused or failed URL gets; the reason is logged.
pub(crate) fn unreachable(reason: &dyn std::fmt::Display) -> WebError {
    tracing::info!(reason = %reason, "page refused or unreachable");
    WebError::Unreachable("the page is not reachable from this server".into())
}

fn internal(error: CdpError) -> WebError {
    tracing::warn!(%error, "browser command failed");
    WebError::Internal("the browser failed while reading the page".into())
}

impl Page {
    pub async fn create(
        instance: Arc<Instance>,
        settings: &BrowserSettings,
        policy: Arc<AddressPolicy>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Self, WebError> {
        let proxy = GuardProxy::start(policy, settings.max_page_bytes)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot start a page proxy");
                WebError::Internal("the browser could not open a page".into())
            })?;
        let browser = &instance.connection;
        let context = browser
            .call(
                None,
                "Target.createBrowserContext",
                json!({ "proxyServer": proxy.url(), "proxyBypassList": "<-loopback>" }),
            )
            .await
            .map_err(internal)?;
        let context_id = string_field(&context, "browserContextId")?;
        let created = browser
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context_id }),
            )
            .await;
        let target_id = match created {
            Ok(target) => string_field(&target, "targetId")?,
            Err(error) => {
                dispose(&instance, &context_id).await;
                return Err(internal(error));
            }
        };
        let mut page = Self {
            instance,
            context_id,
            target_id,
            session_id: String::new(),
            proxy,
            page_timeout: settings.page_timeout,
            closed: false,
            dialogs: None,
            _permit: permit,
        };
        let attached = page
            .instance
            .connection
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": page.target_id, "flatten": true }),
            )
            .await
            .map_err(internal)?;
        page.session_id = string_field(&attached, "sessionId")?;
        page.dialogs = Some(page.dismiss_dialogs());
        page.call("Page.enable", json!({})).await?;
        // Downloads are not what a page is read for, and never touch the disk.
        page.instance
            .connection
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({ "behavior": "deny", "browserContextId": page.context_id }),
            )
            .await
            .map_err(internal)?;
        Ok(page)
    }

    /// Dismisses `alert`, `confirm`, `prompt` and `beforeunload` dialogs,
    /// which would otherwise block the page's scripts and our evaluations.
    fn dismiss_dialogs(&self) -> tokio::task::JoinHandle<()> {
        let mut events = self.events();
        let instance = Arc::clone(&self.instance);
        let session_id = self.session_id.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event)
                        if event.method == "Page.javascriptDialogOpening"
                            && event.session_id.as_deref() == Some(&session_id) =>
                    {
                        let _ = instance
                            .connection
                            .call(
                                Some(&session_id),
                                "Page.handleJavaScriptDialog",
                                json!({ "accept": false }),
                            )
                            .await;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// A command to this page.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, WebError> {
        self.instance
            .connection
            .call(Some(&self.session_id), method, params)
            .await
            .map_err(internal)
    }

    /// Evaluates `expression` in the page, awaiting a promise, and returns its value.
    pub async fn evaluate(&self, expression: &str) -> Result<Value, WebError> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            tracing::warn!(%exception, "script in the page failed");
            return Err(WebError::Internal(
                "the browser failed while reading the page".into(),
            ));
        }
        Ok(result["result"]["value"].clone())
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.instance.connection.subscribe()
    }

    /// Runs `work` within the page timeout; a page over its byte budget is
    /// [`WebError::TooLarge`] whatever else happened.
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, WebError>>,
    ) -> Result<T, WebError> {
        let outcome = tokio::time::timeout(self.page_timeout, work).await;
        if self.proxy.exceeded() {
            return Err(WebError::TooLarge(self.proxy_budget()));
        }
        outcome.unwrap_or(Err(WebError::Timeout(self.page_timeout.as_secs())))
    }

    fn proxy_budget(&self) -> u64 {
        self.proxy.max_bytes()
    }

    /// Navigates and waits for the load event.
    pub async fn navigate(&self, url: &Url) -> Result<(), WebError> {
        self.bounded(async {
            let mut events = self.events();
            let navigated = self
                .call("Page.navigate", json!({ "url": url.as_str() }))
                .await?;
            if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
                return Err(unreachable(&error));
            }
            self.wait_for(&mut events, &["Page.loadEventFired"]).await?;
            self.check_response_status(url).await
        })
        .await
    }

    /// An error page (404, 500, …) is not the page asked for: the same rule
    /// as for static fetches. The status is the navigation's, after redirects
    /// (0 where the browser does not say, which is let through).
    async fn check_response_status(&self, url: &Url) -> Result<(), WebError> {
        let status = self
            .evaluate("(performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0")
            .await?
            .as_u64()
            .unwrap_or(0);
        if status >= 400 {
            return Err(WebError::Unreachable(format!(
                "the page {url} answered HTTP {status}"
            )));
        }
        Ok(())
    }

    /// Waits for one of `methods` on this page's session.
    pub async fn wait_for(
        &self,
        events: &mut broadcast::Receiver<Event>,
        methods: &[&str],
    ) -> Result<(), WebError> {
        loop {
            match events.recv().await {
                Ok(event)
                    if event.session_id.as_deref() == Some(&self.session_id)
                        && methods.contains(&event.method.as_str()) =>
                {
                    return Ok(())
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(internal(CdpError::Closed)),
            }
        }
    }

    /// The DOM as it is now, its URL and optionally a full-page screenshot.
    pub async fn capture(&self, screenshot: bool) -> Result<RenderedPage, WebError> {
        let state = self
            .evaluate(
                "({ url: location.href, html: (document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '') + document.documentElement.outerHTML })",
            )
            .await?;
        let final_url = state["url"]
            .as_str()
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| unreachable(&"the page ended on a non-web URL"))?;
        let html = state["html"].as_str().unwrap_or_default().to_owned();
        let screenshot_png = if screenshot {
            Some(self.screenshot().await?)
        } else {
            None
        };
        Ok(RenderedPage {
            final_url,
            html,
            screenshot_png,
        })
    }

    /// A PNG of the whole page, not only the viewport.
    async fn screenshot(&self) -> Result<Vec<u8>, WebError> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil().max(1.0);
        let height = size["height"]
            .as_f64()
            .unwrap_or(800.0)
            .ceil()
            .clamp(1.0, MAX_SCREENSHOT_HEIGHT);
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|error| {
                tracing::warn!(%error, "screenshot not in base64");
                WebError::Internal("the browser failed while reading the page".into())
            })
    }

    /// Disposes of the context now (rather than in the background on drop).
    pub async fn close(mut self) {
        self.closed = true;
        dispose(&self.instance, &self.context_id).await;
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(dialogs) = self.dialogs.take() {
            dialogs.abort();
        }
        if self.closed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let instance = Arc::clone(&self.instance);
            let context_id = std::mem::take(&mut self.context_id);
            runtime.spawn(async move { dispose(&instance, &context_id).await });
        }
    }
}

async fn dispose(instance: &Instance, context_id: &str) {
    let disposed = instance
        .connection
        .call(
            None,
            "Target.disposeBrowserContext",
            json!({ "browserContextId": context_id }),
        )
        .await;
    if let Err(error) = disposed {
        tracing::debug!(%error, "browser context not disposed");
    }
}

fn string_field(value: &Value, name: &str) -> Result<String, WebError> {
    value[name].as_str().map(str::to_owned).ok_or_else(|| {
        internal(CdpError::Command {
            method: name.to_owned(),
            message: "missing in the answer".into(),
        })
    })
}
