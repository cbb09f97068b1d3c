//! Scores main-content extractors on the saved article pages: body-text F1
//! (mean, median) and pages per second, single-threaded.
//!
//! `cargo run --release -p agentd-web-bench -- [PAGES_DIR]` (default: the
//! pages saved in `crates/agentd-web/tests/pages/`; a checkout of
//! scrapinghub/article-extraction-benchmark has the same layout).
//!
//! `readex` 0.19.2 was measured too (F1 0.938 on the 181 pages, the slowest)
//! but is not built here: its exact version pins would downgrade `regex` and
//! `serde_json` for the whole workspace.

#![forbid(unsafe_code)]

#[path = "../../agentd-web/tests/support/article_benchmark.rs"]
mod article_benchmark;

use std::path::PathBuf;
use std::time::Instant;

use article_benchmark::{
    benchmark_f1, load_pages, markdown_visible_text, median_page_f1, shingle_counts, BenchmarkPage,
};
use url::Url;

type Extractor = fn(&str, &Url) -> String;

/// What the model reads, scored on its visible text (link targets dropped).
fn agentd_markdown_text(html: &str, url: &Url) -> String {
    markdown_visible_text(&agentd_web::content::extract(html, url).markdown)
}

/// What the model reads, scored as it is (link URLs count as extra words).
fn agentd_markdown_raw(html: &str, url: &Url) -> String {
    agentd_web::content::extract(html, url).markdown
}

/// The chosen crate's plain text with agentd's options, comparable with the
/// benchmark's published text figures.
fn agentd_choice_text(html: &str, url: &Url) -> String {
    let mut options = trafilatura::Options::default();
    options.original_url = Some(url.clone());
    options.focus = trafilatura::ExtractionFocus::FavorRecall;
    trafilatura::extract(html, &options)
        .map(|r| r.content_text)
        .unwrap_or_default()
}

fn htmd_whole_page(html: &str, _: &Url) -> String {
    htmd::convert(html).unwrap_or_default()
}

fn dom_smoothie_text(html: &str, url: &Url) -> String {
    dom_smoothie::Readability::new(html, Some(url.as_str()), None)
        .and_then(|mut r| r.parse())
        .map(|article| article.text_content.to_string())
        .unwrap_or_default()
}

fn trafilatura_text(html: &str, url: &Url) -> String {
    let mut options = trafilatura::Options::default();
    options.original_url = Some(url.clone());
    trafilatura::extract(html, &options)
        .map(|r| r.content_text)
        .unwrap_or_default()
}

fn rs_trafilatura_text(html: &str, url: &Url) -> String {
    let options = rs_trafilatura::Options {
        url: Some(url.to_string()),
        ..rs_trafilatura::Options::default()
    };
    rs_trafilatura::extract_with_options(html, &options)
        .map(|r| r.content_text)
        .unwrap_or_default()
}

const EXTRACTORS: &[(&str, Extractor)] = &[
    ("agentd Markdown, visible text", agentd_markdown_text),
    ("agentd Markdown, raw", agentd_markdown_raw),
    ("trafilatura 0.6.0 recall-focus (text)", agentd_choice_text),
    ("rs-trafilatura 0.2.2 (text)", rs_trafilatura_text),
    ("trafilatura 0.6.0 balanced (text)", trafilatura_text),
    ("dom_smoothie 0.19.0 (text)", dom_smoothie_text),
    ("htmd 0.5 (whole page)", htmd_whole_page),
];

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(article_benchmark::saved_pages_dir);
    let only = std::env::var("BENCH_ONLY").ok();
    let pages = load_pages(&dir);
    let urls: Vec<Url> = pages
        .iter()
        .map(|p| Url::parse(&p.url).unwrap_or_else(|_| Url::parse("https://example.com/").unwrap()))
        .collect();
    println!("{} pages from {}", pages.len(), dir.display());
    println!(
        "{:<40} {:>8} {:>10} {:>9}",
        "extractor", "F1", "median F1", "pages/s"
    );
    for (name, extractor) in EXTRACTORS {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        score(name, *extractor, &pages, &urls);
    }
}

fn score(name: &str, extractor: Extractor, pages: &[BenchmarkPage], urls: &[Url]) {
    let started = Instant::now();
    let outputs: Vec<String> = pages
        .iter()
        .zip(urls)
        .map(|(page, url)| extractor(&page.html, url))
        .collect();
    let pages_per_s = pages.len() as f64 / started.elapsed().as_secs_f64();
    let counts: Vec<_> = pages
        .iter()
        .zip(&outputs)
        .map(|(page, out)| shingle_counts(&page.expected_body, out))
        .collect();
    println!(
        "{name:<40} {:>8.3} {:>10.3} {pages_per_s:>9.1}",
        benchmark_f1(&counts),
        median_page_f1(&counts)
    );
    if std::env::var_os("BENCH_WORST").is_some() {
        let mut worst: Vec<_> = pages.iter().zip(&counts).collect();
        worst.sort_by(|a, b| {
            article_benchmark::page_f1(*a.1).total_cmp(&article_benchmark::page_f1(*b.1))
        });
        for (page, c) in worst.iter().take(12) {
            println!(
                "    {:.3} p={:.2} r={:.2} {} {}",
                article_benchmark::page_f1(**c),
                c.tp / (c.tp + c.fp).max(1e-9),
                c.tp / (c.tp + c.fn_).max(1e-9),
                page.id,
                page.url
            );
        }
    }
}
