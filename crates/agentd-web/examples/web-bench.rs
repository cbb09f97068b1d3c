//! Web pages per second against a loopback site, and the browser's memory:
//! static (guarded HTTP fetch + main-content extraction) and rendered in
//! headless Chromium (with and without a full-page screenshot), at 1, 2 and
//! 4 concurrent pages. Prints figures, asserts nothing.
//!
//! `cargo run --release -p agentd-web --example web-bench -- [PAGES]`
//! (scripts/bench-web.sh).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_net::{AddressPolicy, ClientSettings, GuardedClient};
use agentd_web::browser::{Browser, BrowserSettings, RenderOptions};
use agentd_web::content;
use axum::response::Html;
use axum::routing::get;
use futures_util::future::join_all;
use url::Url;

const POOL_SIZES: [usize; 3] = [1, 2, 4];

#[tokio::main]
async fn main() {
    let pages: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let site = start_site().await;
    println!(
        "{pages} pages per figure, loopback site, article of {} bytes",
        article().len()
    );

    let client = GuardedClient::new(AddressPolicy::AllowAll, &ClientSettings::default()).unwrap();
    for concurrency in POOL_SIZES {
        let rate = measure(pages, concurrency, |n| {
            let client = client.clone();
            let url = page_url(&site, n);
            async move {
                let html = client
                    .get(url.as_str())
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(!content::extract(&html, &url).markdown.is_empty());
            }
        })
        .await;
        println!("static   (fetch + extract)      concurrency {concurrency}: {rate:7.1} pages/s");
    }

    for max_pages in POOL_SIZES {
        let browser = Arc::new(Browser::new(BrowserSettings {
            executable: std::env::var_os("AGENTD_CHROMIUM_PATH").map(Into::into),
            max_pages,
            page_timeout: Duration::from_secs(60),
            max_page_bytes: 16 * 1024 * 1024,
            user_agent: "agentd-bench".into(),
            policy: AddressPolicy::AllowAll,
        }));
        // Start the browser outside the measurement.
        browser
            .render(&page_url(&site, 0), &RenderOptions::default())
            .await
            .unwrap();
        let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let sampler = tokio::spawn(sample_memory(Arc::clone(&browser), Arc::clone(&peaks)));
        for screenshot in [false, true] {
            let options = RenderOptions {
                screenshot,
                ..RenderOptions::default()
            };
            let rate = measure(pages, max_pages, |n| {
                let browser = Arc::clone(&browser);
                let url = page_url(&site, n);
                let options = options.clone();
                async move {
                    let page = browser.render(&url, &options).await.unwrap();
                    assert_eq!(page.screenshot_png.is_some(), screenshot);
                }
            })
            .await;
            let kind = if screenshot {
                "rendered + screenshot "
            } else {
                "rendered               "
            };
            println!("{kind}        pool {max_pages}:       {rate:7.1} pages/s");
        }
        sampler.abort();
        let mib = |at: usize| peaks[at].load(Ordering::SeqCst) / (1024 * 1024);
        println!(
            "browser memory, pool {max_pages}: peak {} MiB summed RSS of the Chromium processes, {} MiB summed PSS",
            mib(0),
            mib(1)
        );
    }
}

/// Runs `pages` jobs, `concurrency` at a time; pages per second.
async fn measure<F, Fut>(pages: usize, concurrency: usize, job: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let tasks = (0..pages).map(|n| {
        let semaphore = Arc::clone(&semaphore);
        let work = job(n);
        tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await.unwrap();
            work.await;
        })
    });
    for done in join_all(tasks).await {
        done.unwrap();
    }
    pages as f64 / started.elapsed().as_secs_f64()
}

fn page_url(site: &Url, n: usize) -> Url {
    site.join(&format!("article/{n}")).unwrap()
}

/// Peaks of the summed RSS and PSS (shared pages divided among their
/// users) of the browser's process tree, sampled every 100 ms.
async fn sample_memory(browser: Arc<Browser>, peaks: Arc<[AtomicU64; 2]>) {
    loop {
        if let Some(root) = browser.process_id().await {
            let (rss, pss) = tree_memory(root);
            peaks[0].fetch_max(rss, Ordering::SeqCst);
            peaks[1].fetch_max(pss, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Summed (RSS, PSS) in bytes of `root` and its descendants.
fn tree_memory(root: u32) -> (u64, u64) {
    let mut parents: HashMap<u32, u32> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(parent) = proc_field(pid, "status", "PPid:") {
            parents.insert(pid, parent as u32);
        }
    }
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&parent) if parent > 1 => pid = parent,
            _ => return false,
        }
    };
    parents
        .keys()
        .filter(|pid| in_tree(**pid))
        .map(|&pid| {
            let kib = |file, field| proc_field(pid, file, field).unwrap_or(0) * 1024;
            (kib("status", "VmRSS:"), kib("smaps_rollup", "Pss:"))
        })
        .fold((0, 0), |(rss, pss), (r, p)| (rss + r, pss + p))
}

/// The first number after `field` in /proc/PID/FILE.
fn proc_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn article() -> String {
    let paragraphs: String = (0..40)
        .map(|n| format!("<p>Paragraph {n} of the article: a few sentences of body text that a reader came for, long enough to look like prose in a real page.</p>"))
        .collect();
    format!(
        r#"<!DOCTYPE html><html><head><title>Article</title><style>body{{font-family:sans-serif;max-width:50em;margin:auto}} nav a{{margin:0 1em}}</style></head>
<body><nav><a href="/">Home</a><a href="/news">News</a><a href="/about">About</a></nav>
<article><h1>An article</h1>{paragraphs}<div id="late"></div></article>
<footer>Footer links and copyright</footer>
<script>document.getElementById('late').innerHTML = '<p>Written by script after load.</p>';</script></body></html>"#
    )
}

async fn start_site() -> Url {
    let body = Arc::new(article());
    let app = axum::Router::new().route(
        "/article/{n}",
        get(move || {
            let body = Arc::clone(&body);
            async move { Html(body.as_str().to_owned()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Url::parse(&format!("http://{address}/")).unwrap()
}
