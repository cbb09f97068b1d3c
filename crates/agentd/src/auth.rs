//! API keys: random, shown once, stored as a SHA-256 hash, found by a hash
//! prefix and compared in constant time. The [`Caller`] extractor turns the
//! `Authorization` header into the key's organization and scopes.

use std::sync::Arc;

use agentd_domain::{ApiKey, OrganizationId, Scope};
use agentd_storage::{NewApiKey, Storage, StorageError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;
use crate::startup::AppState;

const KEY_PREFIX: &str = "agd_";

/// A new random key: `agd_` and 48 hex digits (192 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

struct KeyDigest {
    lookup: String,
    hash: Vec<u8>,
}

/// Keys are high-entropy secrets, so one SHA-256 suffices (no slow KDF).
fn digest(key: &str) -> KeyDigest {
    let hash = Sha256::digest(key.as_bytes()).to_vec();
    KeyDigest {
        lookup: hex::encode(&hash[..8]),
        hash,
    }
}

/// Stores a key for an organization; returns the stored record.
pub async fn store_key(
    storage: &dyn Storage,
    organization_id: OrganizationId,
    name: &str,
    key: &str,
    scopes: Vec<Scope>,
) -> Result<ApiKey, StorageError> {
    let KeyDigest { lookup, hash } = digest(key);
    storage
        .create_api_key(NewApiKey {
            organization_id,
            name: name.to_owned(),
            lookup,
            key_hash: hash,
            scopes,
        })
        .await
}

pub async fn revoke_key(storage: &dyn Storage, key: &str) -> Result<bool, StorageError> {
    storage.revoke_api_key(&digest(key).lookup).await
}

#[derive(Debug, PartialEq)]
pub enum KeyCheck {
    Valid(ApiKey),
    Unknown,
    Revoked,
}

pub async fn check_key(storage: &dyn Storage, key: &str) -> Result<KeyCheck, StorageError> {
    let KeyDigest { lookup, hash } = digest(key);
    let Some(stored) = storage.find_api_key(&lookup).await? else {
        return Ok(KeyCheck::Unknown);
    };
    if !bool::from(stored.key_hash.ct_eq(&hash)) {
        return Ok(KeyCheck::Unknown);
    }
    if stored.key.revoked_at.is_some() {
        return Ok(KeyCheck::Revoked);
    }
    Ok(KeyCheck::Valid(stored.key))
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    pub fn organization_id(&self) -> OrganizationId {
        self.key.organization_id
    }

    /// 403 unless the key's scopes allow the operation.
    pub fn require(&self, operation: agentd_domain::Operation) -> Result<(), ApiError> {
        if self.key.allows(operation) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "This API key does not have permission to {}.",
                match operation {
                    agentd_domain::Operation::Read => "read agents",
                    agentd_domain::Operation::Write => "create, change or delete agents",
                    agentd_domain::Operation::Run => "run agents",
                    agentd_domain::Operation::ReadJobs => "read jobs",
                }
            )))
        }
    }

    /// 403 unless the key may create agents: a key limited to some agents
    /// may change those, but not make new ones (which it could not reach).
    pub fn require_agent_creation(&self) -> Result<(), ApiError> {
        self.require(agentd_domain::Operation::Write)?;
        if self.key.agent_restriction().is_some() {
            return Err(ApiError::Forbidden(
                "This API key is limited to some agents and cannot create or duplicate agents."
                    .into(),
            ));
        }
        Ok(())
    }

    /// 403 when a `organization_id` given in the body names another organization.
    pub fn check_organization(&self, given: Option<&str>) -> Result<(), ApiError> {
        match given.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(()),
            Some(text) => {
                let id: OrganizationId = text.parse().map_err(|_| {
                    ApiError::bad_request_field(
                        "organization_id",
                        format!("'{text}' is not a valid UUID."),
                    )
                })?;
                if id == self.organization_id() {
                    Ok(())
                } else {
                    Err(ApiError::Forbidden(
                        "You do not have access to this organization.".into(),
                    ))
                }
            }
        }
    }
}

/// Checks the bearer token of a `/metrics` scrape against
/// `AGENTD_METRICS_TOKEN` (digests compared in constant time).
pub fn check_metrics_token(parts: &Parts, expected: &str) -> Result<(), ApiError> {
    let given = Sha256::digest(bearer_token(parts)?.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    if bool::from(given.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("Invalid metrics token.".into()))
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("Authentication credentials were not provided.".into())
        })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Invalid Authorization header.".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized("Authorization header must be 'Bearer <API key>'.".into())
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(
            "Authorization header must be 'Bearer <API key>'.".into(),
        ));
    }
    Ok(token)
}

/// `organization_id` from the query string, if any.
fn query_organization(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url_decoded_pairs(query)
        .find(|(k, _)| k == "organization_id")
        .map(|(_, v)| v)
}

pub(crate) fn url_decoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let key = match check_key(state.storage.as_ref(), token).await? {
            KeyCheck::Valid(key) => key,
            KeyCheck::Unknown => return Err(ApiError::Unauthorized("Invalid API key.".into())),
            KeyCheck::Revoked => {
                return Err(ApiError::Unauthorized(
                    "This API key has been revoked.".into(),
                ))
            }
        };
        let caller = Caller { key };
        caller.check_organization(query_organization(parts).as_deref())?;
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_prefixed() {
        let a = generate_key();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 48);
        assert_ne!(a, generate_key());
    }

    #[test]
    fn digest_is_stable_and_lookup_is_a_prefix() {
        let d = digest("secret");
        assert_eq!(d.hash, digest("secret").hash);
        assert_eq!(d.lookup, hex::encode(&d.hash[..8]));
        assert_ne!(d.hash, digest("secret2").hash);
    }
}
