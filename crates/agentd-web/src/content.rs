//! An HTML page's main content, as Markdown the model reads.
//!
//! The main content is chosen by the `trafilatura` crate (a port of
//! go-trafilatura), picked by measurement: body-text F1 on the public
//! article-extraction benchmark (`scripts/bench-web-content.sh`, the README's
//! "Main-content quality"). Its cleaned HTML is converted to Markdown with
//! `htmd`; the page is parsed once, for the extractor and for the page's links.

mod links;
mod markdown;
mod metadata;
mod nesting;

use std::collections::BTreeMap;

use trafilatura::dom::Document;
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
    if nesting::too_deep(html) {
        return ExtractedPage {
            markdown: nesting::text_without_tags(html),
            ..ExtractedPage::default()
        };
    }
    let document = Document::parse(html);
    let links = links::page_links(&document, page_url);
    let language = metadata::document_language(&document);
    let Ok(result) = trafilatura::extract_document(document, &extraction_options(page_url)) else {
        // Too little text for a main-content decision (a status page, a
        // login form): the model still gets what the page says.
        return whole_page(html, page_url, links, language);
    };
    ExtractedPage {
        title: non_empty(&result.metadata.title),
        markdown: markdown::from_html(&result.content_html, page_url),
        metadata: metadata::from_result(&result.metadata, language),
        links,
    }
}

/// Recall-leaning focus: measured best on the benchmark (F1 0.961 against
/// 0.957 balanced, 0.934 precision-leaning); links kept so that the model can
/// cite them.
fn extraction_options(page_url: &Url) -> trafilatura::Options {
    let mut options = trafilatura::Options::default();
    options.original_url = Some(page_url.clone());
    options.focus = trafilatura::ExtractionFocus::FavorRecall;
    options.include_links = true;
    options
}

/// The fallback when the extractor finds no main content: the whole page's
/// text, its title from `<title>`.
fn whole_page(
    html: &str,
    page_url: &Url,
    links: Vec<PageLink>,
    language: Option<String>,
) -> ExtractedPage {
    let document = Document::parse(html);
    let mut metadata = BTreeMap::new();
    if let Some(language) = language {
        metadata.insert("language".to_owned(), language);
    }
    ExtractedPage {
        title: metadata::document_title(&document),
        markdown: markdown::from_html(&metadata::body_html(&document), page_url),
        metadata,
        links,
    }
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
