//! Where the client finds its server: a profile of
//! `~/.config/agentd/config.toml`, overridden by `AGENTD_URL`,
//! `AGENTD_API_KEY` and `AGENTD_ORGANIZATION_ID`.
//!
//! ```toml
//! [profiles.default]
//! url = "http://127.0.0.1:8080"
//! api_key = "…"
//! organization_id = "…"   # optional
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::ClientError;

/// The server a command talks to.
#[derive(Clone, Debug)]
pub struct Server {
    pub url: String,
    pub api_key: String,
    pub organization_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    url: Option<String>,
    api_key: Option<String>,
    organization_id: Option<String>,
}

const DEFAULT_PROFILE: &str = "default";

/// `AGENTD_CONFIG`, else `$XDG_CONFIG_HOME/agentd/config.toml`, else
/// `~/.config/agentd/config.toml`.
fn config_path() -> Option<PathBuf> {
    if let Some(path) = non_empty_env("AGENTD_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = non_empty_env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty_env("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("agentd").join("config.toml"))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn read_config() -> Result<(Option<PathBuf>, ConfigFile), ClientError> {
    let Some(path) = config_path() else {
        return Ok((None, ConfigFile::default()));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let config = toml::from_str(&text)
                .map_err(|error| ClientError::usage(format!("{}: {error}", path.display())))?;
            Ok((Some(path), config))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok((Some(path), ConfigFile::default()))
        }
        Err(error) => Err(ClientError::usage(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

/// The server for `--profile NAME` (or the `default` profile), with the
/// environment variables taking precedence.
pub fn resolve(profile_name: Option<&str>) -> Result<Server, ClientError> {
    let (path, config) = read_config()?;
    let profile = match profile_name {
        Some(name) => config.profiles.get(name).cloned().ok_or_else(|| {
            let place = path.map_or("the config file".to_owned(), |p| p.display().to_string());
            ClientError::usage(format!("no profile [profiles.{name}] in {place}"))
        })?,
        None => config
            .profiles
            .get(DEFAULT_PROFILE)
            .cloned()
            .unwrap_or_default(),
    };
    let url = non_empty_env("AGENTD_URL")
        .or(profile.url)
        .ok_or_else(|| {
            ClientError::usage(
                "no server: set AGENTD_URL (and AGENTD_API_KEY), or a profile in ~/.config/agentd/config.toml",
            )
        })?;
    let api_key = non_empty_env("AGENTD_API_KEY")
        .or(profile.api_key)
        .ok_or_else(|| {
            ClientError::usage("no API key: set AGENTD_API_KEY, or api_key in the profile")
        })?;
    let organization_id = non_empty_env("AGENTD_ORGANIZATION_ID").or(profile.organization_id);
    let parsed = reqwest::Url::parse(&url)
        .map_err(|error| ClientError::usage(format!("server URL '{url}': {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientError::usage(format!(
            "server URL '{url}' must start with http:// or https://"
        )));
    }
    Ok(Server {
        url: url.trim_end_matches('/').to_owned(),
        api_key,
        organization_id,
    })
}
