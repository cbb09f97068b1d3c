//! SQLite: one file, WAL mode, migrations embedded in the binary.

mod files;
mod jobs;
mod references;
mod rows;
mod usage;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use agentd_domain::time::{self, Timestamp};
use agentd_domain::JobSummary;
use agentd_domain::{
    Agent, AgentId, AgentVersion, AgentVersionId, ApiKey, Credits, FileId, FileRef, Job, JobId,
    JobOutcome, JobStatus, NewAgent, NewAgentVersion, Organization, OrganizationId,
};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use agentd_domain::webhook::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent};
use agentd_domain::{DeliveryId, WebhookId};

use crate::status_events::contains_pattern;
use crate::{
    AgentOrderField, AgentQuery, AgentUpdate, ClaimRequest, Created, DeleteData, DeliveryClaim,
    DeliveryNext, DeliveryTargets, DueDelivery, JobQuery, JobReference, LeaseState, NewApiKey,
    NewJob, NewJobReference, Page, ReferenceAdded, ReferenceLookup, Result, RunContext, Storage,
    StorageError, StoredApiKey, VersionUpdate, WebhookUpdate,
};
use rows::{agent_from_row, file_from_row, key_from_row, org_from_row, version_from_row};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStorage {
    pool: SqlitePool,
    /// SQLite has one writer; queueing writers here instead of in SQLite's
    /// busy handler (which sleeps in steps of milliseconds) keeps latency low.
    write_lock: tokio::sync::Mutex<()>,
    /// When claims last looked for expired leases (ms since the epoch).
    last_requeue_ms: std::sync::atomic::AtomicI64,
}

/// A write transaction holding the process's write lock.
pub(super) struct WriteTx<'a> {
    tx: sqlx::Transaction<'a, Sqlite>,
    _lock: tokio::sync::MutexGuard<'a, ()>,
}

impl WriteTx<'_> {
    pub(super) async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

/// Keeps a connection only when it left its transaction. After `database or
/// disk is full` (or an I/O error) SQLite rolls the transaction back by
/// itself; sqlx's own ROLLBACK then fails and it still counts the
/// connection as inside a transaction, so every later `BEGIN` on it would
/// fail ("begin_with at non-zero transaction depth") until a restart. Such a
/// connection is closed instead and the pool opens a fresh one.
async fn discard_if_in_transaction(
    connection: &mut sqlx::SqliteConnection,
) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    // A dropped transaction queues its rollback; the ping is queued behind
    // it, so the depth read after the ping is the depth once it ran.
    connection.ping().await?;
    let keep = !connection.is_in_transaction();
    if !keep {
        tracing::warn!("discarding a database connection left inside a failed transaction");
    }
    Ok(keep)
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

const AGENT_COLUMNS: &str = "a.id, a.organization_id, a.name, a.engine_class_id, a.disable_cache, \
    a.cache_failed_jobs, a.current_version_id, a.creator_key_id, a.created_at, a.updated_at, \
    a.job_count, a.most_recent_job";

