//! A guard against pathologically nested pages: building the DOM of a page
//! nested tens of thousands of elements deep costs time quadratic in the
//! depth (20 000 nested `<div>`s take seconds), so such a page is not parsed;
//! its text is read off the markup instead.

/// Deeper than any real page (the benchmark's deepest is far below), and
/// parsed in well under a second.
const MAX_NESTING: usize = 4_000;

/// Elements that never hold content, and elements whose end tag HTML lets a
/// page leave out (the parser closes them): neither deepens the estimate.
const NOT_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody",
    "tfoot", "rt", "rp", "colgroup", "caption", "html", "head", "body",
];

/// Whether the markup opens more than [`MAX_NESTING`] elements without
/// closing them (an estimate from the tags alone, without parsing).
pub(super) fn too_deep(html: &str) -> bool {
    let mut depth: usize = 0;
    for (is_end, name, self_closing) in tags(html) {
        if self_closing || NOT_NESTING.contains(&name.as_str()) {
            continue;
        }
        if is_end {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            if depth > MAX_NESTING {
                return true;
            }
        }
    }
    false
}

/// The tags of `html` in order: (is an end tag, lower-case name, ends `/>`).
fn tags(html: &str) -> impl Iterator<Item = (bool, String, bool)> + '_ {
    html.split('<').skip(1).filter_map(|chunk| {
        let (is_end, rest) = match chunk.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, chunk),
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if name.is_empty() || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let self_closing = rest.split('>').next().is_some_and(|tag| tag.ends_with('/'));
        Some((is_end, name, self_closing))
    })
}

/// The page's text with the tags taken out (script and style bodies too),
/// whitespace collapsed: what a too-deep page still says.
pub(super) fn text_without_tags(html: &str) -> String {
    let mut text = String::new();
    let mut skipping_until: Option<&str> = None;
    for chunk in html.split('<') {
        let (tag, after) = chunk.split_once('>').unwrap_or(("", chunk));
        let tag = tag.to_ascii_lowercase();
        match skipping_until {
            Some(end) if tag.starts_with(end) => skipping_until = None,
            Some(_) => continue,
            None if tag.starts_with("script") => skipping_until = Some("/script"),
            None if tag.starts_with("style") => skipping_until = Some("/style"),
            None => {}
        }
        if skipping_until.is_none() {
            text.push_str(after);
            text.push(' ');
        }
    }
    super::links::collapse_whitespace(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_detected_and_unclosed_paragraphs_are_not() {
        let deep = "<div>".repeat(MAX_NESTING + 1) + "x";
        assert!(too_deep(&deep));
        assert!(!too_deep(&"<div>a</div>".repeat(MAX_NESTING * 2)));
        assert!(!too_deep(&"<p>unclosed <br/>".repeat(MAX_NESTING * 2)));
    }

    #[test]
    fn text_without_tags_drops_scripts_and_styles() {
        let html = "<p>One</p><script>var x = '<b>';</script><style>p{}</style><div>two</div>";
        assert_eq!(text_without_tags(html), "One two");
    }
}
