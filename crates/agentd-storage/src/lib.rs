//! Storage for agentd. Handlers, engines and workers see only the
//! [`Storage`] trait; each database has its own module and migrations, and
//! [`connect`] picks one by the scheme of `DATABASE_URL`.

use std::sync::Arc;

use agentd_domain::agent::AgentStats;
use agentd_domain::{
    Agent, AgentId, AgentVersion, AgentVersionId, ApiKey, Credits, FileId, FileRef, Job, JobId,
    JobInput, JobOutcome, NewAgent, NewAgentVersion, Organization, OrganizationId, ReferenceId,
    Scope,
};
use std::time::Duration;

use agentd_domain::time::Timestamp;
use agentd_domain::webhook::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent};
use agentd_domain::{AgentDatum, DeliveryId, JobStatus, JobSummary, WebhookId};
use async_trait::async_trait;
use serde_json::Value;

mod job_lists;
pub mod postgres;
pub mod provider_limits;
pub mod sqlite;
mod status_events;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "unsupported database URL '{}': expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
        url_without_password(.0)
    )]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a storage failure means for the caller, so that the API and the
/// workers react to it without inspecting database-specific errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// A row with the same key exists.
    Conflict,
    /// The disk under the database is full: writes fail until space is freed.
    Full,
    /// Busy, locked, unreachable or out of pooled connections: try again later.
    Unavailable,
    /// Anything else (a bug, corrupt data, a failed migration).
    Internal,
}

impl StorageErrorKind {
    /// Worth retrying later: nothing is wrong with the request itself.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Full | Self::Unavailable)
    }
}

impl StorageError {
    pub fn kind(&self) -> StorageErrorKind {
        match self {
            Self::Conflict(_) => StorageErrorKind::Conflict,
            Self::Database(error) => database_error_kind(error),
            Self::Migration(sqlx::migrate::MigrateError::Execute(error)) => {
                database_error_kind(error)
            }
            Self::UnsupportedUrl(_) | Self::Migration(_) | Self::Corrupt(_) => {
                StorageErrorKind::Internal
            }
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind().is_transient()
    }
}

/// SQLite primary result codes (the low byte of an extended code).
mod sqlite_codes {
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const NOMEM: i64 = 7;
    pub const IOERR: i64 = 10;
    pub const FULL: i64 = 13;
    pub const CANTOPEN: i64 = 14;
}

/// PostgreSQL error codes (SQLSTATE) that mean "try again later".
fn postgres_error_kind(code: &str) -> StorageErrorKind {
    match code {
        // disk_full
        "53100" => StorageErrorKind::Full,
        // insufficient_resources, out_of_memory, too_many_connections
        "53000" | "53200" | "53300" => StorageErrorKind::Unavailable,
        // admin_shutdown, crash_shutdown, cannot_connect_now
        "57P01" | "57P02" | "57P03" => StorageErrorKind::Unavailable,
        // serialization_failure, deadlock_detected, lock_not_available
        "40001" | "40P01" | "55P03" => StorageErrorKind::Unavailable,
        // class 08: connection exceptions
        _ if code.starts_with("08") => StorageErrorKind::Unavailable,
        _ => StorageErrorKind::Internal,
    }
}

fn database_error_kind(error: &sqlx::Error) -> StorageErrorKind {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageErrorKind::Conflict,
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            postgres_error_kind(db.code().as_deref().unwrap_or_default())
        }
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            match primary {
                Some(sqlite_codes::FULL) => StorageErrorKind::Full,
                Some(
                    sqlite_codes::BUSY
                    | sqlite_codes::LOCKED
                    | sqlite_codes::NOMEM
                    | sqlite_codes::IOERR
                    | sqlite_codes::CANTOPEN,
                ) => StorageErrorKind::Unavailable,
                _ => StorageErrorKind::Internal,
            }
        }
        sqlx::Error::Io(io) if is_disk_full(io) => StorageErrorKind::Full,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StorageErrorKind::Unavailable,
        _ => StorageErrorKind::Internal,
    }
}

