//! Files in the object store (`AGENTD_OBJECT_STORE_URL`, see [`objects`]):
//! uploaded inputs and inputs fetched from URLs, checked against the
//! input's declared type and hashed.
//!
//! An object appears only once complete, so a failed write (a full disk, a
//! broken download, an unreachable bucket) leaves no partial file. A stored
//! file stays *staged* until the database row that refers to it is
//! committed: a [`StagedFile`] dropped before [`StagedFile::keep`] removes
//! its bytes, so a request or job that fails, or is dropped, leaves nothing
//! behind. What a crash leaves is removed by the sweep (`crate::file_sweep`).

mod objects;

use std::sync::Arc;
use std::time::SystemTime;

use agentd_domain::input::check_file_content;
use agentd_domain::{FileId, FileRef, OrganizationId, Upload};
use agentd_net::{AddressPolicy, ClientSettings, GuardedClient, Unreachable};
use agentd_storage::{Storage, StorageError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use objects::{Entry, ObjectWriter, Objects};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The caller's fault: wrong content, an unknown id, a URL that failed.
    #[error("{0}")]
    Rejected(String),
    #[error("file store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The object store (a bucket) could not be reached or refused.
    #[error("the object store failed: {0}")]
    Unavailable(object_store::Error),
    /// A file's record exists but its bytes are gone (deleted meanwhile).
    #[error("the bytes of file {0} are not in the store")]
    Missing(FileId),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Bounds on fetching URL inputs.
#[derive(Clone, Copy, Debug)]
pub struct FetchLimits {
    /// Fetches at once in this process (URL inputs and image URLs).
    pub max_concurrent: usize,
    /// Bytes fetched for the URL inputs of one job, all together.
    pub max_bytes_per_job: u64,
}

#[derive(Clone, Debug)]
pub struct FileStore {
    objects: Objects,
    http: GuardedClient,
    max_bytes: usize,
    fetch_limits: FetchLimits,
    fetch_slots: Arc<Semaphore>,
}

/// Time limit of fetching one file from a URL.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every refused URL and every failed connection answers, whatever
/// the reason (so that no answer reveals which addresses or ports exist).
pub const UNREACHABLE_URL: &str = "Could not fetch the URL: it is not reachable from this server.";

/// What a job's error says when the object store could not be reached
/// (the details are logged).
pub const STORE_UNREACHABLE: &str = "the file store could not be reached; run the job again later";

/// Leading bytes kept to recognise a fetched file's type.
const SNIFF_BYTES: usize = 8192;

/// Fetches at once when not configured.
pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 8;

impl FileStore {
    /// `max_bytes` bounds files fetched from URLs, like uploads; `urls`
    /// says which addresses a fetched URL may reach.
    pub fn new(objects: Objects, max_bytes: usize, urls: AddressPolicy) -> std::io::Result<Self> {
        let settings = ClientSettings {
            timeout: FETCH_TIMEOUT,
            ..ClientSettings::default()
        };
        let http = GuardedClient::new(urls, &settings).map_err(std::io::Error::other)?;
        Ok(Self {
            objects,
            http,
            max_bytes,
            fetch_limits: FetchLimits {
                max_concurrent: DEFAULT_MAX_CONCURRENT_FETCHES,
                max_bytes_per_job: max_bytes as u64,
            },
            fetch_slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_FETCHES)),
        })
    }

    pub fn with_fetch_limits(self, limits: FetchLimits) -> Self {
        Self {
            fetch_slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            fetch_limits: limits,
            ..self
        }
    }

    pub fn fetch_limits(&self) -> FetchLimits {
        self.fetch_limits
    }

    /// Starts a GET of a user-supplied URL through the outbound URL guard,
    /// once a fetch slot is free; the slot is held as long as the returned
    /// permit.
    async fn get(
        &self,
        url: &str,
    ) -> Result<(reqwest::Response, tokio::sync::SemaphorePermit<'_>), FileError> {
        let permit = self
            .fetch_slots
            .acquire()
            .await
            .map_err(std::io::Error::other)?;
        let response = self.http.get(url).await.map_err(unreachable)?;
        if !response.status().is_success() {
            let status = format!("the server answered HTTP {}", response.status());
            return Err(could_not_fetch(&status));
        }
        Ok((response, permit))
    }

    /// Downloads an http(s) URL into memory, refusing bodies over the size
    /// limit (images named in an agent's configuration).
    pub async fn fetch(&self, url: &str) -> Result<Upload, FileError> {
        let (mut response, _permit) = self.get(url).await?;
        let content_type = content_type(&response);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(Unreachable::from(e)))?
        {
            if bytes.len() + chunk.len() > self.max_bytes {
                let why = format!("the file is larger than {} bytes", self.max_bytes);
                return Err(could_not_fetch(&why));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Upload {
            file_name: file_name_of(url),
            content_type,
            bytes,
        })
    }

    /// Streams an http(s) URL into the store, chunk by chunk, for an input
    /// declared as `data_type`. `budget` is what the job may still fetch;
    /// the file's size is taken from it.
    pub async fn stage_url(
        &self,
        url: &str,
        data_type: &str,
        budget: &mut u64,
    ) -> Result<StagedFile, FileError> {
        let (response, _permit) = self.get(url).await?;
        let content_type = content_type(&response);
        let id = FileId::new();
        let mut writer = self.objects.writer(id);
        let mut digest = Digested::default();
        let streamed = self
            .stream_into(response, &mut writer, &mut digest, *budget)
            .await;
        let file_name = file_name_of(url);
        let checked = streamed.and_then(|()| {
            check_file_content(data_type, &digest.head)
                .map_err(|message| FileError::Rejected(format!("'{file_name}': {message}")))
        });
        if let Err(error) = checked {
            writer.abort().await;
            return Err(error);
        }
        writer.finish().await?;
        *budget -= digest.size;
        let content_type = content_type.unwrap_or_else(|| data_type.to_owned());
        Ok(self.staged(id, digest, file_name, content_type))
    }

    /// Copies a response's body into `writer`, refusing more than `budget` bytes.
    async fn stream_into(
        &self,
        mut response: reqwest::Response,
        writer: &mut ObjectWriter,
        digest: &mut Digested,
        budget: u64,
    ) -> Result<(), FileError> {
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(Unreachable::from(e)))?
        {
            if digest.size + chunk.len() as u64 > budget {
                let why = format!(
                    "the file is larger than the {} bytes a job may fetch",
                    self.fetch_limits.max_bytes_per_job
                );
                return Err(could_not_fetch(&why));
            }
            digest.update(&chunk);
            writer.write(chunk).await?;
        }
        Ok(())
    }

    /// Stores an upload for an input declared as `data_type`.
    pub async fn stage_upload(
        &self,
        upload: Upload,
        data_type: &str,
    ) -> Result<StagedFile, FileError> {
        check_file_content(data_type, &upload.bytes)
            .map_err(|message| FileError::Rejected(format!("'{}': {message}", upload.file_name)))?;
        let content_type = upload
            .content_type
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| data_type.to_owned());
        self.store_whole(upload.file_name, content_type, Bytes::from(upload.bytes))
            .await
    }

    /// Stores bytes agentd produced itself (a job's references and
    /// artifacts): no type check, the caller names the type.
    pub async fn stage_bytes(
        &self,
        file_name: String,
        content_type: String,
        bytes: &[u8],
    ) -> Result<StagedFile, FileError> {
        self.store_whole(file_name, content_type, Bytes::copy_from_slice(bytes))
            .await
    }

    /// Stores bytes held in memory with one write.
    async fn store_whole(
        &self,
        file_name: String,
        content_type: String,
        bytes: Bytes,
    ) -> Result<StagedFile, FileError> {
        let id = FileId::new();
        let mut digest = Digested::default();
        digest.update(&bytes);
        self.objects.put(id, bytes).await?;
        Ok(self.staged(id, digest, file_name, content_type))
    }

    /// A file just published, removed again unless kept.
    fn staged(
        &self,
        id: FileId,
        digest: Digested,
        file_name: String,
        content_type: String,
    ) -> StagedFile {
        let file = FileRef {
            id,
            file_name,
            content_type,
            size: digest.size,
            sha256: hex::encode(digest.hasher.finalize()),
        };
        StagedFile {
            file,
            objects: self.objects.clone(),
            kept: false,
        }
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
    pub async fn delete(&self, id: FileId) -> Result<(), FileError> {
        self.objects.delete(id).await
    }

    /// Removes the bytes of files whose records are gone; failures are
    /// logged (the sweep retries them) and returned.
    pub async fn delete_all(&self, ids: &[FileId]) -> Vec<(FileId, FileError)> {
        let mut failed = Vec::new();
        for id in ids {
            if let Err(error) = self.delete(*id).await {
                tracing::warn!(file = %id, %error, "removing a file's bytes failed");
                failed.push((*id, error));
            }
        }
        failed
    }

    pub async fn read(&self, id: FileId) -> Result<Vec<u8>, FileError> {
        Ok(self.objects.read(id).await?.into())
    }

    /// What the store holds that was last written before `before`: stored
    /// files by id, and partial files (never referred to by a row).
    pub async fn entries_older_than(&self, before: SystemTime) -> Result<Vec<Entry>, FileError> {
        self.objects.entries_older_than(before).await
    }

    /// Removes a partial file found by [`Self::entries_older_than`].
    pub async fn remove_partial(&self, name: &str) -> Result<(), FileError> {
        self.objects.remove_partial(name).await
    }
}

