//! An HTML page's main content, as Markdown the model reads.
//!
//! Interface fixed for the engines; the extraction itself is being replaced
//! by a measured main-content extractor (see the README's web section).

use std::collections::BTreeMap;

use url::Url;

/// A link of the page, absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageLink {
    pub text: String,
    pub url: String,
}

/// What is kept of a page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractedPage {
    pub title: Option<String>,
    /// Main content (boilerplate removed) as Markdown.
    pub markdown: String,
    /// `description`, `author`, `published`, `site_name`, `language`, … where found.
    pub metadata: BTreeMap<String, String>,
    /// Links of the whole page (navigation too), absolute, in page order.
    pub links: Vec<PageLink>,
}

/// Extracts the main content of `html`, fetched from `page_url` (which
/// resolves relative links).
pub fn extract(html: &str, page_url: &Url) -> ExtractedPage {
    let _ = page_url;
    ExtractedPage {
        markdown: htmd::convert(html).unwrap_or_default(),
        ..ExtractedPage::default()
    }
}