impl SqliteStorage {
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StorageError::Database(sqlx::Error::Configuration(
                        format!("cannot create {}: {e}", parent.display()).into(),
                    ))
                })?;
            }
        }
        // Each connection is a thread; writes are serialised anyway, and more
        // than a few readers only add context switches (measured: 4 beat 8).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .after_release(|connection, _| Box::pin(discard_if_in_transaction(connection)))
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            last_requeue_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// A transaction that takes the write lock at once, so that the busy
    /// timeout applies instead of failing when a read is upgraded to a write.
    /// Whether a claim should look for expired leases: at most every
    /// quarter lease (and every second), not on every claim of a busy queue.
    pub(super) fn requeue_due(&self, lease: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let now = time::now().timestamp_millis();
        let every = lease.min(Duration::from_secs(4)).as_millis() as i64 / 4;
        let last = self.last_requeue_ms.load(Ordering::Relaxed);
        now - last >= every
            && self
                .last_requeue_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    pub(super) async fn begin_write(&self) -> Result<WriteTx<'_>> {
        let lock = self.write_lock.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _lock: lock })
    }

    async fn insert_version(
        tx: &mut sqlx::SqliteConnection,
        id: AgentVersionId,
        agent: AgentId,
        version: &NewAgentVersion,
        now: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO agent_versions (id, agent_id, version_name, description, \
             input_definitions, engine_config, creator_key_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(agent.to_string())
        .bind(
            version
                .version_name
                .clone()
                .unwrap_or_else(|| AgentVersion::DEFAULT_NAME.to_owned()),
        )
        .bind(&version.description)
        .bind(serde_json::to_string(&version.input_definitions).expect("definitions serialize"))
        .bind(version.engine_config.to_string())
        .bind(version.creator_key_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

fn now_text() -> (Timestamp, String) {
    let now = time::now();
    let text = time::format(&now);
    (now, text)
}

fn push_agent_filters<'q>(
    builder: &mut QueryBuilder<'q, Sqlite>,
    org: OrganizationId,
    query: &'q AgentQuery,
) {
    builder
        .push(" WHERE a.organization_id = ")
        .push_bind(org.to_string());
    if let Some(name) = &query.name {
        builder
            .push(" AND a.name LIKE ")
            .push_bind(contains_pattern(name))
            .push(" ESCAPE '\\'");
    }
    if let Some(search) = &query.search {
        let pattern = contains_pattern(search);
        builder
            .push(" AND (a.name LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR a.id LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR a.engine_class_id LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR EXISTS (SELECT 1 FROM agent_versions v WHERE v.agent_id = a.id AND v.id LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'))");
    }
    if !query.engine_class_ids.is_empty() {
        builder.push(" AND a.engine_class_id IN (");
        let mut list = builder.separated(", ");
        for id in &query.engine_class_ids {
            list.push_bind(id.as_str());
        }
        builder.push(")");
    }
    if let Some(excluded) = &query.exclude_engine_class_id {
        builder
            .push(" AND a.engine_class_id <> ")
            .push_bind(excluded.as_str());
    }
    if !query.creator_ids.is_empty() {
        builder.push(" AND a.creator_key_id IN (");
        let mut list = builder.separated(", ");
        for id in &query.creator_ids {
            list.push_bind(*id);
        }
        builder.push(")");
    }
    let ranges = [
        ("a.created_at", &query.created),
        ("a.updated_at", &query.updated),
        ("a.most_recent_job", &query.most_recent_job),
    ];
    for (column, range) in ranges {
        if let Some(from) = &range.from {
            builder
                .push(format!(" AND {column} >= "))
                .push_bind(agentd_domain::time::format(from));
        }
        if let Some(to) = &range.to {
            builder
                .push(format!(" AND {column} <= "))
                .push_bind(agentd_domain::time::format(to));
        }
    }
    if let Some(min) = query.job_count_min {
        builder.push(" AND a.job_count >= ").push_bind(min);
    }
    if let Some(max) = query.job_count_max {
        builder.push(" AND a.job_count <= ").push_bind(max);
    }
    if let Some(only) = &query.only {
        builder.push(" AND a.id IN (");
        let mut list = builder.separated(", ");
        for id in only {
            list.push_bind(id.to_string());
        }
        builder.push(")");
        if only.is_empty() {
            builder.push(" AND 0");
        }
    }
}

fn order_column(field: AgentOrderField) -> &'static str {
    match field {
        AgentOrderField::Name => "a.name COLLATE NOCASE",
        AgentOrderField::CreatedAt => "a.created_at",
        AgentOrderField::UpdatedAt => "a.updated_at",
        AgentOrderField::MostRecentJob => "most_recent_job",
        AgentOrderField::JobCount => "job_count",
        AgentOrderField::EngineClassId => "a.engine_class_id",
        AgentOrderField::Creator => "a.creator_key_id",
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> Result<()> {
        // A table, not `SELECT 1`: SQLite must read the database file to answer.
        sqlx::query("SELECT 1 FROM organizations LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<Organization> {
        let (now, now_text) = now_text();
        let inserted = sqlx::query(
            "INSERT INTO organizations (id, name, credits, spent, created_at) VALUES (?, ?, NULL, 0, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(&now_text)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::Conflict(format!("organization {id}")));
        }
        Ok(Organization {
            id,
            name: name.to_owned(),
            credits: Credits::UNLIMITED,
            spent: 0.0,
            created_at: now,
        })
    }

    async fn get_organization(&self, id: OrganizationId) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn count_organizations(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn set_credits(&self, id: OrganizationId, credits: Credits) -> Result<bool> {
        let done = sqlx::query("UPDATE organizations SET credits = ? WHERE id = ?")
            .bind(credits.0)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let (_, now_text) = now_text();
        let scopes: Vec<String> = key.scopes.iter().map(ToString::to_string).collect();
        let result = sqlx::query(
            "INSERT INTO api_keys (organization_id, name, lookup, key_hash, scopes, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(key.organization_id.to_string())
        .bind(&key.name)
        .bind(&key.lookup)
        .bind(&key.key_hash)
        .bind(serde_json::to_string(&scopes).expect("scopes serialize"))
        .bind(&now_text)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(key_from_row(&row)?.key),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StorageError::Conflict("API key".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn find_api_key(&self, lookup: &str) -> Result<Option<StoredApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE lookup = ?")
            .bind(lookup)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn revoke_api_key(&self, lookup: &str) -> Result<bool> {
        let (_, now_text) = now_text();
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE lookup = ? AND revoked_at IS NULL",
        )
        .bind(&now_text)
        .bind(lookup)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<(Agent, AgentVersion)> {
        let (_, now_text) = now_text();
        let agent_id = AgentId::new();
        let version_id = AgentVersionId::new();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO agents (id, organization_id, name, engine_class_id, disable_cache, \
             cache_failed_jobs, current_version_id, creator_key_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?, ?)",
        )
        .bind(agent_id.to_string())
        .bind(agent.organization_id.to_string())
        .bind(agent.name.as_str())
        .bind(&agent.engine_class_id)
        .bind(version_id.to_string())
        .bind(agent.creator_key_id)
        .bind(&now_text)
        .bind(&now_text)
        .execute(&mut *tx)
        .await?;
        Self::insert_version(
            &mut tx,
            version_id,
            agent_id,
            &agent.first_version,
            &now_text,
        )
        .await?;
        tx.commit().await?;
        let created = self
            .get_agent(agent.organization_id, agent_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt("agent vanished after insert".into()))?;
        let version = self
            .get_version(agent_id, version_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt("version vanished after insert".into()))?;
        Ok((created, version))
    }

    async fn get_agent(&self, org: OrganizationId, id: AgentId) -> Result<Option<Agent>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.organization_id = ? AND a.id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn run_context(
        &self,
        org: OrganizationId,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<RunContext>> {
        // One round trip: this runs for every job.
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, o.credits AS organization_credits, v.id AS v_id, \
             v.agent_id AS v_agent_id, v.version_name AS v_version_name, \
             v.description AS v_description, v.input_definitions AS v_input_definitions, \
             v.engine_config AS v_engine_config, v.creator_key_id AS v_creator_key_id, \
             v.created_at AS v_created_at FROM agents a \
             JOIN organizations o ON o.id = a.organization_id \
             LEFT JOIN agent_versions v ON v.agent_id = a.id AND v.id = ? \
             WHERE a.organization_id = ? AND a.id = ?"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(version.to_string())
            .bind(org.to_string())
            .bind(agent.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let version_found: Option<String> = sqlx::Row::try_get(&row, "v_id")?;
        Ok(Some(RunContext {
            credits: Credits(sqlx::Row::try_get(&row, "organization_credits")?),
            agent: agent_from_row(&row)?,
            version: version_found
                .map(|_| rows::prefixed_version_from_row(&row, "v_"))
                .transpose()?,
        }))
    }

    async fn list_agents(&self, org: OrganizationId, query: &AgentQuery) -> Result<Page<Agent>> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM agents a");
        push_agent_filters(&mut count, org, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut select =
            QueryBuilder::<Sqlite>::new(format!("SELECT {AGENT_COLUMNS} FROM agents a"));
        push_agent_filters(&mut select, org, query);
        let direction = if query.ordering.descending {
            "DESC"
        } else {
            "ASC"
        };
        select.push(format!(
            " ORDER BY {} {direction}, a.created_at {direction}, a.id {direction} LIMIT ",
            order_column(query.ordering.field)
        ));
        select
            .push_bind(query.limit)
            .push(" OFFSET ")
            .push_bind(query.offset);
        let rows = select.build().fetch_all(&self.pool).await?;
        let items = rows.iter().map(agent_from_row).collect::<Result<_>>()?;
        Ok(Page { items, total })
    }

    async fn update_agent(
        &self,
        org: OrganizationId,
        id: AgentId,
        update: AgentUpdate,
    ) -> Result<Option<Agent>> {
        let (_, now_text) = now_text();
        let done = sqlx::query(
            "UPDATE agents SET name = COALESCE(?, name), disable_cache = COALESCE(?, disable_cache), \
             cache_failed_jobs = COALESCE(?, cache_failed_jobs), \
             current_version_id = COALESCE(?, current_version_id), updated_at = ? \
             WHERE organization_id = ? AND id = ?",
        )
        .bind(update.name)
        .bind(update.disable_cache)
        .bind(update.cache_failed_jobs)
        .bind(update.current_version_id.map(|id| id.to_string()))
        .bind(&now_text)
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_agent(org, id).await
    }

    async fn delete_agent(&self, org: OrganizationId, id: AgentId) -> Result<Option<Vec<FileId>>> {
        let mut tx = self.begin_write().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agents WHERE organization_id = ? AND id = ?")
                .bind(org.to_string())
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Ok(None);
        }
        let files = files::unlink_jobs(&mut tx, "agent_id = ?", &id.to_string()).await?;
        // Versions and jobs go with the agent (foreign keys).
        sqlx::query("DELETE FROM agents WHERE organization_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(files))
    }

    async fn list_versions(&self, agent: AgentId) -> Result<Vec<AgentVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM agent_versions WHERE agent_id = ? ORDER BY created_at DESC, rowid DESC",
        )
        .bind(agent.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn get_version(
        &self,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<AgentVersion>> {
        let row = sqlx::query("SELECT * FROM agent_versions WHERE agent_id = ? AND id = ?")
            .bind(agent.to_string())
            .bind(version.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn create_version(
        &self,
        agent: AgentId,
        version: NewAgentVersion,
    ) -> Result<AgentVersion> {
        let (_, now_text) = now_text();
        let version_id = AgentVersionId::new();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE agents SET current_version_id = ?, updated_at = ? WHERE id = ?")
            .bind(version_id.to_string())
            .bind(&now_text)
            .bind(agent.to_string())
            .execute(&mut *tx)
            .await?;
        Self::insert_version(&mut tx, version_id, agent, &version, &now_text).await?;
        tx.commit().await?;
        self.get_version(agent, version_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt("version vanished after insert".into()))
    }

    async fn update_version(
        &self,
        agent: AgentId,
        version: AgentVersionId,
        update: VersionUpdate,
    ) -> Result<Option<AgentVersion>> {
        let done = sqlx::query(
            "UPDATE agent_versions SET version_name = COALESCE(?, version_name), \
             description = COALESCE(?, description) WHERE agent_id = ? AND id = ?",
        )
        .bind(update.version_name)
        .bind(update.description)
        .bind(agent.to_string())
        .bind(version.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_version(agent, version).await
    }

    async fn delete_version(&self, agent: AgentId, version: AgentVersionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM agent_versions WHERE agent_id = ? AND id = ?")
            .bind(agent.to_string())
            .bind(version.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_job(&self, job: NewJob) -> Result<Created> {
        jobs::create_job(self, job).await
    }

    async fn create_jobs(&self, new_jobs: Vec<NewJob>) -> Result<Vec<Created>> {
        jobs::create_jobs(self, new_jobs).await
    }

    async fn get_job(&self, org: OrganizationId, id: JobId) -> Result<Option<Job>> {
        Ok(jobs::get_jobs(&self.pool, Some(org), &[id], true)
            .await?
            .pop())
    }

    async fn get_jobs(&self, org: OrganizationId, ids: &[JobId]) -> Result<Vec<Job>> {
        jobs::get_jobs(&self.pool, Some(org), ids, false).await
    }

    async fn get_job_summaries(
        &self,
        org: OrganizationId,
        ids: &[JobId],
    ) -> Result<Vec<JobSummary>> {
        jobs::get_job_summaries(&self.pool, org, ids).await
    }

    async fn list_jobs(
        &self,
        org: OrganizationId,
        agent: AgentId,
        query: &JobQuery,
    ) -> Result<Page<Job>> {
        jobs::list_jobs(&self.pool, org, agent, query).await
    }

    async fn claim_jobs(&self, request: &ClaimRequest) -> Result<Vec<Job>> {
        jobs::claim_jobs(self, request).await
    }

    async fn hand_back_job(&self, id: JobId, owner: &str) -> Result<bool> {
        jobs::hand_back_job(self, id, owner).await
    }

    async fn renew_lease(&self, id: JobId, owner: &str, lease: Duration) -> Result<LeaseState> {
        jobs::renew_lease(self, id, owner, lease).await
    }

    async fn record_progress(&self, id: JobId, owner: &str, message: &str) -> Result<bool> {
        jobs::record_progress(self, id, owner, message).await
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome) -> Result<()> {
        jobs::finish_job(self, id, outcome).await
    }

    async fn finish_and_claim(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        next: &ClaimRequest,
    ) -> Result<Vec<Job>> {
        jobs::finish_and_claim(self, id, outcome, next).await
    }

    async fn cancel_job(&self, org: OrganizationId, id: JobId) -> Result<Option<JobStatus>> {
        jobs::cancel_job(self, org, id).await
    }

    async fn cancel_agent_jobs(&self, org: OrganizationId, agent: AgentId) -> Result<Vec<JobId>> {
        jobs::cancel_agent_jobs(self, org, agent).await
    }

    async fn delete_job_data(&self, org: OrganizationId, id: JobId) -> Result<DeleteData> {
        jobs::delete_job_data(self, org, id).await
    }

    async fn find_cached(
        &self,
        version: AgentVersionId,
        cache_key: &str,
        include_failed: bool,
    ) -> Result<Option<Job>> {
        jobs::find_cached(&self.pool, version, cache_key, include_failed).await
    }

    async fn count_jobs(&self) -> Result<Vec<crate::JobCount>> {
        jobs::count_jobs(&self.pool).await
    }

    async fn create_file(&self, org: OrganizationId, file: &FileRef) -> Result<()> {
        let mut tx = self.begin_write().await?;
        files::insert_file(&mut tx, org, file, &jobs::now()).await?;
        tx.commit().await
    }

    async fn get_file(&self, org: OrganizationId, id: FileId) -> Result<Option<FileRef>> {
        let row = sqlx::query("SELECT * FROM files WHERE organization_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(file_from_row).transpose()
    }

    async fn attach_fetched_file(
        &self,
        job: JobId,
        input_key: &str,
        file: &FileRef,
    ) -> Result<bool> {
        files::attach_fetched_file(self, job, input_key, file).await
    }

    async fn delete_unreferenced_files(&self, created_before: Timestamp) -> Result<Vec<FileId>> {
        files::delete_unreferenced_files(self, created_before).await
    }

    async fn create_webhook(&self, webhook: &Webhook) -> Result<()> {
        webhooks::create_webhook(self, webhook).await
    }

    async fn list_webhooks(
        &self,
        org: OrganizationId,
        agent: AgentId,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Webhook>> {
        webhooks::list_webhooks(self, org, agent, offset, limit).await
    }

    async fn get_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
    ) -> Result<Option<Webhook>> {
        webhooks::get_webhook(self, org, agent, id).await
    }

    async fn update_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
        update: WebhookUpdate,
    ) -> Result<Option<Webhook>> {
        webhooks::update_webhook(self, org, agent, id, update).await
    }

    async fn delete_webhook(
        &self,
        org: OrganizationId,
        agent: AgentId,
        id: WebhookId,
    ) -> Result<bool> {
        webhooks::delete_webhook(self, org, agent, id).await
    }

    async fn list_deliveries(
        &self,
        webhook: WebhookId,
        offset: i64,
        limit: i64,
    ) -> Result<Page<WebhookDelivery>> {
        webhooks::list_deliveries(self, webhook, offset, limit).await
    }

    async fn queue_deliveries(
        &self,
        job: JobId,
        event: WebhookEvent,
        targets: DeliveryTargets,
    ) -> Result<u64> {
        webhooks::queue_deliveries(self, job, event, targets).await
    }

    async fn claim_deliveries(&self, claim: &DeliveryClaim) -> Result<Vec<DueDelivery>> {
        webhooks::claim_deliveries(self, claim).await
    }

    async fn record_delivery_attempt(
        &self,
        id: DeliveryId,
        owner: &str,
        attempt: &DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<bool> {
        webhooks::record_delivery_attempt(self, id, owner, attempt, next).await
    }

    async fn recorded_files(&self, ids: &[FileId]) -> Result<Vec<FileId>> {
        files::recorded_files(&self.pool, ids).await
    }

    async fn usage_since(
        &self,
        org: OrganizationId,
        since: Timestamp,
    ) -> Result<Vec<crate::UsageBucket>> {
        usage::usage_since(&self.pool, org, since).await
    }

    async fn add_job_reference(
        &self,
        job: JobId,
        reference: &NewJobReference,
    ) -> Result<ReferenceAdded> {
        references::add_job_reference(self, job, reference).await
    }

    async fn find_job_reference(
        &self,
        org: OrganizationId,
        job: JobId,
        lookup: ReferenceLookup<'_>,
    ) -> Result<Option<JobReference>> {
        references::find_job_reference(self, org, job, lookup).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// After `database or disk is full` SQLite ends the transaction itself and
    /// sqlx's ROLLBACK then fails; replayed here with a ROLLBACK behind
    /// sqlx's back. Every later write must still get a working connection.
    #[tokio::test]
    async fn a_connection_left_inside_a_failed_transaction_is_not_reused() {
        let dir = TempDir(std::env::temp_dir().join(format!("agentd-sqlite-{}", JobId::new())));
        let url = format!("sqlite://{}/agentd.db", dir.0.display());
        let storage = SqliteStorage::connect(&url).await.unwrap();
        {
            let mut tx = storage.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        for _ in 0..16 {
            let tx = storage
                .begin_write()
                .await
                .expect("a write transaction on a sound connection");
            tx.commit().await.unwrap();
        }
    }
}