/// ENOSPC (or a disk quota): the file system has no room left.
pub fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Pooled connections to PostgreSQL per process. (SQLite keeps its own
    /// measured pool of four: it has one writer.)
    pub max_connections: u32,
}

impl ConnectOptions {
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Opens the database named by `url`, creating it and applying migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Storage>> {
    connect_with(url, &ConnectOptions::default()).await
}

/// [`connect`] with options: `sqlite://PATH` or `postgres://...` (also
/// `postgresql://...`).
pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Storage>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStorage::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PostgresStorage::connect(url, options).await?,
        ))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_owned()))
    }
}

/// `url` fit for logs and error messages: a password in it is replaced by `***`.
pub fn url_without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_owned(),
    }
}

/// A key to be stored: only its lookup prefix and hash, never the key.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub organization_id: OrganizationId,
    pub name: String,
    pub lookup: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<Scope>,
}

/// A stored key with the hash to compare against.
#[derive(Clone, Debug)]
pub struct StoredApiKey {
    pub key: ApiKey,
    pub key_hash: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentOrderField {
    Name,
    CreatedAt,
    UpdatedAt,
    MostRecentJob,
    JobCount,
    EngineClassId,
    /// The creating key (keys stand in for Roe's users).
    Creator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentOrdering {
    pub field: AgentOrderField,
    pub descending: bool,
}

impl Default for AgentOrdering {
    fn default() -> Self {
        Self {
            field: AgentOrderField::CreatedAt,
            descending: true,
        }
    }
}

impl AgentOrdering {
    /// Parses Roe's `ordering` parameter (`name`, `-created_at`, ...).
    pub fn parse(text: &str) -> Option<Self> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let field = match name {
            "name" => AgentOrderField::Name,
            "created_at" => AgentOrderField::CreatedAt,
            "updated_at" => AgentOrderField::UpdatedAt,
            "most_recent_job" => AgentOrderField::MostRecentJob,
            "job_count" => AgentOrderField::JobCount,
            "engine_class_id" => AgentOrderField::EngineClassId,
            "creator" => AgentOrderField::Creator,
            _ => return None,
        };
        Some(Self { field, descending })
    }
}

#[derive(Clone, Debug, Default)]
pub struct AgentQuery {
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    /// Case-insensitive substring of name, id, engine or version ids.
    pub search: Option<String>,
    pub engine_class_ids: Vec<String>,
    pub exclude_engine_class_id: Option<String>,
    /// Only these agents (a key restricted to some agents).
    pub only: Option<Vec<AgentId>>,
    /// Created by one of these keys (keys stand in for Roe's users).
    pub creator_ids: Vec<i64>,
    pub created: TimeRange,
    pub updated: TimeRange,
    pub most_recent_job: TimeRange,
    pub job_count_min: Option<i64>,
    pub job_count_max: Option<i64>,
    pub ordering: AgentOrdering,
    /// Zero-based offset and page length.
    pub offset: i64,
    pub limit: i64,
}

/// Inclusive bounds on a timestamp; either may be open.
#[derive(Clone, Debug, Default)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

impl<T> Page<T> {
    /// No items: what a listing whose filter can match nothing returns.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

/// The jobs an organization created on one day (UTC) with one model, and
/// what they cost: one bar segment of the console's usage chart.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageBucket {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The version's `model`; [`DEFAULT_MODEL_LABEL`] when it names none,
    /// [`DELETED_VERSION_LABEL`] when the version is gone.
    pub model: String,
    pub jobs: i64,
    pub cost: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

pub const DEFAULT_MODEL_LABEL: &str = "default";
pub const DELETED_VERSION_LABEL: &str = "unknown (version deleted)";

#[derive(Clone, Debug, Default)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub disable_cache: Option<bool>,
    pub cache_failed_jobs: Option<bool>,
    /// Another existing version of the agent to run from now on.
    pub current_version_id: Option<AgentVersionId>,
}

#[derive(Clone, Debug, Default)]
pub struct VersionUpdate {
    pub version_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: JobId,
    pub organization_id: OrganizationId,
    pub agent_id: AgentId,
    pub agent_version_id: AgentVersionId,
    pub inputs: Vec<JobInput>,
    pub metadata: Value,
    pub creator_key_id: Option<i64>,
    /// Version + canonical inputs: jobs with the same key give the same result.
    pub cache_key: Option<String>,
    /// The same key for the same agent within 24 h returns the first job.
    pub idempotency_key: Option<IdempotencyKey>,
    /// A cache hit: the job is created final (CACHED) with these results.
    pub cached: Option<CachedResult>,
    /// The files the job's inputs refer to, linked to it in the same transaction.
    pub files: Vec<JobFile>,
    /// A caller waits for the job's end (a sync run, an MCP tool call): the
    /// processes sharing a PostgreSQL database are notified when it ends.
    /// Other jobs end without a notification (their cancels are still
    /// announced), so that finishing jobs do not queue on PostgreSQL's
    /// notification lock. SQLite has one process and no notifications.
    pub awaited: bool,
}

/// A file a new job refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum JobFile {
    /// Stored for this job: its row is written with the job.
    New(FileRef),
    /// Stored earlier by the same organization (a file id given as input).
    Existing(FileId),
}

