//! Main-content quality on real article pages saved from the public
//! article-extraction benchmark (see `tests/pages/README.md`): body-text F1
//! over word 4-shingles, scored as the benchmark scores it, on the text of
//! the Markdown the model reads (link targets dropped: a URL is not body text).

mod support;

use support::article_benchmark::{
    benchmark_f1, load_pages, markdown_visible_text, median_page_f1, saved_pages_dir,
    shingle_counts,
};
use url::Url;

/// Measured on the saved pages: mean 0.959, median 0.992 (see the README's
/// "Main-content quality"),
/// less a small margin so that a harmless change in a dependency does not
/// fail the suite while a real regression does.
const MIN_MEAN_F1: f64 = 0.95;
const MIN_MEDIAN_F1: f64 = 0.98;
const MIN_PAGES: usize = 60;

#[test]
fn main_content_f1_on_saved_article_pages_stays_above_the_floor() {
    let pages = load_pages(&saved_pages_dir());
    assert!(pages.len() >= MIN_PAGES, "only {} saved pages", pages.len());
    let counts: Vec<_> = pages
        .iter()
        .map(|page| {
            let url = Url::parse(&page.url).expect("ground truth has page URLs");
            let extracted = agentd_web::content::extract(&page.html, &url);
            shingle_counts(
                &page.expected_body,
                &markdown_visible_text(&extracted.markdown),
            )
        })
        .collect();
    let mean = benchmark_f1(&counts);
    let median = median_page_f1(&counts);
    println!("{} pages: F1 {mean:.3}, median {median:.3}", pages.len());
    assert!(mean >= MIN_MEAN_F1, "mean F1 {mean:.3} < {MIN_MEAN_F1}");
    assert!(
        median >= MIN_MEDIAN_F1,
        "median F1 {median:.3} < {MIN_MEDIAN_F1}"
    );
}
