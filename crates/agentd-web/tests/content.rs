//! Main-content extraction on hand-made pages: what the model reads is the
//! article, as Markdown, with its structure, absolute links and metadata.

use agentd_web::content::{extract, ExtractedPage};
use url::Url;

const ARTICLE_PARAGRAPHS: [&str; 4] = [
    "The river town of Marlow woke early on Tuesday as the annual regatta brought rowing crews from across the country to its banks, filling every guest house and café along the high street.",
    "Organisers said more than four hundred boats had entered this year, the largest field since the event began, and that the course had been lengthened to cope with the extra heats planned for the weekend.",
    "Local shopkeepers welcomed the crowds but warned that parking remained a problem; the council has promised a shuttle bus from the station for the rest of the week and extra marshals at the bridge.",
    "The final races are scheduled for Saturday afternoon, weather permitting, with the mayor presenting the trophies on the lawn beside the boathouse before the traditional fireworks over the water.",
];

fn page_url() -> Url {
    Url::parse("https://news.example.org/sport/2024/regatta.html").unwrap()
}

/// A news page: the article wrapped in navigation, a cookie banner, a
/// sidebar of related links and a footer.
fn news_page(article_extra: &str) -> String {
    let paragraphs: String = ARTICLE_PARAGRAPHS
        .iter()
        .map(|p| format!("<p>{p}</p>\n"))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>Record field for Marlow regatta | Example News</title>
  <meta name="description" content="Four hundred boats enter the Marlow regatta.">
  <meta name="author" content="Jane Rower">
  <meta property="og:site_name" content="Example News">
  <meta property="article:published_time" content="2024-06-18T07:30:00Z">
</head>
<body>
  <div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. Accept all cookies or manage preferences.</div>
  <header><nav class="main-nav"><ul>
    <li><a href="/">Home page</a></li><li><a href="/politics/">Politics section</a></li>
    <li><a href="/sport/">Sport section</a></li><li><a href="/weather/">Weather section</a></li>
  </ul></nav></header>
  <main>
    <article>
      <h1>Record field for Marlow regatta</h1>
      {paragraphs}
      {article_extra}
    </article>
    <aside class="sidebar"><h3>Most read today</h3><ul>
      <li><a href="/a">Celebrity chef opens floating restaurant</a></li>
      <li><a href="/b">Ten gardening tips for a dry summer</a></li>
    </ul></aside>
  </main>
  <footer class="site-footer"><p>Copyright 2024 Example News Group. All rights reserved.</p>
    <a href="/privacy">Privacy policy</a> <a href="/terms">Terms of use</a></footer>
</body>
</html>"#
    )
}

fn extract_news(article_extra: &str) -> ExtractedPage {
    extract(&news_page(article_extra), &page_url())
}

#[test]
fn article_text_is_kept_and_boilerplate_left_out() {
    let page = extract_news("");
    for paragraph in ARTICLE_PARAGRAPHS {
        assert!(
            page.markdown.contains(paragraph),
            "missing {paragraph:?} in:\n{}",
            page.markdown
        );
    }
    for boilerplate in [
        "We use cookies",
        "Politics section",
        "Most read today",
        "Celebrity chef",
        "All rights reserved",
        "Privacy policy",
    ] {
        assert!(
            !page.markdown.contains(boilerplate),
            "boilerplate {boilerplate:?} in:\n{}",
            page.markdown
        );
    }
}

#[test]
fn headings_lists_tables_and_code_survive_as_markdown() {
    let page = extract_news(
        r#"<h2>Entries by class</h2>
<p>The organisers published the entries by class, which the table below summarises for readers who follow the heats.</p>
<table><thead><tr><th>Class</th><th>Boats</th></tr></thead>
<tbody><tr><td>Eights</td><td>120</td></tr><tr><td>Fours</td><td>180</td></tr></tbody></table>
<h2>What to bring</h2>
<p>Spectators are advised to bring the following items with them to the riverbank this week:</p>
<ul><li>a waterproof jacket</li><li>a folding chair</li><li>cash for the stalls</li></ul>
<p>Results are published as data; this command downloads them for your own analysis:</p>
<pre><code>curl https://news.example.org/regatta/results.json</code></pre>"#,
    );
    let md = &page.markdown;
    assert!(md.contains("## Entries by class"), "heading lost:\n{md}");
    assert!(md.contains("## What to bring"), "heading lost:\n{md}");
    assert!(
        md.lines()
            .any(|l| l.trim_start().starts_with("- ") || l.trim_start().starts_with("* ")),
        "no list item:\n{md}"
    );
    assert!(md.contains("a folding chair"), "list item lost:\n{md}");
    assert!(
        md.contains("| Eights") || md.contains("|Eights"),
        "table lost:\n{md}"
    );
    assert!(
        md.contains("```\ncurl https://news.example.org/regatta/results.json")
            || md.contains("    curl https://"),
        "code block lost:\n{md}"
    );
}

