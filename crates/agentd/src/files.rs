//! Files under `AGENTD_DATA_DIR/files`: uploaded inputs, checked against the
//! input's declared type, hashed, and recorded in storage.

use std::path::PathBuf;

use agentd_domain::input::check_file_content;
use agentd_domain::{FileId, FileRef, OrganizationId, Upload};
use agentd_net::{AddressPolicy, ClientSettings, GuardedClient, Unreachable};
use agentd_storage::{Storage, StorageError};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The caller's fault: wrong content or an unknown id.
    #[error("{0}")]
    Rejected(String),
    #[error("file store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
    http: GuardedClient,
    max_bytes: usize,
}

/// Time limit of fetching one file from a URL.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every refused URL and every failed connection answers, whatever
/// the reason (so that no answer reveals which addresses or ports exist).
pub const UNREACHABLE_URL: &str = "Could not fetch the URL: it is not reachable from this server.";

impl FileStore {
    /// `max_bytes` bounds files fetched from URLs, like uploads; `urls`
    /// says which addresses a fetched URL may reach.
    pub fn new(
        data_dir: &std::path::Path,
        max_bytes: usize,
        urls: AddressPolicy,
    ) -> std::io::Result<Self> {
        let root = data_dir.join("files");
        std::fs::create_dir_all(&root)?;
        let settings = ClientSettings {
            timeout: FETCH_TIMEOUT,
            ..ClientSettings::default()
        };
        let http = GuardedClient::new(urls, &settings).map_err(std::io::Error::other)?;
        Ok(Self {
            root,
            http,
            max_bytes,
        })
    }

    /// Downloads an http(s) URL through the outbound URL guard, refusing
    /// bodies over the size limit.
    pub async fn fetch(&self, url: &str) -> Result<Upload, FileError> {
        let unreachable = |_: Unreachable| FileError::Rejected(UNREACHABLE_URL.into());
        let rejected =
            |why: String| FileError::Rejected(format!("Could not fetch the URL: {why}."));
        let mut response = self.http.get(url).await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(rejected(format!(
                "the server answered HTTP {}",
                response.status()
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(Unreachable::from(e)))?
        {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(rejected(format!(
                    "the file is larger than {} bytes",
                    self.max_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let file_name = url
            .rsplit('/')
            .next()
            .map(|name| name.split(['?', '#']).next().unwrap_or(name))
            .filter(|name| !name.is_empty())
            .unwrap_or("download")
            .to_owned();
        Ok(Upload {
            file_name,
            content_type,
            bytes,
        })
    }

    fn path(&self, id: FileId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// Stores an upload for an input declared as `data_type`.
    pub async fn save(
        &self,
        storage: &dyn Storage,
        organization_id: OrganizationId,
        upload: Upload,
        data_type: &str,
    ) -> Result<FileRef, FileError> {
        check_file_content(data_type, &upload.bytes)
            .map_err(|message| FileError::Rejected(format!("'{}': {message}", upload.file_name)))?;
        let file = FileRef {
            id: FileId::new(),
            file_name: upload.file_name,
            content_type: upload
                .content_type
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| data_type.to_owned()),
            size: upload.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&upload.bytes)),
        };
        tokio::fs::write(self.path(file.id), &upload.bytes).await?;
        storage.create_file(organization_id, &file).await?;
        Ok(file)
    }

    /// A file stored earlier by the same organization.
    pub async fn find(
        &self,
        storage: &dyn Storage,
        organization_id: OrganizationId,
        id: FileId,
    ) -> Result<FileRef, FileError> {
        storage
            .get_file(organization_id, id)
            .await?
            .ok_or_else(|| FileError::Rejected(format!("File {id} not found.")))
    }

    /// Removes a file's bytes; a file already gone is not an error.
    pub async fn delete(&self, id: FileId) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub async fn read(&self, id: FileId) -> Result<Vec<u8>, FileError> {
        Ok(tokio::fs::read(self.path(id)).await?)
    }
}
