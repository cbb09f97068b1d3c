//! What the engines use: load a page (fetched or rendered), robots.txt
//! checked first, its main content extracted.

use std::path::PathBuf;
use std::time::Duration;

use agentd_net::AddressPolicy;
use url::Url;

use crate::browser::{Browser, BrowserSettings, PageSession, RenderOptions};
use crate::content::{self, ExtractedPage};
use crate::fetch::{FetchSettings, Fetcher};
use crate::robots::{robots_url, Robots};
use crate::WebError;

/// The user agent when the operator sets none; its first token is what
/// robots.txt groups are matched against.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "agentd/",
    env!("CARGO_PKG_VERSION"),
    " (web extraction; respects robots.txt)"
);

/// A static page whose main content has fewer words than this, and which
/// has scripts, is rendered in the browser (its content is built by them).
const THIN_CONTENT_WORDS: usize = 40;

/// Operator settings of the web engines.
#[derive(Clone, Debug)]
pub struct WebSettings {
    pub policy: AddressPolicy,
    /// `AGENTD_CHROMIUM_PATH`.
    pub chromium_path: Option<PathBuf>,
    pub max_pages: usize,
    pub page_timeout: Duration,
    pub max_page_bytes: u64,
    pub user_agent: String,
}

/// How one page is to be loaded.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub url: Url,
    /// Render in the browser whatever the static page looks like
    /// (`vision_mode`, `save_screenshot`, `min_wait_time_sec`).
    pub force_render: bool,
    pub render: RenderOptions,
    /// `false` when the agent's config says to ignore robots.txt.
    pub obey_robots: bool,
}

/// A page as it was read.
#[derive(Clone, Debug)]
pub struct LoadedPage {
    pub final_url: Url,
    pub html: String,
    pub screenshot_png: Option<Vec<u8>>,
    /// Rendered in the browser (else fetched statically).
    pub rendered: bool,
    pub content: ExtractedPage,
}

/// The static fetcher and the browser of this process.
pub struct Web {
    fetcher: Fetcher,
    browser: Browser,
}

impl Web {
    pub fn new(fetcher: Fetcher, browser: Browser) -> Self {
        Self { fetcher, browser }
    }