/// An `Idempotency-Key` with a hash of the canonical request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

#[derive(Clone, Debug)]
pub struct CachedResult {
    pub outputs: Option<Vec<AgentDatum>>,
    pub error_message: Option<String>,
    /// Who was to blame for a cached failure, as for the original job.
    pub error_kind: Option<agentd_domain::FailureKind>,
}

/// What `create_job` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New(JobId),
    /// An earlier job with the same idempotency key and the same request.
    Existing(JobId),
    /// The idempotency key was used within 24 h for a different request
    /// (that job's id); nothing was created.
    KeyReused(JobId),
}

impl Created {
    pub fn job_id(self) -> JobId {
        match self {
            Created::New(id) | Created::Existing(id) | Created::KeyReused(id) => id,
        }
    }
}

/// A worker's request for work.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub owner: String,
    pub limit: i64,
    pub lease: Duration,
    /// A job whose worker vanished this many times fails instead of retrying.
    pub max_attempts: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Held,
    /// The job was cancelled: stop working on it.
    Cancelled,
    /// Another worker holds it, or it is final: stop without recording.
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOrderField {
    Id,
    AgentVersionName,
    StatusCode,
    CreatedAt,
    LastUpdatedAt,
    Cost,
    /// From the first status event to the last non-CACHED one; unfinished
    /// jobs have none and sort first when ascending.
    Duration,
    /// Jobs have no grader scores here: every job ties, and the
    /// tie-breakers (creation time) decide.
    GraderScore,
}

#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    pub statuses: Vec<JobStatus>,
    pub version_name: Option<String>,
    /// Every pair must equal the job's metadata value.
    pub metadata: Vec<(String, Value)>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    /// Substring of the job id, its inputs or its metadata.
    pub search: Option<String>,
    /// Substring of the job id.
    pub job_id: Option<String>,
    /// Substring of the job's inputs (keys and values).
    pub job_inputs: Option<String>,
    /// Sort keys, each `(field, descending)`; newest first when empty.
    pub order_by: Vec<(JobOrderField, bool)>,
    pub offset: i64,
    pub limit: i64,
    /// The page total counts no further than this (Roe's `limit`: "caps
    /// the reported total so pagination stays fast"); `None` counts all.
    pub count_cap: Option<i64>,
}

impl JobQuery {
    /// Whether every job of the agent matches (no filter at all).
    pub fn is_unfiltered(&self) -> bool {
        self.statuses.is_empty()
            && self.version_name.is_none()
            && self.metadata.is_empty()
            && self.created_from.is_none()
            && self.created_to.is_none()
            && self.search.is_none()
            && self.job_id.is_none()
            && self.job_inputs.is_none()
    }

    /// Whether a filter or sort key reads the job's version (its name).
    pub fn reads_versions(&self) -> bool {
        self.version_name.is_some()
            || self
                .order_by
                .iter()
                .any(|(field, _)| *field == JobOrderField::AgentVersionName)
    }
}

