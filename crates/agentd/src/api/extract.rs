//! Request extractors whose rejections are JSON errors, and a reader for
//! JSON object bodies that collects DRF-style field errors.

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
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::bad_request(
                "The request body must be a JSON object.",
            )),
            Err(e) => Err(ApiError::bad_request(format!("Malformed JSON body: {e}"))),
        }
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

    pub fn finish(self) -> Result<(), ApiError> {
        self.errors.into_result().map_err(ApiError::from)
    }
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

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}
