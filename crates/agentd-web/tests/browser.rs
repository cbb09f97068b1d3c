//! Headless Chromium against a loopback test site: rendering, redirects,
//! time and size caps, full-page screenshots, interaction, the page pool,
//! restart after a crash, and the URL guard on every request of a page.
//!
//! Skipped only when Chromium is absent and `AGENTD_REQUIRE_CHROMIUM` is unset.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentd_net::AddressPolicy;
use agentd_web::browser::{find_chromium, Browser, BrowserSettings, PageAction, RenderOptions};
use agentd_web::WebError;
use axum::extract::{Query, State};
use axum::response::{Html, Redirect};
use axum::routing::get;
use axum::Router;
use url::Url;

/// A deadline for things that happen "soon", generous for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn chromium_path() -> Option<PathBuf> {
    std::env::var_os("AGENTD_CHROMIUM_PATH").map(PathBuf::from)
}

/// False (and the test skips) when there is no Chromium and none is required.
fn chromium_present() -> bool {
    if find_chromium(chromium_path().as_deref()).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("AGENTD_REQUIRE_CHROMIUM").is_none(),
        "AGENTD_REQUIRE_CHROMIUM is set but no Chromium was found"
    );
    eprintln!("skipped: no Chromium (install `chromium` or set AGENTD_CHROMIUM_PATH)");
    false
}

fn settings(policy: AddressPolicy) -> BrowserSettings {
    BrowserSettings {
        executable: chromium_path(),
        max_pages: 2,
        page_timeout: PATIENCE,
        max_page_bytes: 4 * 1024 * 1024,
        user_agent: "agentd-test/1.0".into(),
        policy,
    }
}

#[derive(Default)]
struct Counters {
    holding: AtomicUsize,
    most_holding: AtomicUsize,
}