/// What a worker reads before running a job.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The organization's balance now.
    pub credits: Credits,
    pub agent: Agent,
    /// `None` when the version was deleted after the job was accepted.
    pub version: Option<AgentVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteData {
    NotFound,
    NotFinal,
    /// Records removed; their bytes are the caller's to remove.
    Deleted {
        /// Input files whose last reference this job was.
        files: Vec<FileId>,
        /// The files of the job's references.
        references: Vec<FileId>,
        /// The files of the job's artifacts.
        artifacts: Vec<FileId>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    pub secret: Option<agentd_domain::webhook::WebhookSecret>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// A dispatcher's request for deliveries that are due.
#[derive(Clone, Debug)]
pub struct DeliveryClaim {
    pub owner: String,
    pub limit: i64,
    /// Longer than an attempt can take: an owner that vanished mid-attempt
    /// leaves the delivery to another once it expires.
    pub lease: Duration,
}

/// A delivery leased to a dispatcher, with what it needs to send it.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub job_id: JobId,
    pub event: WebhookEvent,
    /// Attempts made before this one.
    pub attempts_made: usize,
    pub url: String,
    pub secret: agentd_domain::webhook::WebhookSecret,
}

/// What happens to a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryNext {
    /// The receiver took it.
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// The schedule is over.
    GiveUp,
}

/// Which subscriptions of a job's agent a delivery is queued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryTargets {
    /// Every active subscription (a resend).
    AllActive,
    /// One subscription, when it is active (a resend to it).
    One(WebhookId),
}

/// How many jobs are in one status, for one engine and model (metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCount {
    pub status: JobStatus,
    pub engine_class_id: String,
    /// The `model` the job's version names; `None` when it names none (the
    /// server's default model runs it) or the version was deleted.
    pub model: Option<String>,
    pub count: i64,
}

impl DeleteData {
    /// Sorts the files released by erasing a job's data into inputs,
    /// references and artifacts, by what the job had saved (`saved`).
    pub(crate) fn deleted(released: Vec<FileId>, saved: &[(FileId, JobReferenceKind)]) -> Self {
        let (mut files, mut references, mut artifacts) = (Vec::new(), Vec::new(), Vec::new());
        for id in released {
            match saved.iter().find(|(file, _)| *file == id) {
                Some((_, JobReferenceKind::Reference)) => references.push(id),
                Some((_, JobReferenceKind::Artifact)) => artifacts.push(id),
                None => files.push(id),
            }
        }
        Self::Deleted {
            files,
            references,
            artifacts,
        }
    }
}

/// What a job saved for its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobReferenceKind {
    /// A file served as it is (a derived PDF, a page image, a web page).
    Reference,
    /// A keyed result (JSON) served under its artifact key.
    Artifact,
}

impl JobReferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Artifact => "artifact",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "reference" => Ok(Self::Reference),
            "artifact" => Ok(Self::Artifact),
            other => Err(StorageError::Corrupt(format!(
                "unknown job reference kind '{other}'"
            ))),
        }
    }
}

/// A reference or artifact to record; its bytes are already stored as
/// `file`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJobReference {
    pub id: ReferenceId,
    pub kind: JobReferenceKind,
    /// Artifacts only: unique within the job.
    pub artifact_key: Option<String>,
    pub file: FileRef,
}

/// A stored reference or artifact of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobReference {
    pub id: ReferenceId,
    pub job_id: JobId,
    pub kind: JobReferenceKind,
    pub artifact_key: Option<String>,
    pub file: FileRef,
}

/// Inserting a reference row: a unique violation can only be a reused
/// artifact key.
pub(crate) fn reference_insert_error(
    error: sqlx::Error,
    reference: &NewJobReference,
) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(format!(
            "artifact '{}'",
            reference.artifact_key.as_deref().unwrap_or_default()
        )),
        _ => error.into(),
    }
}

/// What `add_job_reference` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceAdded {
    Added,
    /// Added in place of the artifact with the same key, whose record is
    /// gone: its bytes (this file) are the caller's to remove.
    Replaced(FileId),
    /// The job is gone: nothing was recorded.
    JobGone,
}

/// How a reference is looked up within its job.
#[derive(Clone, Copy, Debug)]
pub enum ReferenceLookup<'a> {
    Reference(ReferenceId),
    ArtifactKey(&'a str),
}