#[test]
fn links_are_absolute_in_markdown_and_in_the_page_links() {
    let page = extract_news(
        r#"<p>The full timetable is on the <a href="../timetable.html">regatta timetable page</a>, and entries close at noon on <a href="//rowing.example.com/entries">the federation's site</a>.</p>"#,
    );
    let md = &page.markdown;
    assert!(
        md.contains("](https://news.example.org/sport/timetable.html)"),
        "relative link not resolved:\n{md}"
    );
    assert!(
        md.contains("](https://rowing.example.com/entries)"),
        "scheme-relative link:\n{md}"
    );
    assert!(!md.contains("](../"), "relative link left:\n{md}");

    let urls: Vec<&str> = page.links.iter().map(|l| l.url.as_str()).collect();
    for expected in [
        "https://news.example.org/",
        "https://news.example.org/politics/",
        "https://news.example.org/sport/timetable.html",
        "https://news.example.org/privacy",
    ] {
        assert!(urls.contains(&expected), "{expected} not in {urls:?}");
    }
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
    let home = urls
        .iter()
        .position(|u| *u == "https://news.example.org/")
        .unwrap();
    let privacy = urls
        .iter()
        .position(|u| *u == "https://news.example.org/privacy")
        .unwrap();
    assert!(home < privacy, "links not in page order: {urls:?}");
    let nav = page
        .links
        .iter()
        .find(|l| l.url.ends_with("/politics/"))
        .unwrap();
    assert_eq!(nav.text, "Politics section");
}

#[test]
fn title_and_metadata_are_kept() {
    let page = extract_news("");
    assert_eq!(
        page.title.as_deref(),
        Some("Record field for Marlow regatta")
    );
    let meta = &page.metadata;
    assert_eq!(
        meta.get("description").map(String::as_str),
        Some("Four hundred boats enter the Marlow regatta.")
    );
    assert_eq!(meta.get("author").map(String::as_str), Some("Jane Rower"));
    assert_eq!(
        meta.get("site_name").map(String::as_str),
        Some("Example News")
    );
    assert_eq!(meta.get("language").map(String::as_str), Some("en-GB"));
    assert!(
        meta.get("published")
            .is_some_and(|d| d.starts_with("2024-06-18")),
        "published: {meta:?}"
    );
}

#[test]
fn the_markdown_is_deterministic() {
    let html = news_page(
        "<p>Extra <em>emphasis</em> and <strong>strong</strong> words close the article.</p>",
    );
    let first = extract(&html, &page_url());
    for _ in 0..3 {
        assert_eq!(extract(&html, &page_url()), first);
    }
    assert!(!first.markdown.contains("\n\n\n"), "{:?}", first.markdown);
    assert_eq!(
        first.markdown.trim(),
        first.markdown.trim_end_matches('\n').trim_start()
    );
}

#[test]
fn empty_and_garbage_html_do_not_panic() {
    let deep = "<div>".repeat(3_000) + "deep text" + &"</div>".repeat(3_000);
    let inputs = [
        String::new(),
        "   ".to_owned(),
        "<<<>>><//><!-- <![CDATA[ ".to_owned(),
        "\u{0}\u{1}\u{fffd}binary\u{7f}".to_owned(),
        "<html><head><title></title></head><body></body></html>".to_owned(),
        "<a href='http://[::1'>broken url</a><a href=''>empty</a><a>no href</a>".to_owned(),
        "<table><tr><td><table><tr><td>nested".to_owned(),
        deep,
    ];
    for html in &inputs {
        let page = extract(html, &page_url());
        assert!(page.links.iter().all(|l| Url::parse(&l.url).is_ok()));
    }
}

#[test]
fn a_pathologically_nested_page_still_gives_its_text() {
    // Parsing 50 000 nested elements would take minutes: the text is read
    // off the markup instead.
    let html = "<div>".repeat(50_000) + "<p>buried words</p><script>hidden()</script>";
    let page = extract(&html, &page_url());
    assert_eq!(page.markdown, "buried words");
}

#[test]
fn a_short_page_still_gives_its_text() {
    // Too short for a main-content decision: the model still gets the text.
    let page = extract(
        "<html><head><title>Status</title></head><body><p>All systems operational.</p></body></html>",
        &page_url(),
    );
    assert!(
        page.markdown.contains("All systems operational."),
        "{:?}",
        page.markdown
    );
    assert_eq!(page.title.as_deref(), Some("Status"));
}
