//! The browser console: static files compiled into the binary, served
//! under `/console/` with a strict Content-Security-Policy. The console
//! talks to the public API only; every route under `/console/` that is not
//! a file is a page of the single-page app and gets `index.html`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::error::ApiError;

/// Scripts, styles and fetches from this origin only; no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
    font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

macro_rules! console_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../console/", $path)))),*]
    };
}

/// Every file of the console, by its path under `console/`.
const FILES: &[(&str, &str)] = console_files!(
    "index.html",
    "assets/app.css",
    "assets/favicon.svg",
    "assets/app.js",
    "assets/api.js",
    "assets/router.js",
    "assets/dom.js",
    "assets/tabular.js",
    "assets/schema_editor.js",
    "assets/outputs.js",
    "assets/pages/signin.js",
    "assets/pages/agents.js",
    "assets/pages/agent_form.js",
    "assets/pages/agent.js",
    "assets/pages/playground.js",
    "assets/pages/jobs.js",
    "assets/pages/job.js",
    "assets/pages/batch.js",
    "assets/pages/usage.js",
);

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/assets/{*path}", get(asset))
        .route("/console/{*page}", get(index))
}

async fn index() -> Response {
    serve("index.html").unwrap_or_else(|| ApiError::NotFound("Not found.".into()).into_response())
}

async fn asset(Path(path): Path<String>) -> Response {
    serve(&format!("assets/{path}"))
        .unwrap_or_else(|| ApiError::NotFound(format!("No console file '{path}'.")).into_response())
}

fn serve(path: &str) -> Option<Response> {
    let (_, body) = FILES.iter().find(|(name, _)| *name == path)?;
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary; revalidating is cheap.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_known_content_type() {
        for (path, body) in FILES {
            assert_ne!(content_type(path), "application/octet-stream", "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[test]
    fn the_index_loads_no_inline_script() {
        let (_, index) = FILES.iter().find(|(p, _)| *p == "index.html").unwrap();
        assert!(!index.contains("<script>"));
        assert!(index.contains(r#"<script type="module" src="/console/assets/app.js">"#));
    }

    /// Static (`from "./x.js"`) and dynamic (`import("./x.js")`) imports.
    fn imports(body: &str) -> Vec<&str> {
        let mut found = Vec::new();
        for opener in ["from \"", "import(\""] {
            let mut rest = body;
            while let Some(at) = rest.find(opener) {
                rest = &rest[at + opener.len()..];
                if let Some(end) = rest.find('"') {
                    found.push(&rest[..end]);
                }
            }
        }
        found
    }

    #[test]
    fn every_module_import_is_served() {
        let mut checked = 0;
        for (path, body) in FILES.iter().filter(|(p, _)| p.ends_with(".js")) {
            let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
            for target in imports(body) {
                let resolved = resolve(base, target);
                assert!(
                    FILES.iter().any(|(p, _)| *p == resolved),
                    "{path} imports {target}, which is not served"
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} imports found");
    }

    #[test]
    fn every_file_of_the_console_directory_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(
                    FILES.iter().any(|(p, _)| *p == relative),
                    "console/{relative} is not in FILES"
                );
            }
        }
    }

    fn resolve(base: &str, target: &str) -> String {
        let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
        for segment in target.split('/') {
            match segment {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