/// A URL that was refused, or whose server could not be reached: one text
/// for all, so that no answer reveals which addresses or ports exist.
fn unreachable(_: Unreachable) -> FileError {
    FileError::Rejected(UNREACHABLE_URL.into())
}

/// A URL whose server answered, but not with a file agentd takes.
fn could_not_fetch(why: &str) -> FileError {
    FileError::Rejected(format!("Could not fetch the URL: {why}."))
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The last segment of a URL's path, or `download`.
fn file_name_of(url: &str) -> String {
    url.rsplit('/')
        .next()
        .map(|name| name.split(['?', '#']).next().unwrap_or(name))
        .filter(|name| !name.is_empty())
        .unwrap_or("download")
        .to_owned()
}

/// The hash, size and leading bytes of a file, as it is written.
#[derive(Default)]
struct Digested {
    hasher: Sha256,
    size: u64,
    /// The leading bytes, to recognise the type.
    head: Vec<u8>,
}

impl Digested {
    fn update(&mut self, chunk: &[u8]) {
        let room = SNIFF_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }
}

/// A file's bytes in place, whose row is not yet committed: removed when
/// dropped, unless [`StagedFile::keep`] says a committed row refers to them.
#[derive(Debug)]
pub struct StagedFile {
    file: FileRef,
    objects: Objects,
    kept: bool,
}

impl StagedFile {
    pub fn file(&self) -> &FileRef {
        &self.file
    }

    /// A committed row now refers to the bytes: they stay.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.kept {
            self.objects.delete_soon(self.file.id);
        }
    }
}

#[cfg(test)]
mod tests;
