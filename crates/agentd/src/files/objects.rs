//! Where files' bytes live: a folder (`file:///path`, by default
//! `$AGENTD_DATA_DIR/files`) or an S3-compatible bucket
//! (`s3://bucket/prefix`, configured by the standard `AWS_*` variables),
//! both through the `object_store` crate. A file is the object `<id>` under
//! the store's prefix, so a folder written by older versions is read as it is.
//!
//! An object appears only once complete: the folder store writes
//! `<id>#<n>` and renames it, a bucket publishes a single PUT or a completed
//! multipart upload. What a crash leaves is invisible to readers; the sweep
//! removes staging files of a folder, and a bucket's lifecycle rule
//! (`AbortIncompleteMultipartUpload`) the parts of unfinished uploads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentd_domain::FileId;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::io::AsyncWriteExt;

use super::FileError;

/// Suffix of a partial file written by agentd versions before the object
/// store (`<id>.part`); the sweep removes those left by a crash.
const LEGACY_PARTIAL_SUFFIX: &str = ".part";

/// Bytes buffered before a streamed file turns into a multipart upload
/// (S3 parts other than the last are at least 5 MiB).
const MULTIPART_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// A bucket that does not answer is given up on after this long, so that a
/// request or a job fails with a readable error instead of hanging.
const BUCKET_RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const BUCKET_MAX_RETRIES: usize = 3;
const BUCKET_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The object store and where agentd's files are in it.
#[derive(Clone, Debug)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The folder of a `file://` store (`None` for a bucket).
    folder: Option<PathBuf>,
}

/// An object the sweep may remove.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A complete file, by id.
    Stored(FileId),
    /// A partial file, by name under the store's prefix.
    Partial(String),
}

impl Objects {
    /// Opens `url` (`file:///path` or `s3://bucket/prefix`); `None` means
    /// `default_folder`. A bucket is not contacted yet: an unreachable one
    /// fails the requests that need it, not the start.
    pub fn open(url: Option<&str>, default_folder: &std::path::Path) -> anyhow::Result<Self> {
        let env = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Self::open_with_env(url, default_folder, env)
    }

    /// [`Self::open`], with a bucket configured by the `AWS_*` variables
    /// of `env` instead of the process's.
    pub fn open_with_env(
        url: Option<&str>,
        default_folder: &std::path::Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Self::folder(default_folder);
        };
        let parsed = url::Url::parse(url).map_err(|_| unsupported(url))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|_| unsupported(url))?;
                Self::folder(&path)
            }
            "s3" => Self::bucket(&parsed, env),
            _ => Err(unsupported(url)),
        }
    }

    fn folder(path: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| anyhow::anyhow!("creating the file store {}: {e}", path.display()))?;
        let store = LocalFileSystem::new_with_prefix(path)?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            folder: Some(std::fs::canonicalize(path)?),
        })
    }

    fn bucket(
        url: &url::Url,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(unsupported(url.as_str()));
        }
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: BUCKET_MAX_RETRIES,
            retry_timeout: BUCKET_RETRY_TIMEOUT,
        };
        // Client options first: `with_client_options` replaces them all,
        // `AWS_ALLOW_HTTP` among them.
        let mut builder = AmazonS3Builder::new()
            .with_client_options(ClientOptions::new().with_connect_timeout(BUCKET_CONNECT_TIMEOUT))
            .with_retry(retry);
        // What `AmazonS3Builder::from_env` reads, from `env`.
        for (name, value) in env {
            let name = name.to_ascii_lowercase();
            if !name.starts_with("aws_") {
                continue;
            }
            if let Ok(key) = name.parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        let store = builder
            .with_url(url.as_str())
            .build()
            .map_err(|e| anyhow::anyhow!("AGENTD_OBJECT_STORE_URL {url}: {e}"))?;
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .map_err(|e| anyhow::anyhow!("AGENTD_OBJECT_STORE_URL {url}: {e}"))?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            folder: None,
        })
    }

    /// Whether the bytes are in a bucket (reached over the network).
    pub fn is_remote(&self) -> bool {
        self.folder.is_none()
    }

    fn location(&self, name: &str) -> ObjectPath {
        self.prefix.child(name)
    }

    fn location_of(&self, id: FileId) -> ObjectPath {
        self.location(&id.to_string())
    }

    /// Stores `bytes` as file `id`, at once.
    pub async fn put(&self, id: FileId, bytes: Bytes) -> Result<(), FileError> {
        self.store
            .put(&self.location_of(id), PutPayload::from(bytes))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// A writer that streams file `id` into the store.
    pub fn writer(&self, id: FileId) -> ObjectWriter {
        ObjectWriter {
            inner: BufWriter::with_capacity(
                Arc::clone(&self.store),
                self.location_of(id),
                MULTIPART_CHUNK_BYTES,
            ),
            objects: self.clone(),
        }
    }

    pub async fn read(&self, id: FileId) -> Result<Bytes, FileError> {
        let location = self.location_of(id);
        let object = self.store.get(&location).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => FileError::Missing(id),
            other => self.error(other),
        })?;
        object.bytes().await.map_err(|e| self.error(e))
    }

    /// Removes file `id`; one already gone is not an error.
    pub async fn delete(&self, id: FileId) -> Result<(), FileError> {
        self.delete_name(&id.to_string()).await
    }

    async fn delete_name(&self, name: &str) -> Result<(), FileError> {
        match self.store.delete(&self.location(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(other) => Err(self.error(other)),
        }
    }

    /// Removes file `id` without waiting (from a destructor): at once in a
    /// folder, in a task for a bucket. What fails is left to the sweep.
    pub fn delete_soon(&self, id: FileId) {
        if let Some(folder) = &self.folder {
            let _ = std::fs::remove_file(folder.join(id.to_string()));
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let objects = self.clone();
            runtime.spawn(async move {
                if let Err(error) = objects.delete(id).await {
                    tracing::warn!(file = %id, %error, "removing an uncommitted file failed");
                }
            });
        }
    }

    /// The files and partial files last written before `before`. Names
    /// agentd does not write are left out.
    pub async fn entries_older_than(&self, before: SystemTime) -> Result<Vec<Entry>, FileError> {
        let mut entries = Vec::new();
        let mut listing = self.store.list(Some(&self.prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error(e))?;
            if SystemTime::from(meta.last_modified) >= before {
                continue;
            }
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if meta.location != self.location(name) {
                continue; // In a folder below the prefix: not agentd's.
            }
            if let Some(entry) = entry_of(name) {
                entries.push(entry);
            }
        }
        if let Some(folder) = &self.folder {
            entries.extend(staging_files_older_than(folder, before).await?);
        }
        Ok(entries)
    }

    /// Removes a partial file found by [`Self::entries_older_than`].
    pub async fn remove_partial(&self, name: &str) -> Result<(), FileError> {
        match &self.folder {
            // The store hides its own staging files: removed as files.
            Some(folder) if name.contains('#') => {
                match tokio::fs::remove_file(folder.join(name)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                    _ => Ok(()),
                }
            }
            _ => self.delete_name(name).await,
        }
    }

    /// A failure of the store: a folder's I/O error keeps its kind (a full
    /// disk is told apart); anything from a bucket means it is unavailable.
    fn error(&self, error: object_store::Error) -> FileError {
        if self.is_remote() {
            return FileError::Unavailable(error);
        }
        let kind = io_kind(&error).unwrap_or(std::io::ErrorKind::Other);
        FileError::Io(std::io::Error::new(kind, error))
    }
}