/// The test site, on `ip` port 0; answers its base URL.
async fn start_site(ip: Ipv4Addr) -> (Url, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route("/static", get(|| async { Html("<html><head><title>Static</title></head><body><h1>Static article</h1><p>Plain text served as is.</p></body></html>") }))
        .route("/js", get(|| async { Html("<html><body><div id=app></div><script>document.getElementById('app').innerHTML = '<p>Built by script</p>';</script></body></html>") }))
        .route("/r1", get(|| async { Redirect::temporary("/r2") }))
        .route("/r2", get(|| async { Redirect::temporary("/static") }))
        .route("/slow", get(|| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Html("late")
        }))
        .route("/huge", get(|| async { Html(format!("<html><body><p>{}</p></body></html>", "x".repeat(8 * 1024 * 1024))) }))
        .route("/tall", get(|| async { Html("<html><body style=\"margin:0\"><div style=\"height:3000px;background:linear-gradient(red,blue)\">tall</div></body></html>") }))
        .route("/ua", get(|headers: axum::http::HeaderMap| async move {
            Html(format!("<p id=ua>{}</p>", headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("")))
        }))
        .route("/form", get(|| async { Html(FORM) }))
        .route("/search", get(|Query(query): Query<std::collections::HashMap<String, String>>| async move {
            Html(format!("<p>You searched for {}</p>", query.get("q").cloned().unwrap_or_default()))
        }))
        .route("/alert", get(|| async { Html("<script>alert('blocking?'); confirm('sure?');</script><p>after the dialogs</p>") }))
        .route("/download", get(|| async {
            ([("content-type", "application/octet-stream"), ("content-disposition", "attachment; filename=\"x.bin\"")], "binary")
        }))
        .route("/about", get(|| async { Html("<h1>About page</h1>") }))
        .route("/missing", get(|| async { (axum::http::StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")) }))
        .route("/hold", get(|State(counters): State<Arc<Counters>>| async move {
            let now = counters.holding.fetch_add(1, Ordering::SeqCst) + 1;
            counters.most_holding.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            counters.holding.fetch_sub(1, Ordering::SeqCst);
            Html("<p>held</p>")
        }))
        .route("/embeds", get(|Query(query): Query<std::collections::HashMap<String, String>>| async move {
            let victim = &query["victim"];
            Html(format!(r#"<html><body>
<img src="{victim}/pixel.png">
<iframe src="{victim}/frame"></iframe>
<div id=status>pending</div>
<script>
const outcomes = [];
const done = () => {{ if (outcomes.length === 2) document.getElementById('status').textContent = 'settled:' + outcomes.join(','); }};
fetch('{victim}/data').then(() => outcomes.push('fetch-ok'), () => outcomes.push('fetch-failed')).then(done);
const socket = new WebSocket('{ws}/socket');
socket.onopen = () => {{ outcomes.push('ws-open'); done(); }};
socket.onerror = () => {{ outcomes.push('ws-failed'); done(); }};
</script></body></html>"#, ws = victim.replacen("http", "ws", 1)))
        }))
        .route("/to-victim", get(|Query(query): Query<std::collections::HashMap<String, String>>| async move {
            Redirect::temporary(&format!("{}/redirected", query["victim"]))
        }))
        .with_state(Arc::clone(&counters));
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Url::parse(&format!("http://{address}/")).unwrap(), counters)
}

const FORM: &str = r#"<html><body>
<a href="/about">About us</a>
<form action="/search" method="get">
  <label for="q">Query</label> <input id="q" name="q" type="text">
  <label>Colour <select id="colour" name="colour" onchange="document.getElementById('chosen').textContent = 'chosen: ' + this.value">
    <option value="red">Red</option><option value="green">Green</option><option value="blue">Blue</option>
  </select></label>
  <button type="submit">Search</button>
  <input type="hidden" name="secret" value="1">
</form>
<p id="chosen">chosen: none</p>
</body></html>"#;

/// A TCP listener on 127.0.0.1 that counts every connection it gets.
async fn start_victim() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{address}"), hits)
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_static_scripted_and_redirected_pages_with_full_page_screenshots() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(settings(AddressPolicy::AllowAll));
    let plain = RenderOptions::default();

    let page = browser
        .render(&site.join("static").unwrap(), &plain)
        .await
        .unwrap();
    assert!(
        page.html.contains("<h1>Static article</h1>"),
        "{}",
        page.html
    );
    assert!(page.html.starts_with("<!DOCTYPE html>") || page.html.starts_with("<html>"));
    assert!(page.screenshot_png.is_none());

    let page = browser
        .render(&site.join("js").unwrap(), &plain)
        .await
        .unwrap();
    assert!(
        page.html.contains("<p>Built by script</p>"),
        "{}",
        page.html
    );

    let page = browser
        .render(&site.join("r1").unwrap(), &plain)
        .await
        .unwrap();
    assert_eq!(page.final_url, site.join("static").unwrap());
    assert!(page.html.contains("Static article"));

    let page = browser
        .render(&site.join("ua").unwrap(), &plain)
        .await
        .unwrap();
    assert!(page.html.contains("agentd-test/1.0"), "{}", page.html);

    let with_screenshot = RenderOptions {
        screenshot: true,
        min_wait: Duration::from_millis(100),
    };
    let page = browser
        .render(&site.join("tall").unwrap(), &with_screenshot)
        .await
        .unwrap();
    let (width, height) = png_size(page.screenshot_png.as_deref().unwrap());
    assert_eq!(height, 3000, "the screenshot covers the whole page");
    assert!(width >= 800, "width {width}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_is_not_rendered_as_the_page() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(settings(AddressPolicy::AllowAll));
    let missing = site.join("missing").unwrap();
    match browser.render(&missing, &RenderOptions::default()).await {
        Err(WebError::Unreachable(message)) => {
            assert_eq!(message, format!("the page {missing} answered HTTP 404"));
        }
        other => panic!(
            "expected the 404 to fail the render, got {:?}",
            other.map(|p| p.final_url)
        ),
    }
    // The browser still renders the next page.
    let page = browser
        .render(&site.join("static").unwrap(), &RenderOptions::default())
        .await
        .unwrap();
    assert!(page.html.contains("Static article"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_page_times_out_and_a_huge_page_is_too_large() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(BrowserSettings {
        page_timeout: Duration::from_secs(3),
        max_page_bytes: 1024 * 1024,
        ..settings(AddressPolicy::AllowAll)
    });
    let plain = RenderOptions::default();
    match browser.render(&site.join("slow").unwrap(), &plain).await {
        Err(WebError::Timeout(3)) => {}
        other => panic!(
            "expected a timeout, got {:?}",
            other.map(|page| page.final_url)
        ),
    }
    match browser.render(&site.join("huge").unwrap(), &plain).await {
        Err(WebError::TooLarge(limit)) => assert_eq!(limit, 1024 * 1024),
        other => panic!(
            "expected TooLarge, got {:?}",
            other.map(|page| page.final_url)
        ),
    }
    // The browser is still fine afterwards.
    browser
        .render(&site.join("static").unwrap(), &plain)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_session_types_submits_selects_and_clicks() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(settings(AddressPolicy::AllowAll));
    let session = browser.open(&site.join("form").unwrap()).await.unwrap();

    let elements = session.elements().await.unwrap();
    let kinds: Vec<(&str, &str)> = elements
        .iter()
        .map(|e| (e.kind.as_str(), e.label.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a", "About us"),
            ("input[type=text]", "Query"),
            ("select", "Colour"),
            ("button", "Search")
        ],
        "{elements:?}"
    );
    assert!(elements.iter().enumerate().all(|(at, e)| e.index == at));
    let select = &elements[2];
    assert_eq!(select.options, ["Red", "Green", "Blue"]);

    session
        .act(&PageAction::Select {
            index: 2,
            option: "Blue".into(),
        })
        .await
        .unwrap();
    let now = session.snapshot(&RenderOptions::default()).await.unwrap();
    assert!(now.html.contains("chosen: blue"), "{}", now.html);
    match session
        .act(&PageAction::Select {
            index: 2,
            option: "Purple".into(),
        })
        .await
    {
        Err(WebError::Unreachable(message)) => assert!(message.contains("Purple"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    session
        .act(&PageAction::Scroll { down: true })
        .await
        .unwrap();
    session
        .act(&PageAction::Type {
            index: 1,
            text: "rust".into(),
            submit: true,
        })
        .await
        .unwrap();
    let result = session
        .snapshot(&RenderOptions {
            screenshot: true,
            ..RenderOptions::default()
        })
        .await
        .unwrap();
    assert!(
        result.html.contains("You searched for rust"),
        "{}",
        result.html
    );
    assert_eq!(result.final_url.path(), "/search");
    assert!(result.final_url.query().unwrap().contains("q=rust"));
    png_size(result.screenshot_png.as_deref().unwrap());

    let session = browser.open(&site.join("form").unwrap()).await.unwrap();
    session.elements().await.unwrap();
    session.act(&PageAction::Click { index: 0 }).await.unwrap();
    let about = session.snapshot(&RenderOptions::default()).await.unwrap();
    assert_eq!(about.final_url.path(), "/about");
    assert!(about.html.contains("About page"));
    match session.act(&PageAction::Click { index: 7 }).await {
        Err(WebError::Unreachable(message)) => assert!(message.contains("element 7"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_only_refuses_the_loopback_site_by_address_and_by_name() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(settings(AddressPolicy::PublicOnly));
    let by_name = Url::parse(&format!("http://localhost:{}/static", site.port().unwrap())).unwrap();
    for url in [site.join("static").unwrap(), by_name] {
        match browser.render(&url, &RenderOptions::default()).await {
            Err(WebError::Unreachable(message)) => {
                assert_eq!(message, "the page is not reachable from this server")
            }
            other => panic!("{url} was not refused: {:?}", other.map(|page| page.html)),
        }
    }
    for url in [
        "file:///etc/passwd",
        "chrome://version",
        "data:text/html,<p>hi</p>",
    ] {
        let refused = browser
            .render(&Url::parse(url).unwrap(), &RenderOptions::default())
            .await;
        assert!(matches!(refused, Err(WebError::Unreachable(_))), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_page_cannot_make_the_browser_reach_a_refused_address() {
    if !chromium_present() {
        return;
    }
    // The site is allowed by its own address; the victim on 127.0.0.1 is not.
    let allowed = Ipv4Addr::new(127, 0, 0, 2);
    let (site, _) = start_site(allowed).await;
    let (victim, hits) = start_victim().await;
    let policy = AddressPolicy::AllowListed(vec![format!("{allowed}/32").parse().unwrap()]);
    let browser = Browser::new(settings(policy));

    let embeds = site.join(&format!("embeds?victim={victim}")).unwrap();
    let session = browser.open(&embeds).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let settled = loop {
        let now = session.snapshot(&RenderOptions::default()).await.unwrap();
        if let Some(at) = now.html.find("settled:") {
            break now.html[at..].split('<').next().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page's requests never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        settled.contains("fetch-failed") && settled.contains("ws-failed"),
        "{settled}"
    );
    drop(session);

    let redirect = site.join(&format!("to-victim?victim={victim}")).unwrap();
    let refused = browser.render(&redirect, &RenderOptions::default()).await;
    assert!(
        matches!(refused, Err(WebError::Unreachable(_))),
        "the redirect was followed"
    );

    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the refused address received connections"
    );
    // The allowed site itself renders.
    browser
        .render(&site.join("static").unwrap(), &RenderOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_never_has_more_than_max_pages_open() {
    if !chromium_present() {
        return;
    }
    let (site, counters) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Arc::new(Browser::new(settings(AddressPolicy::AllowAll)));
    let renders: Vec<_> = (0..6)
        .map(|_| {
            let browser = Arc::clone(&browser);
            let url = site.join("hold").unwrap();
            tokio::spawn(async move { browser.render(&url, &RenderOptions::default()).await })
        })
        .collect();
    for render in renders {
        assert!(render.await.unwrap().unwrap().html.contains("held"));
    }
    let most = counters.most_holding.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "{most} pages at once with max_pages = 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_is_started_again_after_it_crashed() {
    if !chromium_present() {
        return;
    }
    let (site, _) = start_site(Ipv4Addr::LOCALHOST).await;
    let browser = Browser::new(settings(AddressPolicy::AllowAll));
    assert_eq!(browser.process_id().await, None, "started lazily");
    let url = site.join("static").unwrap();
    browser
        .render(&url, &RenderOptions::default())
        .await
        .unwrap();
    let first = browser.process_id().await.expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The crash is noticed when the DevTools connection closes.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while browser.process_id().await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the crash went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = browser
        .render(&url, &RenderOptions::default())
        .await
        .unwrap();
    assert!(page.html.contains("Static article"));
    assert_ne!(browser.process_id().await, Some(first));
}

#[tokio::test]
async fn without_chromium_the_error_names_the_package_and_the_variable() {
    let browser = Browser::new(BrowserSettings {
        executable: Some(PathBuf::from("/nonexistent/chromium")),
        ..settings(AddressPolicy::AllowAll)
    });
    assert!(!browser.is_available());
    let url = Url::parse("http://example.com/").unwrap();
    match browser.render(&url, &RenderOptions::default()).await {
        Err(WebError::BrowserMissing(message)) => {
            assert!(
                message.contains("`chromium`") && message.contains("AGENTD_CHROMIUM_PATH"),
                "{message}"
            );
        }
        other => panic!(
            "expected BrowserMissing, got {:?}",
            other.map(|page| page.html)
        ),
    }
}
