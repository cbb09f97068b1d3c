//! `GET /docs`: a reference page that renders `/openapi.json` in the
//! browser. Its HTML, script and style are compiled into the binary and the
//! page loads nothing else (its Content-Security-Policy allows only this
//! server), so it works offline.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Only this server: no CDN, no inline script.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The page's files: name, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/docs/docs.js"),
    ),
    (
        "docs.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/docs/docs.css"),
    ),
];

const PAGE: &str = include_str!("../../assets/docs/index.html");

fn respond(media_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(CONTENT_TYPE, media_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    // The files change only with the binary.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn page() -> Response {
    respond("text/html; charset=utf-8", PAGE)
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, media_type, body)| respond(media_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("No documentation file named '{name}'.")))
}