fn unsupported(url: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "AGENTD_OBJECT_STORE_URL '{url}' is not supported: use file:///path or s3://bucket/prefix"
    )
}

/// The kind of the I/O error inside an object store error, if any.
fn io_kind(error: &object_store::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = current.source();
    }
    None
}

/// What a name under the prefix is: a file id, or a legacy partial file.
fn entry_of(name: &str) -> Option<Entry> {
    if let Some(stem) = name.strip_suffix(LEGACY_PARTIAL_SUFFIX) {
        return stem
            .parse::<FileId>()
            .is_ok()
            .then(|| Entry::Partial(name.to_owned()));
    }
    match name.parse::<FileId>() {
        Ok(id) if id.to_string() == name => Some(Entry::Stored(id)),
        _ => None,
    }
}

/// The folder store's staging files (`<id>#<n>`) older than `before`.
async fn staging_files_older_than(
    folder: &std::path::Path,
    before: SystemTime,
) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut dir = tokio::fs::read_dir(folder).await?;
    while let Some(entry) = dir.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, suffix)) = name.split_once('#') else {
            continue;
        };
        let is_staging = stem.parse::<FileId>().is_ok()
            && !suffix.is_empty()
            && suffix.bytes().all(|b| b.is_ascii_digit());
        if is_staging && entry.metadata().await?.modified()? < before {
            entries.push(Entry::Partial(name.to_owned()));
        }
    }
    Ok(entries)
}

/// A file being streamed into the store; nothing is visible until
/// [`ObjectWriter::finish`].
pub struct ObjectWriter {
    inner: BufWriter,
    objects: Objects,
}

impl ObjectWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), FileError> {
        self.inner
            .put(chunk)
            .await
            .map_err(|e| self.objects.error(e))
    }

    /// Publishes the file.
    pub async fn finish(mut self) -> Result<(), FileError> {
        self.inner
            .shutdown()
            .await
            .map_err(|e| self.objects.error(io_into_object_error(e)))
    }

    /// Gives up, removing what was uploaded so far.
    pub async fn abort(mut self) {
        if let Err(error) = self.inner.abort().await {
            tracing::warn!(%error, "aborting an unfinished upload failed");
        }
    }
}

/// `shutdown` answers with an I/O error that wraps the store's error.
fn io_into_object_error(error: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "upload",
        source: Box::new(error),
    }
}
