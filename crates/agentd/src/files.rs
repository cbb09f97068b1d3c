//! Files under `AGENTD_DATA_DIR/files`: uploaded inputs and inputs fetched
//! from URLs, checked against the input's declared type and hashed.
//!
//! Bytes are written to `<id>.part` and renamed to `<id>` once complete, so
//! a failed write (a full disk, a broken download) leaves no partial file.
//! A stored file stays *staged* until the database row that refers to it is
//! committed: a [`StagedFile`] dropped before [`StagedFile::keep`] removes
//! its bytes, so a request or job that fails, or is dropped, leaves nothing
//! behind. What a crash leaves is removed by the sweep (`crate::file_sweep`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use agentd_domain::input::check_file_content;
use agentd_domain::{FileId, FileRef, OrganizationId, Upload};
use agentd_net::{AddressPolicy, ClientSettings, GuardedClient, Unreachable};
use agentd_storage::{Storage, StorageError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The caller's fault: wrong content, an unknown id, a URL that failed.
    #[error("{0}")]
    Rejected(String),
    #[error("file store I/O failed: {0}")]
    Io(#[from] std::io::Error),
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
    root: PathBuf,
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

/// Leading bytes kept to recognise a fetched file's type.
const SNIFF_BYTES: usize = 8192;

/// Suffix of a file being written.
const PARTIAL_SUFFIX: &str = ".part";

/// Fetches at once when not configured.
pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 8;

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
        let (mut response, _permit) = self.get(url).await?;
        let content_type = content_type(&response);
        let id = FileId::new();
        let mut part = PartFile::create(&self.root, id).await?;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(Unreachable::from(e)))?
        {
            if part.size + chunk.len() as u64 > *budget {
                let why = format!(
                    "the file is larger than the {} bytes a job may fetch",
                    self.fetch_limits.max_bytes_per_job
                );
                return Err(could_not_fetch(&why));
            }
            part.write(&chunk).await?;
        }
        let file_name = file_name_of(url);
        check_file_content(data_type, &part.head)
            .map_err(|message| FileError::Rejected(format!("'{file_name}': {message}")))?;
        *budget -= part.size;
        let content_type = content_type.unwrap_or_else(|| data_type.to_owned());
        part.finish(&self.root, file_name, content_type).await
    }

    /// Stores an upload for an input declared as `data_type`.
    pub async fn stage_upload(
        &self,
        upload: Upload,
        data_type: &str,
    ) -> Result<StagedFile, FileError> {
        check_file_content(data_type, &upload.bytes)
            .map_err(|message| FileError::Rejected(format!("'{}': {message}", upload.file_name)))?;
        let id = FileId::new();
        let mut part = PartFile::create(&self.root, id).await?;
        part.write(&upload.bytes).await?;
        let content_type = upload
            .content_type
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| data_type.to_owned());
        part.finish(&self.root, upload.file_name, content_type)
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
        let mut part = PartFile::create(&self.root, FileId::new()).await?;
        part.write(bytes).await?;
        part.finish(&self.root, file_name, content_type).await
    }

    fn path(&self, id: FileId) -> PathBuf {
        self.root.join(id.to_string())
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
        remove_if_present(&self.path(id)).await
    }

    /// Removes the bytes of files whose records are gone; failures are
    /// logged (the sweep retries them) and returned.
    pub async fn delete_all(&self, ids: &[FileId]) -> Vec<(FileId, std::io::Error)> {
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
        Ok(tokio::fs::read(self.path(id)).await?)
    }

    /// What the store's folder holds that was last written before `before`:
    /// stored files by id, and partial files (never referred to by a row).
    /// Names agentd does not write are left out.
    pub async fn entries_older_than(&self, before: SystemTime) -> std::io::Result<Vec<DiskEntry>> {
        let mut entries = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.root).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let kind = match name.strip_suffix(PARTIAL_SUFFIX) {
                Some(stem) if stem.parse::<FileId>().is_ok() => DiskEntry::Partial(entry.path()),
                Some(_) => continue,
                None => match name.parse::<FileId>() {
                    Ok(id) if id.to_string() == name => DiskEntry::Stored(id),
                    _ => continue,
                },
            };
            let modified = entry.metadata().await?.modified()?;
            if modified < before {
                entries.push(kind);
            }
        }
        Ok(entries)
    }

    /// Removes a partial file found by [`Self::entries_older_than`].
    pub async fn remove_partial(&self, path: &Path) -> std::io::Result<()> {
        remove_if_present(path).await
    }
}

