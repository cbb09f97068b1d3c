//! Static page fetching through the URL guard: every hop of a redirect
//! chain is checked by `agentd_net`, the body is read up to a size cap
//! within the page timeout, and decoded by its declared charset.

use std::time::Duration;

use agentd_net::{ClientSettings, GuardedClient};
use encoding_rs::Encoding;
use reqwest::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::WebError;

/// Operator settings of static fetching.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    pub page_timeout: Duration,
    pub max_page_bytes: u64,
    pub user_agent: String,
}

/// A fetched document, decoded to text.
#[derive(Clone, Debug)]
pub struct FetchedPage {
    /// After redirects.
    pub final_url: Url,
    pub status: StatusCode,
    /// The `Content-Type` without parameters, lower case (`text/html`).
    pub media_type: String,
    pub text: String,
}

/// Fetches pages over HTTP for the web engines.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: GuardedClient,
    settings: FetchSettings,
}

impl Fetcher {
    pub fn new(client: GuardedClient, settings: FetchSettings) -> Self {
        Self { client, settings }
    }

    /// A fetcher with its own guarded client. The client's own time limit is
    /// a margin above the page timeout, so that [`Self::fetch`]'s timer,
    /// which names the timeout, fires first.
    pub fn with_policy(
        policy: agentd_net::AddressPolicy,
        settings: FetchSettings,
    ) -> Result<Self, WebError> {
        let client = GuardedClient::new(
            policy,
            &ClientSettings {
                timeout: settings.page_timeout + Duration::from_secs(5),
                connect_timeout: settings.page_timeout.min(Duration::from_secs(10)),
            },
        )
        .map_err(|error| WebError::Internal(format!("building the page client: {error}")))?;
        Ok(Self::new(client, settings))
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    pub fn policy(&self) -> &agentd_net::AddressPolicy {
        self.client.policy()
    }

    /// GETs `url` and reads its body; any status is returned for the caller
    /// to judge (robots.txt reads 404 as "no rules").
    pub async fn fetch(&self, url: &Url) -> Result<FetchedPage, WebError> {
        let timeout = self.settings.page_timeout;
        match tokio::time::timeout(timeout, self.fetch_within_time(url)).await {
            Ok(result) => result,
            Err(_) => Err(WebError::Timeout(timeout.as_secs().max(1))),
        }
    }

    /// GETs an HTML page: a status other than 2xx is an error naming it.
    pub async fn fetch_page(&self, url: &Url) -> Result<FetchedPage, WebError> {
        let page = self.fetch(url).await?;
        if !page.status.is_success() {
            return Err(WebError::Unreachable(format!(
                "the page {url} answered HTTP {}",
                page.status.as_u16()
            )));
        }
        Ok(page)
    }

    async fn fetch_within_time(&self, url: &Url) -> Result<FetchedPage, WebError> {
        let unreachable =
            |_| WebError::Unreachable(format!("the page {url} is not reachable from this server"));
        let request = self
            .client
            .request(Method::GET, url.as_str())
            .map_err(unreachable)?
            .header(USER_AGENT, self.user_agent_header());
        let mut response = self.client.send(request).await.map_err(unreachable)?;
        let max = self.settings.max_page_bytes;
        if response.content_length().is_some_and(|length| length > max) {
            return Err(WebError::TooLarge(max));
        }
        let final_url = response.url().clone();
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let body = read_capped(&mut response, max).await?;
        let (media_type, charset) = parse_content_type(content_type.as_ref());
        Ok(FetchedPage {
            final_url,
            status,
            text: decode(&body, charset.as_deref(), media_type == "text/html"),
            media_type,
        })
    }

    fn user_agent_header(&self) -> HeaderValue {
        HeaderValue::from_str(&self.settings.user_agent)
            .unwrap_or_else(|_| HeaderValue::from_static(crate::DEFAULT_USER_AGENT))
    }
}

/// Reads the body chunk by chunk, failing as soon as it passes `max`.
async fn read_capped(response: &mut Response, max: u64) -> Result<Vec<u8>, WebError> {
    let mut body = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|_| WebError::Unreachable("the page's answer broke off".into()))?;
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(WebError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `text/html; charset=ISO-8859-1` → (`text/html`, `Some("iso-8859-1")`).
fn parse_content_type(value: Option<&HeaderValue>) -> (String, Option<String>) {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return ("text/html".into(), None);
    };
    let mut parts = text.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    });
    (media_type, charset)
}

/// Decodes `body`: a byte-order mark first, then the header's charset, then
/// (for HTML) a `<meta charset>` in the first kilobytes, else UTF-8.
pub(crate) fn decode(body: &[u8], header_charset: Option<&str>, is_html: bool) -> String {
    let declared = header_charset
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| {
            is_html
                .then(|| meta_charset(body))
                .flatten()
                .and_then(|label| Encoding::for_label(label.as_bytes()))
        })
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = declared.decode(body);
    text.into_owned()
}

/// The charset of `<meta charset="…">` or `<meta http-equiv … content="…;
/// charset=…">` within the first 4 KiB.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(4096)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let value: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_charset_decodes_the_body() {
        let body = b"caf\xe9";
        assert_eq!(decode(body, Some("iso-8859-1"), true), "café");
    }

    #[test]
    fn a_meta_charset_decodes_html_without_one_in_the_header() {
        let body = b"<html><head><meta charset=\"windows-1252\"></head><body>\x93hi\x94</body>";
        assert!(decode(body, None, true).contains("\u{201c}hi\u{201d}"));
        let body =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\xe9";
        assert!(decode(body, None, true).ends_with('é'));
    }

    #[test]
    fn utf8_is_the_default() {
        assert_eq!(decode("żółw".as_bytes(), None, true), "żółw");
    }

    #[test]
    fn content_type_parameters_are_parsed() {
        let value = HeaderValue::from_static("Text/HTML; Charset=\"UTF-8\"");
        assert_eq!(
            parse_content_type(Some(&value)),
            ("text/html".into(), Some("utf-8".into()))
        );
    }
}
