//! The article-extraction benchmark's pages and its score: body-text F1 over
//! word 4-shingles, computed exactly as scrapinghub/article-extraction-benchmark's
//! `evaluate.py` does (shared by the quality test and the benchmark binary).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One saved page: its HTML, the URL it was fetched from and the expected
/// article body.
pub struct BenchmarkPage {
    pub id: String,
    pub url: String,
    pub html: String,
    pub expected_body: String,
}

/// The pages saved in the test suite (`crates/agentd-web/tests/pages/`).
pub fn saved_pages_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agentd-web/tests/pages")
}

/// Loads every page listed in `DIR/ground-truth.json` (`DIR/html/ID.html.gz`).
pub fn load_pages(dir: &Path) -> Vec<BenchmarkPage> {
    let truth_path = dir.join("ground-truth.json");
    let truth_text = std::fs::read_to_string(&truth_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", truth_path.display()));
    let truth: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&truth_text).expect("ground-truth.json is a JSON object");
    let mut pages: Vec<BenchmarkPage> = truth
        .into_iter()
        .map(|(id, entry)| {
            let html_path = dir.join("html").join(format!("{id}.html.gz"));
            let mut html = String::new();
            flate2::read::GzDecoder::new(
                std::fs::File::open(&html_path)
                    .unwrap_or_else(|e| panic!("opening {}: {e}", html_path.display())),
            )
            .read_to_string(&mut html)
            .unwrap_or_else(|e| panic!("decompressing {}: {e}", html_path.display()));
            let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            BenchmarkPage {
                url: field("url"),
                expected_body: field("articleBody"),
                html,
                id,
            }
        })
        .collect();
    pages.sort_by(|a, b| a.id.cmp(&b.id));
    pages
}

/// True positives, false positives and false negatives of one page,
/// normalised to sum to 1 so that long texts weigh no more than short ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShingleCounts {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

const SHINGLE_WORDS: usize = 4;

/// `evaluate.py`'s `_tokenize` (`\w+`): runs of letters, digits and `_`.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

fn shingles(text: &str) -> HashMap<Vec<&str>, usize> {
    let tokens = words(text);
    let mut counts = HashMap::new();
    if tokens.is_empty() {
        return counts;
    }
    let windows = tokens.len().saturating_sub(SHINGLE_WORDS) + 1;
    for start in 0..windows {
        let end = (start + SHINGLE_WORDS).min(tokens.len());
        *counts.entry(tokens[start..end].to_vec()).or_insert(0) += 1;
    }
    counts
}

/// `evaluate.py`'s `string_shingle_matching`.
pub fn shingle_counts(expected: &str, predicted: &str) -> ShingleCounts {
    let expected = shingles(expected);
    let predicted = shingles(predicted);
    let mut counts = ShingleCounts::default();
    for key in expected
        .keys()
        .chain(predicted.keys().filter(|k| !expected.contains_key(*k)))
    {
        let want = *expected.get(key).unwrap_or(&0) as f64;
        let got = *predicted.get(key).unwrap_or(&0) as f64;
        counts.tp += want.min(got);
        counts.fp += (got - want).max(0.0);
        counts.fn_ += (want - got).max(0.0);
    }
    let sum = counts.tp + counts.fp + counts.fn_;
    if sum > 0.0 {
        counts.tp /= sum;
        counts.fp /= sum;
        counts.fn_ /= sum;
    }
    counts
}

/// Per-page F1 (for the median and for finding the worst pages).
pub fn page_f1(counts: ShingleCounts) -> f64 {
    let precision = precision(counts).unwrap_or(0.0);
    let recall = recall(counts).unwrap_or(0.0);
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

fn precision(c: ShingleCounts) -> Option<f64> {
    if c.tp + c.fp == 0.0 {
        return None;
    }
    Some(if c.fp == 0.0 && c.fn_ == 0.0 {
        1.0
    } else {
        c.tp / (c.tp + c.fp)
    })
}

fn recall(c: ShingleCounts) -> Option<f64> {
    if c.tp + c.fn_ == 0.0 {
        return None;
    }
    Some(if c.fp == 0.0 && c.fn_ == 0.0 {
        1.0
    } else {
        c.tp / (c.tp + c.fn_)
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The benchmark's headline figure: F1 of the mean precision and the mean
/// recall over pages (`evaluate.py`'s `metrics_from_tp_fp_fns`).
pub fn benchmark_f1(pages: &[ShingleCounts]) -> f64 {
    let p = mean(pages.iter().filter_map(|c| precision(*c)));
    let r = mean(pages.iter().filter_map(|c| recall(*c)));
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Median of the per-page F1 scores.
pub fn median_page_f1(pages: &[ShingleCounts]) -> f64 {
    let mut scores: Vec<f64> = pages.iter().map(|c| page_f1(*c)).collect();
    if scores.is_empty() {
        return 0.0;
    }
    scores.sort_by(|a, b| a.total_cmp(b));
    let mid = scores.len() / 2;
    if scores.len() % 2 == 1 {
        scores[mid]
    } else {
        (scores[mid - 1] + scores[mid]) / 2.0
    }
}

/// The text a reader sees in Markdown: link and image targets `](…)` are
/// dropped (a URL's words are not body text), the rest is kept as it is.
pub fn markdown_visible_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(open) = rest.find("](") {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 2..];
        match after.find(')') {
            Some(close) => rest = &after[close + 1..],
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