/// A file in the store's folder.
#[derive(Clone, Debug, PartialEq)]
pub enum DiskEntry {
    Stored(FileId),
    Partial(PathBuf),
}

async fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
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

/// A file being written as `<id>.part`, hashed as it goes; removed when
/// dropped unless [`PartFile::finish`] renamed it into place.
struct PartFile {
    id: FileId,
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    /// The leading bytes, to recognise the type.
    head: Vec<u8>,
    renamed: bool,
}

impl PartFile {
    async fn create(root: &Path, id: FileId) -> std::io::Result<Self> {
        let path = root.join(format!("{id}{PARTIAL_SUFFIX}"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Self {
            id,
            path,
            file,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            renamed: false,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let room = SNIFF_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Flushes, renames to `<id>` and hands the bytes over as staged.
    async fn finish(
        mut self,
        root: &Path,
        file_name: String,
        content_type: String,
    ) -> Result<StagedFile, FileError> {
        self.file.flush().await?;
        let target = root.join(self.id.to_string());
        tokio::fs::rename(&self.path, &target).await?;
        self.renamed = true;
        let file = FileRef {
            id: self.id,
            file_name,
            content_type,
            size: self.size,
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
        };
        Ok(StagedFile {
            file,
            path: target,
            kept: false,
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A file's bytes in place, whose row is not yet committed: removed when
/// dropped, unless [`StagedFile::keep`] says a committed row refers to them.
#[derive(Debug)]
pub struct StagedFile {
    file: FileRef,
    path: PathBuf,
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
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: [u8; 12] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];

    struct TempStore {
        dir: PathBuf,
        store: FileStore,
    }

    impl TempStore {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("agentd-files-test-{}", FileId::new()));
            let store = FileStore::new(&dir, 1024, AddressPolicy::default()).unwrap();
            Self { dir, store }
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.dir.join("files"))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn upload(bytes: &[u8]) -> Upload {
        Upload {
            file_name: "p.png".into(),
            content_type: None,
            bytes: bytes.to_vec(),
        }
    }

    #[tokio::test]
    async fn staged_bytes_stay_only_when_kept() {
        let t = TempStore::new();
        let dropped = t
            .store
            .stage_upload(upload(&PNG), "image/png")
            .await
            .unwrap();
        assert_eq!(t.names(), vec![dropped.file().id.to_string()]);
        drop(dropped);
        assert!(t.names().is_empty());

        let kept = t
            .store
            .stage_upload(upload(&PNG), "image/png")
            .await
            .unwrap();
        let file = kept.file().clone();
        kept.keep();
        assert_eq!(t.names(), vec![file.id.to_string()]);
        assert_eq!(file.size, PNG.len() as u64);
        assert_eq!(file.sha256, hex::encode(Sha256::digest(PNG)));
        assert_eq!(file.content_type, "image/png");
        assert_eq!(t.store.read(file.id).await.unwrap(), PNG);
    }

    #[tokio::test]
    async fn a_refused_upload_writes_nothing() {
        let t = TempStore::new();
        let refused = t.store.stage_upload(upload(b"text"), "image/png").await;
        assert!(matches!(refused, Err(FileError::Rejected(_))));
        assert!(t.names().is_empty());
    }

    #[tokio::test]
    async fn an_unfinished_part_file_is_removed_when_dropped() {
        let t = TempStore::new();
        let mut part = PartFile::create(&t.store.root, FileId::new())
            .await
            .unwrap();
        part.write(b"half of it").await.unwrap();
        assert_eq!(t.names().len(), 1);
        assert!(t.names()[0].ends_with(PARTIAL_SUFFIX));
        drop(part);
        assert!(t.names().is_empty());
    }

    #[tokio::test]
    async fn the_folder_lists_stored_and_partial_files_only() {
        let t = TempStore::new();
        let root = t.dir.join("files");
        let stored = FileId::new();
        let partial = root.join(format!("{}{PARTIAL_SUFFIX}", FileId::new()));
        for path in [
            root.join(stored.to_string()),
            partial.clone(),
            root.join("notes.txt"),
        ] {
            std::fs::write(path, b"x").unwrap();
        }
        let future = SystemTime::now() + std::time::Duration::from_secs(60);
        let mut entries = t.store.entries_older_than(future).await.unwrap();
        entries.sort_by_key(|entry| matches!(entry, DiskEntry::Partial(_)));
        assert_eq!(
            entries,
            vec![DiskEntry::Stored(stored), DiskEntry::Partial(partial)]
        );
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        assert!(t.store.entries_older_than(past).await.unwrap().is_empty());
    }
}
