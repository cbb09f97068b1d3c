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
    let Some(result) = main_content(html, document, page_url) else {
        // Too little text for a main-content decision (a status page, a
        // login form): the model still gets what the page says.
        return whole_page(html, page_url, links, language);
    };
    let title = non_empty(&result.metadata.title);
    let markdown = markdown::from_html(&result.content_html, page_url);
    ExtractedPage {
        markdown: without_leading_title(markdown, title.as_deref()),
        title,
        metadata: metadata::from_result(&result.metadata, language),
        links,
    }
}

/// Drops a first heading that only repeats the page's title: the title is
/// given beside the content (the engines write it first), and said twice it
/// is noise that is not body text.
fn without_leading_title(markdown: String, title: Option<&str>) -> String {
    let Some(title) = title else {
        return markdown;
    };
    let (first_line, rest) = markdown.split_once('\n').unwrap_or((markdown.as_str(), ""));
    let heading = first_line.trim_start_matches('#');
    let is_heading = heading.len() < first_line.len() && heading.starts_with(' ');
    if is_heading && !rest.trim().is_empty() && same_words(&heading.replace('\\', ""), title) {
        rest.trim_start_matches('\n').to_owned()
    } else {
        markdown
    }
}

fn same_words(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The main content with its links kept (so that the model can cite them),
/// unless keeping them made the extractor drop text: on link-dense pages it
/// judges paragraphs by their links and loses some (measured on the
/// benchmark: F1 0.957 with links always kept, 0.960 with this rule).
fn main_content(
    html: &str,
    document: Document,
    page_url: &Url,
) -> Option<trafilatura::ExtractResult> {
    // The extractor consumes its document: the plain pass parses again.
    let plain = trafilatura::extract(html, &extraction_options(page_url, false)).ok();
    let linked = trafilatura::extract_document(document, &extraction_options(page_url, true)).ok();
    match (linked, plain) {
        (Some(linked), Some(plain)) if keeps_the_text(&linked, &plain) => Some(linked),
        (linked, plain) => plain.or(linked),
    }
}

/// Whether the extraction with links holds nearly all the words of the one
/// without.
fn keeps_the_text(linked: &trafilatura::ExtractResult, plain: &trafilatura::ExtractResult) -> bool {
    let words = |text: &str| text.split_whitespace().count();
    words(&linked.content_text) * 10 >= words(&plain.content_text) * 9
}

/// Recall-leaning focus: measured best on the benchmark (F1 0.961 against
/// 0.957 balanced, 0.934 precision-leaning).
fn extraction_options(page_url: &Url, include_links: bool) -> trafilatura::Options {
    let mut options = trafilatura::Options::default();
    options.original_url = Some(page_url.clone());
    options.focus = trafilatura::ExtractionFocus::FavorRecall;
    options.include_links = include_links;
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

#[cfg(test)]
mod tests {
    use super::without_leading_title;

    #[test]
    fn a_first_heading_repeating_the_title_is_dropped() {
        let markdown = "# \\[Review\\] The  Palace\n\nThe show was great.".to_owned();
        assert_eq!(
            without_leading_title(markdown, Some("[Review] The Palace")),
            "The show was great."
        );
    }

    #[test]
    fn other_headings_and_lone_titles_stay() {
        let other = "# Another heading\n\nText.".to_owned();
        assert_eq!(without_leading_title(other.clone(), Some("Title")), other);
        let lone = "# Title".to_owned();
        assert_eq!(without_leading_title(lone.clone(), Some("Title")), lone);
        let not_heading = "Title\n\nText.".to_owned();
        assert_eq!(
            without_leading_title(not_heading.clone(), Some("Title")),
            not_heading
        );
    }
}
