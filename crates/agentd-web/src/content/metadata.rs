//! Title and metadata: what the extractor found (JSON-LD, Open Graph, Dublin
//! Core, `<meta>`), and the document's declared language.

use std::collections::BTreeMap;

use trafilatura::dom::Document;

use super::links::collapse_whitespace;

/// The metadata map of [`super::ExtractedPage`]; empty values are left out.
pub(super) fn from_result(
    found: &trafilatura::Metadata,
    declared_language: Option<String>,
) -> BTreeMap<String, String> {
    let language = declared_language.unwrap_or_else(|| found.language.clone());
    let published = found.date.map(|d| d.format("%Y-%m-%d").to_string());
    [
        ("description", found.description.clone()),
        ("author", found.author.clone()),
        ("published", published.unwrap_or_default()),
        ("site_name", found.sitename.clone()),
        ("language", language),
        ("canonical_url", found.url.clone()),
        ("image", found.image.clone()),
        ("license", found.license.clone()),
        ("categories", found.categories.join(", ")),
        ("tags", found.tags.join(", ")),
    ]
    .into_iter()
    .filter_map(|(key, value)| {
        let value = collapse_whitespace(&value);
        (!value.is_empty()).then(|| (key.to_owned(), value))
    })
    .collect()
}

/// `<html lang>`: what the page declares, kept as written (`en-GB`).
pub(super) fn document_language(document: &Document) -> Option<String> {
    let html = document.query_selector(document.root(), "html")?;
    let lang = collapse_whitespace(&document.get_attribute(html, "lang")?);
    (!lang.is_empty()).then_some(lang)
}

/// `<title>`'s text.
pub(super) fn document_title(document: &Document) -> Option<String> {
    let title = document.query_selector(document.root(), "title")?;
    let text = collapse_whitespace(&document.text_content(title));
    (!text.is_empty()).then_some(text)
}

/// The `<body>`'s HTML without scripts and styles (the whole-page fallback).
pub(super) fn body_html(document: &Document) -> String {
    let Some(body) = document.body() else {
        return String::new();
    };
    let mut body_only = document.extract_subtree_as_document(body);
    let root = body_only.root();
    body_only.strip_elements(root, false, &["script", "style", "noscript", "template"]);
    body_only.outer_html(root)
}
