//! The main content's HTML as Markdown, deterministic: the same page always
//! gives the same bytes (what the model reads is what is saved).

use trafilatura::dom::Document;
use url::Url;

use super::links::absolute_http_url;

/// Converts `html` with `htmd`; relative link and image targets the extractor
/// left are resolved against `page_url`; blank runs are collapsed.
pub(super) fn from_html(html: &str, page_url: &Url) -> String {
    let markdown = htmd::convert(&restore_code_blocks(html)).unwrap_or_default();
    tidy(&resolve_targets(&markdown, page_url))
}

/// Elements that hold inline `<code>` (which stays inline code).
const INLINE_CODE_PARENTS: &[&str] = &[
    "p",
    "li",
    "a",
    "span",
    "em",
    "strong",
    "b",
    "i",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "code",
    "dd",
    "dt",
    "q",
    "blockquote",
];

/// The extractor writes a `<pre><code>` block as `<code><code>` (trafilatura's
/// output format has no `pre`): a `<code>` standing as a block (not inside a
/// paragraph or other text) becomes `<pre>` again, so that the block keeps
/// its lines as a fenced code block.
fn restore_code_blocks(html: &str) -> String {
    if !html.contains("<code") {
        return html.to_owned();
    }
    let mut document = Document::parse(html);
    let root = document.root();
    for code in document.query_selector_all(root, "code") {
        let parent_is_inline = document
            .parent(code)
            .is_some_and(|parent| INLINE_CODE_PARENTS.contains(&document.tag_name(parent)));
        if !parent_is_inline {
            document.set_tag_name(code, "pre");
        }
    }
    match document.body() {
        Some(body) => document.inner_html(body),
        None => html.to_owned(),
    }
}

/// Rewrites `](target)` of links and images to absolute URLs.
fn resolve_targets(markdown: &str, page_url: &Url) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(open) = rest.find("](") {
        let (before, after) = rest.split_at(open + 2);
        out.push_str(before);
        let Some(close) = after.find(')') else {
            rest = after;
            break;
        };
        let target = &after[..close];
        let (link, title) = match target.find(" \"") {
            Some(space) => target.split_at(space),
            None => (target, ""),
        };
        match absolute_http_url(page_url, link) {
            Some(absolute) if !link.contains("://") => {
                out.push_str(&absolute);
                out.push_str(title);
            }
            _ => out.push_str(target),
        }
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

/// Trailing spaces trimmed, at most one blank line in a row, no blank lines
/// at either end, one final newline when there is any text.
fn tidy(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut blank_run = 0;
    for line in markdown.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets_become_absolute_and_absolute_ones_stay() {
        let base = Url::parse("https://example.org/a/b.html").unwrap();
        let md = "[x](../c) ![i](/img.png \"Title\") [y](https://other.example/z) [m](mailto:a@b)";
        assert_eq!(
            resolve_targets(md, &base),
            "[x](https://example.org/c) ![i](https://example.org/img.png \"Title\") \
             [y](https://other.example/z) [m](mailto:a@b)"
        );
    }

    #[test]
    fn code_blocks_keep_their_lines_and_inline_code_stays_inline() {
        let html = "<p>Run <code>ls</code>:</p><code><code>a = 1\nb = 2</code></code>";
        let md = from_html(html, &Url::parse("https://example.org/").unwrap());
        assert!(md.contains("Run `ls`:"), "{md}");
        assert!(md.contains("```\na = 1\nb = 2\n```"), "{md}");
    }

    #[test]
    fn blank_runs_collapse() {
        assert_eq!(tidy("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
        assert_eq!(tidy("  \n \n"), "");
    }
}
