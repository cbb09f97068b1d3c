//! Request extractors whose rejections are JSON errors, and a reader for
//! JSON object bodies that collects DRF-style field errors.

use agentd_domain::time::Timestamp;
use agentd_domain::FieldErrors;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;

/// `axum::Json`, with rejections in our error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(value)| ApiJson(value))
            .map_err(|rejection| {
                ApiError::from_rejection(rejection.status(), rejection.body_text())
            })
    }
}

/// A JSON object body; absent or empty bodies read as `{}`.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                ApiError::from_rejection(rejection.status(), rejection.body_text())
            })?;
        Self::parse(&bytes)
    }
}

impl JsonObject {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        agentd_domain::run_body::parse_json_object(bytes)
            .map(JsonObject)
            .map_err(ApiError::bad_request)
    }
}

/// Reads typed fields out of a JSON object, collecting every error.
pub struct FieldReader<'a> {
    map: &'a Map<String, Value>,
    pub errors: FieldErrors,
}

impl<'a> FieldReader<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            errors: FieldErrors::default(),
        }
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, field: &str) -> Option<String> {
        match self.present(field)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.errors.add(field, "Not a valid string.");
                None
            }
        }
    }

    pub fn required_string(&mut self, field: &str) -> Option<String> {
        if self.present(field).is_none() {
            self.errors.add(field, "This field is required.");
            return None;
        }
        self.string(field)
    }

    /// A string that, when given, must not be blank.
    pub fn non_blank_string(&mut self, field: &str) -> Option<String> {
        let value = self.string(field)?;
        if value.trim().is_empty() {
            self.errors.add(field, "This field may not be blank.");
            return None;
        }
        Some(value)
    }

    pub fn bool(&mut self, field: &str) -> Option<bool> {
        match self.present(field)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "true" | "True" | "1") => Some(true),
            Value::String(s) if matches!(s.as_str(), "false" | "False" | "0") => Some(false),
            _ => {
                self.errors.add(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// A JSON value that may also arrive JSON-encoded in a string.
    pub fn json(&mut self, field: &str) -> Option<Value> {
        match self.present(field)? {
            Value::String(text) => match serde_json::from_str(text) {
                Ok(value) => Some(value),
                Err(e) => {
                    self.errors
                        .add(field, format!("Value must be valid JSON: {e}"));
                    None
                }
            },
            other => Some(other.clone()),
        }
    }

    /// Keeps `value` when `rule` accepts it, else records the error.
    pub fn check<T>(
        &mut self,
        field: &str,
        value: T,
        rule: impl FnOnce(&T) -> Result<(), String>,
    ) -> Option<T> {
        match rule(&value) {
            Ok(()) => Some(value),
            Err(message) => {
                self.errors.add(field, message);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        self.errors.into_result().map_err(ApiError::from)
    }
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    use chrono::{NaiveDate, NaiveDateTime};
    agentd_domain::time::parse(text)
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| {
            ApiError::bad_request_field(field, format!("'{text}' is not an ISO 8601 date-time."))
        })
}

/// The query string's pairs, for filters that may repeat.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn from_uri(uri: &axum::http::Uri) -> Self {
        Self(
            uri.query()
                .map(|q| crate::auth::url_decoded_pairs(q).collect())
                .unwrap_or_default(),
        )
    }

    /// The first non-empty value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag, spelled as Django REST accepts it.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.first(name)
            .map(|text| match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ApiError::bad_request_field(
                    name,
                    format!("'{text}' is not a boolean."),
                )),
            })
            .transpose()
    }

    /// 400 naming every parameter that is not in `known` (nor
    /// `organization_id`, accepted everywhere): a misspelt filter must not
    /// silently return everything.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut errors = FieldErrors::default();
        for (name, _) in &self.0 {
            if name != "organization_id" && !known.contains(&name.as_str()) {
                let shown: String = name.chars().take(60).collect();
                errors.add(
                    name.clone(),
                    format!(
                        "Unknown query parameter '{}'. Known: {}.",
                        shown.escape_debug(),
                        known.join(", ")
                    ),
                );
            }
        }
        errors.into_result().map_err(ApiError::from)
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.first(name)
            .map(|text| {
                text.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request_field(name, format!("'{text}' is not an integer."))
                })
            })
            .transpose()
    }

    /// Every value of a repeatable integer parameter.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, ApiError> {
        self.all(name)
            .iter()
            .flat_map(|text| text.split(','))
            .map(|text| {
                text.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request_field(name, format!("'{text}' is not an integer."))
                })
            })
            .collect()
    }

    /// An ISO 8601 date-time (or date) parameter.
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.first(name)
            .map(|text| parse_time(name, text))
            .transpose()
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}