    pub fn from_settings(settings: WebSettings) -> Result<Self, WebError> {
        let fetcher = Fetcher::with_policy(
            settings.policy.clone(),
            FetchSettings {
                page_timeout: settings.page_timeout,
                max_page_bytes: settings.max_page_bytes,
                user_agent: settings.user_agent.clone(),
            },
        )?;
        let browser = Browser::new(BrowserSettings {
            executable: settings.chromium_path,
            max_pages: settings.max_pages.max(1),
            page_timeout: settings.page_timeout,
            max_page_bytes: settings.max_page_bytes,
            user_agent: settings.user_agent,
            policy: settings.policy,
        });
        Ok(Self::new(fetcher, browser))
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    /// Loads a page: robots.txt first (unless ignored), then a static fetch,
    /// or the browser when the request needs it or the static page's
    /// content is built by scripts.
    pub async fn load(&self, request: &PageRequest) -> Result<LoadedPage, WebError> {
        self.check_url(&request.url)?;
        if request.obey_robots {
            self.check_robots(&request.url).await?;
        }
        if request.force_render {
            return self.render(&request.url, &request.render).await;
        }
        let page = self.fetcher.fetch_page(&request.url).await?;
        if !is_page_type(&page.media_type) {
            return Err(WebError::Unreachable(format!(
                "{} is {}, not a web page",
                page.final_url, page.media_type
            )));
        }
        let content = content::extract(&page.text, &page.final_url);
        let loaded = LoadedPage {
            final_url: page.final_url,
            html: page.text,
            screenshot_png: None,
            rendered: false,
            content,
        };
        if !built_by_scripts(&loaded) {
            return Ok(loaded);
        }
        match self.render(&loaded.final_url, &request.render).await {
            Ok(rendered) => Ok(rendered),
            Err(error) => {
                // The static page is still an answer; say why it was kept.
                tracing::info!(%error, url = %loaded.final_url, "rendering a thin page failed; keeping its static HTML");
                Ok(loaded)
            }
        }
    }

    /// Opens a page for step-by-step actions (Interactive Web), robots.txt
    /// checked first unless ignored.
    pub async fn open(&self, url: &Url, obey_robots: bool) -> Result<PageSession, WebError> {
        self.check_url(url)?;
        if obey_robots {
            self.check_robots(url).await?;
        }
        self.browser.open(url).await
    }

    async fn render(&self, url: &Url, options: &RenderOptions) -> Result<LoadedPage, WebError> {
        let page = self.browser.render(url, options).await?;
        Ok(LoadedPage {
            content: content::extract(&page.html, &page.final_url),
            final_url: page.final_url,
            html: page.html,
            screenshot_png: page.screenshot_png,
            rendered: true,
        })
    }

    /// Refuses, before anything is sent, a URL the guard refuses (the
    /// browser's requests are checked again one by one).
    fn check_url(&self, url: &Url) -> Result<(), WebError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebError::Unreachable(format!(
                "'{url}' is not an http:// or https:// URL"
            )));
        }
        self.fetcher.policy().check_parsed(url).map_err(|refusal| {
            agentd_net::Unreachable::because(&refusal);
            WebError::Unreachable(format!("the page {url} is not reachable from this server"))
        })
    }

    /// Refuses a URL its site's robots.txt disallows for our user agent. A
    /// missing robots.txt (4xx) allows everything; a failing one (5xx)
    /// disallows everything, as RFC 9309 says.
    pub async fn check_robots(&self, url: &Url) -> Result<(), WebError> {
        let robots = robots_url(url);
        let answer = match self.fetcher.fetch(&robots).await {
            Ok(answer) => answer,
            // Too big to read: no rules we can follow, as if missing.
            Err(WebError::TooLarge(_)) => return Ok(()),
            Err(WebError::Unreachable(_)) => {
                return Err(WebError::Unreachable(format!(
                    "the page {url} is not reachable from this server"
                )))
            }
            Err(other) => return Err(other),
        };
        let status = answer.status;
        if status.is_server_error() {
            return Err(WebError::Refused(format!(
                "the site's robots.txt could not be read (HTTP {}), so {url} is not fetched; \
                 set crawl_config.ignore_robots_txt to fetch it anyway",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Ok(());
        }
        let product = self.user_agent_product();
        if Robots::parse(&answer.text, &product).allows(url) {
            Ok(())
        } else {
            Err(WebError::Refused(format!(
                "the site's robots.txt disallows {url}; set crawl_config.ignore_robots_txt \
                 to fetch it anyway"
            )))
        }
    }

    /// `agentd` of `agentd/0.1 (…)`.
    fn user_agent_product(&self) -> String {
        let agent = &self.fetcher.settings().user_agent;
        agent.split(['/', ' ']).next().unwrap_or(agent).to_owned()
    }
}

/// Media types read as pages (text of any kind, XHTML, XML); a PDF or an
/// image is not one (file inputs read those).
fn is_page_type(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type.starts_with("text/")
        || matches!(media_type, "application/xhtml+xml" | "application/xml")
}

/// Little text but scripts: the content is probably built in the browser.
fn built_by_scripts(page: &LoadedPage) -> bool {
    let lower = page.html.to_ascii_lowercase();
    lower.contains("<script") && visible_words(&lower) < THIN_CONTENT_WORDS
}

/// Words of `html` outside tags, scripts, styles and templates: what a
/// reader of the static page sees.
fn visible_words(html: &str) -> usize {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        text.push(' ');
        rest = &rest[open..];
        let hidden = ["script", "style", "template", "noscript"]
            .into_iter()
            .find(|tag| rest[1..].starts_with(tag));
        let end = match hidden {
            Some(tag) => rest
                .find(&format!("</{tag}"))
                .and_then(|close| rest[close..].find('>').map(|gt| close + gt + 1)),
            None => rest.find('>').map(|gt| gt + 1),
        };
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    text.push_str(rest);
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::{is_page_type, visible_words};

    #[test]
    fn only_text_media_types_are_pages() {
        for page in ["text/html", "text/plain", "application/xhtml+xml", ""] {
            assert!(is_page_type(page), "{page}");
        }
        for other in ["application/pdf", "image/png", "application/octet-stream"] {
            assert!(!is_page_type(other), "{other}");
        }
    }

    #[test]
    fn scripts_and_styles_are_not_visible_words() {
        let html = "<html><head><style>p { color: red }</style></head><body>\
                    <p>two words</p><script>var many = 'words in a script';</script>\
                    <div>three more words</div></body></html>";
        assert_eq!(visible_words(html), 5);
    }

    #[test]
    fn an_unclosed_tag_ends_the_text() {
        assert_eq!(visible_words("one two <p"), 2);
        assert_eq!(visible_words("one <script>never closed"), 1);
    }
}
