//! The page's links, absolute, in page order.

use trafilatura::dom::Document;
use url::Url;

use super::PageLink;

/// Every `<a href>` of the page that resolves to an http(s) URL, with its
/// text whitespace-collapsed; a link repeated with the same text is kept once.
pub(super) fn page_links(document: &Document, page_url: &Url) -> Vec<PageLink> {
    let base = base_url(document, page_url);
    let mut links: Vec<PageLink> = Vec::new();
    for anchor in document.query_selector_all(document.root(), "a[href]") {
        let Some(url) = document
            .get_attribute(anchor, "href")
            .and_then(|href| absolute_http_url(&base, &href))
        else {
            continue;
        };
        let link = PageLink {
            text: collapse_whitespace(&document.text_content(anchor)),
            url,
        };
        if !links.contains(&link) {
            links.push(link);
        }
    }
    links
}

/// `<base href>` where the page sets one, else the page's own URL.
fn base_url(document: &Document, page_url: &Url) -> Url {
    document
        .query_selector(document.root(), "base[href]")
        .and_then(|base| document.get_attribute(base, "href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone())
}

/// `href` resolved against `base`, when it names a web page (not
/// `javascript:`, `mailto:`, a bare fragment of this page …).
pub(super) fn absolute_http_url(base: &Url, href: &str) -> Option<String> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    let url = base.join(href).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

pub(super) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