/// What the processes sharing a database announce to each other about jobs,
/// so that none has to poll for it (PostgreSQL's `LISTEN/NOTIFY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobNotice {
    /// Jobs became runnable: created, retried or handed back.
    Runnable,
    /// A job became final (finished, failed, cancelled): its waiters can
    /// read it, and an attempt still running somewhere is moot.
    Final(JobId),
    /// The connection that listens was lost and is back: notices sent
    /// meanwhile are gone, so whoever waits should look again.
    Resumed,
}

/// A subscription to [`JobNotice`]s from every process on the database.
#[async_trait]
pub trait JobNotices: Send {
    /// The next notice. An error means the database is unreachable; the
    /// next call connects again (and then answers [`JobNotice::Resumed`]).
    async fn next(&mut self) -> Result<JobNotice>;
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query (readiness).
    async fn ping(&self) -> Result<()>;

    /// Notices from the other processes on this database; `None` where the
    /// database cannot send them (SQLite: its processes poll).
    fn job_notices(&self) -> Option<Box<dyn JobNotices>> {
        None
    }

    // Organizations
    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<Organization>;
    async fn get_organization(&self, id: OrganizationId) -> Result<Option<Organization>>;
    async fn count_organizations(&self) -> Result<i64>;
    /// Returns false when the organization does not exist.
    async fn set_credits(&self, id: OrganizationId, credits: Credits) -> Result<bool>;

    // API keys
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey>;
    async fn find_api_key(&self, lookup: &str) -> Result<Option<StoredApiKey>>;
    /// Returns false when no live key has that lookup.
    async fn revoke_api_key(&self, lookup: &str) -> Result<bool>;

    // Agents
    async fn create_agent(&self, agent: NewAgent) -> Result<(Agent, AgentVersion)>;
    async fn get_agent(&self, org: OrganizationId, id: AgentId) -> Result<Option<Agent>>;
    async fn list_agents(&self, org: OrganizationId, query: &AgentQuery) -> Result<Page<Agent>>;
    async fn update_agent(
        &self,
        org: OrganizationId,
        id: AgentId,
        update: AgentUpdate,
    ) -> Result<Option<Agent>>;
    /// Deletes the agent, its versions, its jobs and the files only they
    /// referred to; returns those files' ids (their bytes are the caller's to
    /// remove), or `None` when there is no such agent.
    async fn delete_agent(&self, org: OrganizationId, id: AgentId) -> Result<Option<Vec<FileId>>>;

