//! DRF-style page-number pagination: `count`, `next`, `previous`, `results`.

use axum::http::Uri;

use super::error::ApiError;
use super::wire::Page;

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 1000;

#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub page: i64,
    pub page_size: i64,
}

impl PageRequest {
    pub fn parse(page: Option<&str>, page_size: Option<&str>) -> Result<Self, ApiError> {
        let number = |field: &str, text: Option<&str>, default: i64| -> Result<i64, ApiError> {
            match text {
                None | Some("") => Ok(default),
                Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request_field(
                        field,
                        format!("'{text}' is not a positive integer."),
                    )
                }),
            }
        };
        Ok(Self {
            page: number("page", page, 1)?,
            page_size: number("page_size", page_size, DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE),
        })
    }

    /// Saturates instead of overflowing for a huge page number (a page past
    /// the end, answered 404 by [`Self::respond`]).
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    /// The page body; a page past the end is a 404 as in DRF. Links start
    /// with `base`, the server's public URL (`AppState::public_url`), never
    /// with the request's Host header (which a client can forge).
    pub fn respond<T>(
        &self,
        total: i64,
        results: Vec<T>,
        uri: &Uri,
        base: &str,
    ) -> Result<Page<T>, ApiError> {
        let last_page = ((total + self.page_size - 1) / self.page_size).max(1);
        if self.page > last_page {
            return Err(ApiError::NotFound("Invalid page.".into()));
        }
        let link = |page: i64| page_url(base, uri, page);
        Ok(Page {
            count: total,
            next: (self.page < last_page).then(|| link(self.page + 1)),
            previous: (self.page > 1).then(|| link(self.page - 1)),
            results,
        })
    }
}

fn page_url(base: &str, uri: &Uri, page: i64) -> String {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            crate::auth::url_decoded_pairs(q)
                .filter(|(k, _)| k != "page")
                .collect()
        })
        .unwrap_or_default();
    pairs.push(("page".into(), page.to_string()));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{base}{}?{query}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_page_number_does_not_overflow() {
        let page = PageRequest::parse(Some("9223372036854775807"), Some("1000")).unwrap();
        assert_eq!(page.offset(), i64::MAX);
        let uri: Uri = "/v1/agents/?page=9223372036854775807".parse().unwrap();
        let past_the_end = page.respond(5, Vec::<()>::new(), &uri, "http://127.0.0.1:8080");
        assert!(matches!(past_the_end, Err(ApiError::NotFound(_))));
    }

    #[test]
    fn page_sizes_are_capped_and_non_positive_numbers_refused() {
        let page = PageRequest::parse(None, Some("9223372036854775807")).unwrap();
        assert_eq!(page.page_size, MAX_PAGE_SIZE);
        for bad in [
            "0",
            "-1",
            "-9223372036854775808",
            "99999999999999999999",
            "x",
        ] {
            assert!(PageRequest::parse(Some(bad), None).is_err(), "page={bad}");
            assert!(
                PageRequest::parse(None, Some(bad)).is_err(),
                "page_size={bad}"
            );
        }
    }
}