    /// The organization's credits, the agent and the version a job runs;
    /// `None` when the agent is gone.
    async fn run_context(
        &self,
        org: OrganizationId,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<RunContext>>;

    // Versions
    async fn list_versions(&self, agent: AgentId) -> Result<Vec<AgentVersion>>;
    async fn get_version(
        &self,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<AgentVersion>>;
    /// Stores a new version and makes it the agent's current one.
    async fn create_version(
        &self,
        agent: AgentId,
        version: NewAgentVersion,
    ) -> Result<AgentVersion>;
    async fn update_version(
        &self,
        agent: AgentId,
        version: AgentVersionId,
        update: VersionUpdate,
    ) -> Result<Option<AgentVersion>>;
    async fn delete_version(&self, agent: AgentId, version: AgentVersionId) -> Result<bool>;

    // Jobs
    /// Persists a job (PENDING, or CACHED for a cache hit) with its first
    /// status event; with an idempotency key seen in the last 24 h for the
    /// same agent, returns that job instead.
    async fn create_job(&self, job: NewJob) -> Result<Created>;
    /// Persists many jobs in one transaction, in order; each idempotency key
    /// behaves as in `create_job`. All or nothing: when a key was used for a
    /// different request, nothing is stored and the answer is that one
    /// `KeyReused`.
    async fn create_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Created>>;
    async fn get_job(&self, org: OrganizationId, id: JobId) -> Result<Option<Job>>;
    /// The jobs of the organization among `ids`, in no particular order,
    /// without their status events (for bulk answers).
    async fn get_jobs(&self, org: OrganizationId, ids: &[JobId]) -> Result<Vec<Job>>;
    /// Status fields of the organization's jobs among `ids`, in no order.
    async fn get_job_summaries(
        &self,
        org: OrganizationId,
        ids: &[JobId],
    ) -> Result<Vec<JobSummary>>;
    async fn list_jobs(
        &self,
        org: OrganizationId,
        agent: AgentId,
        query: &JobQuery,
    ) -> Result<Page<Job>>;
    /// Takes up to `limit` runnable jobs (PENDING, RETRY, or STARTED with an
    /// expired lease, which first becomes RETRY) and leases them to `owner`.
    async fn claim_jobs(&self, request: &ClaimRequest) -> Result<Vec<Job>>;
    async fn renew_lease(&self, id: JobId, owner: &str, lease: Duration) -> Result<LeaseState>;
    /// Puts a job `owner` runs back in the queue at once (RETRY), the
    /// attempt not counted: its process is stopping. `false` when `owner`
    /// no longer holds it (finished, cancelled or its lease taken over).
    async fn hand_back_job(&self, id: JobId, owner: &str) -> Result<bool>;
    /// Adds a STARTED event with `message` (how far a running job has got,
    /// "batch 3/20 done") to a job `owner` still runs; false when it no
    /// longer does (cancelled, lease lost), and nothing is written then.
    async fn record_progress(&self, id: JobId, owner: &str, message: &str) -> Result<bool>;
    /// Records the outcome and charges its cost to the organization, in one
    /// transaction. A job that is already final is left as it is.
    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<()>;
    /// `finish_job` then `claim_jobs`; backends may do both in one
    /// transaction, the hot path of a busy worker.
    async fn finish_and_claim(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        next: &ClaimRequest,
    ) -> Result<Vec<Job>> {
        self.finish_job(id, outcome).await?;
        self.claim_jobs(next).await
    }
    /// Marks a job CANCELLED unless it is final; returns its status after,
    /// or `None` when there is no such job.
    async fn cancel_job(&self, org: OrganizationId, id: JobId) -> Result<Option<JobStatus>>;
    /// Cancels every unfinished job of an agent; returns their ids.
    async fn cancel_agent_jobs(&self, org: OrganizationId, agent: AgentId) -> Result<Vec<JobId>>;
    /// Erases a final job's inputs, outputs and links to files (and the
    /// records of files no other job refers to); keeps status and cost.
    async fn delete_job_data(&self, org: OrganizationId, id: JobId) -> Result<DeleteData>;
    /// The newest finished job of the version with this cache key.
    async fn find_cached(
        &self,
        version: AgentVersionId,
        cache_key: &str,
        include_failed: bool,
    ) -> Result<Option<Job>>;

    /// Every job of every organization counted by status, engine and model:
    /// one grouped scan, so that several processes sharing a database all
    /// report the same numbers.
    async fn count_jobs(&self) -> Result<Vec<JobCount>>;

    /// Final jobs last changed before `finished_before` whose data is still
    /// kept, oldest first, at most `limit` (the retention sweep erases
    /// their data with [`Storage::delete_job_data`]).
    async fn jobs_past_retention(
        &self,
        finished_before: Timestamp,
        limit: i64,
    ) -> Result<Vec<(OrganizationId, JobId)>>;

    // Provider limits shared by every process on the database
    /// Records the start of a call to `provider` when fewer than
    /// `per_minute` calls started in the last minute.
    async fn admit_provider_call(
        &self,
        provider: &str,
        per_minute: u32,
    ) -> Result<provider_limits::Admission>;
    /// Takes slot `slot` (a fresh id) of `provider` for `lease` when fewer
    /// than `max_in_flight` live slots are held.
    async fn take_provider_slot(
        &self,
        provider: &str,
        max_in_flight: usize,
        slot: &str,
        lease: Duration,
    ) -> Result<provider_limits::Admission>;
    /// Extends a held slot's lease; false when it had expired and is gone.
    async fn renew_provider_slot(&self, slot: &str, lease: Duration) -> Result<bool>;
    async fn release_provider_slot(&self, slot: &str) -> Result<()>;

    // Files
    /// Records a file that no job refers to yet: unless a job links it, the
    /// sweep removes it after its grace period. Files of runs are recorded
    /// with their job instead ([`NewJob::files`]).
    async fn create_file(&self, org: OrganizationId, file: &FileRef) -> Result<()>;
    async fn get_file(&self, org: OrganizationId, id: FileId) -> Result<Option<FileRef>>;
    /// Records a file fetched for an input of an unfinished job, links it to
    /// the job and makes the input refer to it, in one transaction. Returns
    /// false (and records nothing) when the job is gone or already final.
    async fn attach_fetched_file(
        &self,
        job: JobId,
        input_key: &str,
        file: &FileRef,
    ) -> Result<bool>;
    /// Deletes the records of files created before `created_before` that no
    /// job refers to; returns their ids (their bytes are the caller's to remove).
    async fn delete_unreferenced_files(&self, created_before: Timestamp) -> Result<Vec<FileId>>;
    /// Which of `ids` have a file record (in any organization).
    async fn recorded_files(&self, ids: &[FileId]) -> Result<Vec<FileId>>;

    // Webhooks. Deliveries of a job's final event are queued by the
    // backend in the transaction that makes the job final.
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()>;
    /// An agent's subscriptions, oldest first.
    async fn list_webhooks(
        &self,
        org: OrganizationId,
        agent: AgentId,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Webhook>>;
    async fn get_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
    ) -> Result<Option<Webhook>>;
    async fn update_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
        update: WebhookUpdate,
    ) -> Result<Option<Webhook>>;
    /// Deletes a subscription and its deliveries; false when there is none.
    async fn delete_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
    ) -> Result<bool>;
    /// A subscription's deliveries, newest first, each with its attempts.
    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        offset: i64,
        limit: i64,
    ) -> Result<Page<WebhookDelivery>>;
    /// Queues a delivery of `event` about a final job to `targets` among
    /// the subscriptions of its agent; returns how many were queued.
    async fn queue_deliveries(
        &self,
        job: JobId,
        event: WebhookEvent,
        targets: DeliveryTargets,
    ) -> Result<u64>;
    /// Leases up to `limit` due deliveries of active subscriptions to
    /// `owner`, the longest waiting first.
    async fn claim_deliveries(&self, claim: &DeliveryClaim) -> Result<Vec<DueDelivery>>;
    /// Records an attempt and what follows it; false (nothing recorded)
    /// when `owner` no longer holds the delivery.
    async fn record_delivery_attempt(
        &self,
        id: DeliveryId,
        owner: &str,
        attempt: &DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<bool>;
    // Usage
    /// The organization's jobs created at or after `since`, grouped by day
    /// and model, oldest day first.
    async fn usage_since(&self, org: OrganizationId, since: Timestamp) -> Result<Vec<UsageBucket>>;

    // References and artifacts
    /// Records a file a job saved (its bytes already in the file store) as
    /// the job's reference or artifact, linked to the job like its input
    /// files, in one transaction. An artifact replaces the job's artifact
    /// with the same key (saved by an earlier attempt of the job).
    async fn add_job_reference(
        &self,
        job: JobId,
        reference: &NewJobReference,
    ) -> Result<ReferenceAdded>;
    /// A reference (by id) or artifact (by key) of the organization's job.
    async fn find_job_reference(
        &self,
        org: OrganizationId,
        job: JobId,
        lookup: ReferenceLookup<'_>,
    ) -> Result<Option<JobReference>>;
}

/// Agent stats are part of [`Agent`]; a helper for implementations.
pub(crate) fn stats(job_count: i64, most_recent_job: Option<String>) -> AgentStats {
    AgentStats {
        job_count,
        most_recent_job: most_recent_job.and_then(|t| agentd_domain::time::parse(&t)),
    }
}

#[cfg(test)]
mod tests {
    use super::url_without_password;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            url_without_password("postgres://agentd:s3cr3t@db:5432/agentd?sslmode=require"),
            "postgres://agentd:***@db:5432/agentd?sslmode=require"
        );
        assert_eq!(
            url_without_password("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            url_without_password("sqlite://./data/agentd.db"),
            "sqlite://./data/agentd.db"
        );
    }
}
