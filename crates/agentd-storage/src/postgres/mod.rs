//! PostgreSQL: one database shared by any number of agentd processes,
//! migrations of its own (`migrations/postgres`) embedded in the binary.
//! Unlike SQLite there is no process-wide write lock: every read-modify-write
//! locks its rows (`FOR UPDATE`), claims skip rows others hold, and leases are
//! measured with the database's clock.

mod files;
mod jobs;
mod limits;
mod notices;
mod references;
mod rows;
mod usage;
mod webhooks;

use std::time::Duration;

use agentd_domain::time::{self, Timestamp};
use agentd_domain::{
    Agent, AgentId, AgentVersion, AgentVersionId, ApiKey, Credits, FileId, FileRef, Job, JobId,
    JobOutcome, JobStatus, JobSummary, NewAgent, NewAgentVersion, Organization, OrganizationId,
};
use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::{Json, Uuid};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use agentd_domain::webhook::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent};
use agentd_domain::{DeliveryId, WebhookId};

use crate::status_events::contains_pattern;
use crate::{
    AgentOrderField, AgentQuery, AgentUpdate, ClaimRequest, ConnectOptions, Created, DeleteData,
    DeliveryClaim, DeliveryNext, DeliveryTargets, DueDelivery, JobQuery, JobReference, LeaseState,
    NewApiKey, NewJob, NewJobReference, Page, ReferenceAdded, ReferenceLookup, Result, RunContext,
    Storage, StorageError, StoredApiKey, VersionUpdate, WebhookUpdate,
};
use rows::{agent_from_row, file_from_row, key_from_row, org_from_row, version_from_row};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// What the finished jobs of organization `o` were charged and is not yet
/// folded into its row (see `jobs::charge`).
macro_rules! charged {
    () => {
        "COALESCE((SELECT SUM(c.amount) FROM organization_charges c \
         WHERE c.organization_id = o.id), 0)"
    };
}

const ORG_COLUMNS: &str = concat!(
    "o.id, o.name, (o.credits - ",
    charged!(),
    ")::float8 AS credits, (o.spent + ",
    charged!(),
    ")::float8 AS spent, o.created_at"
);

const AGENT_COLUMNS: &str = "a.id, a.organization_id, a.name, a.engine_class_id, a.disable_cache, \
    a.cache_failed_jobs, a.current_version_id, a.creator_key_id, a.created_at, a.updated_at, \
    a.job_count, a.most_recent_job";

pub struct PostgresStorage {
    pool: PgPool,
}

impl PostgresStorage {
    /// Connects and applies the migrations (sqlx holds an advisory lock
    /// while it migrates, so processes starting together take turns).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        // One connection first: an unreachable server or a refused login is
        // reported as such, not as a pool that timed out.
        sqlx::Connection::close(<PgConnection as sqlx::Connection>::connect(url).await?).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    async fn insert_version(
        conn: &mut PgConnection,
        id: AgentVersionId,
        agent: AgentId,
        version: &NewAgentVersion,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO agent_versions (id, agent_id, version_name, description, \
             input_definitions, engine_config, creator_key_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(*id.as_uuid())
        .bind(*agent.as_uuid())
        .bind(
            version
                .version_name
                .clone()
                .unwrap_or_else(|| AgentVersion::DEFAULT_NAME.to_owned()),
        )
        .bind(&version.description)
        .bind(Json(&version.input_definitions))
        .bind(Json(&version.engine_config))
        .bind(version.creator_key_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

fn push_agent_filters<'q>(
    builder: &mut QueryBuilder<'q, Postgres>,
    org: OrganizationId,
    query: &'q AgentQuery,
) {
    builder
        .push(" WHERE a.organization_id = ")
        .push_bind(*org.as_uuid());
    if let Some(name) = &query.name {
        builder
            .push(" AND a.name ILIKE ")
            .push_bind(contains_pattern(name));
    }
    if let Some(search) = &query.search {
        let pattern = contains_pattern(search);
        builder
            .push(" AND (a.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR a.id::text ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR a.engine_class_id ILIKE ")
            .push_bind(pattern.clone())
            .push(
                " OR EXISTS (SELECT 1 FROM agent_versions v \
                 WHERE v.agent_id = a.id AND v.id::text ILIKE ",
            )
            .push_bind(pattern)
            .push("))");
    }
    if !query.engine_class_ids.is_empty() {
        builder
            .push(" AND a.engine_class_id = ANY(")
            .push_bind(query.engine_class_ids.as_slice())
            .push(")");
    }
    if let Some(excluded) = &query.exclude_engine_class_id {
        builder
            .push(" AND a.engine_class_id <> ")
            .push_bind(excluded.as_str());
    }
    if !query.creator_ids.is_empty() {
        builder
            .push(" AND a.creator_key_id = ANY(")
            .push_bind(query.creator_ids.as_slice())
            .push(")");
    }
    let ranges = [
        ("a.created_at", &query.created),
        ("a.updated_at", &query.updated),
        ("a.most_recent_job", &query.most_recent_job),
    ];
    for (column, range) in ranges {
        if let Some(from) = range.from {
            builder.push(format!(" AND {column} >= ")).push_bind(from);
        }
        if let Some(to) = range.to {
            builder.push(format!(" AND {column} <= ")).push_bind(to);
        }
    }
    if let Some(min) = query.job_count_min {
        builder.push(" AND a.job_count >= ").push_bind(min);
    }
    if let Some(max) = query.job_count_max {
        builder.push(" AND a.job_count <= ").push_bind(max);
    }
    if let Some(only) = &query.only {
        let ids: Vec<Uuid> = only.iter().map(|id| *id.as_uuid()).collect();
        builder.push(" AND a.id = ANY(").push_bind(ids).push(")");
    }
}

fn order_column(field: AgentOrderField) -> &'static str {
    match field {
        AgentOrderField::Name => "lower(a.name)",
        AgentOrderField::CreatedAt => "a.created_at",
        AgentOrderField::UpdatedAt => "a.updated_at",
        AgentOrderField::MostRecentJob => "a.most_recent_job",
        AgentOrderField::JobCount => "a.job_count",
        AgentOrderField::EngineClassId => "a.engine_class_id",
        AgentOrderField::Creator => "a.creator_key_id",
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn ping(&self) -> Result<()> {
        // A table, not `SELECT 1`: SQLite must read the database file to answer.
        sqlx::query("SELECT 1 FROM organizations LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn job_notices(&self) -> Option<Box<dyn crate::JobNotices>> {
        Some(Box::new(notices::PgJobNotices::new(self.pool.clone())))
    }

    async fn create_organization(&self, id: OrganizationId, name: &str) -> Result<Organization> {
        let now = time::now();
        let inserted = sqlx::query(
            "INSERT INTO organizations (id, name, credits, spent, created_at) \
             VALUES ($1, $2, NULL, 0, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(*id.as_uuid())
        .bind(name)
        .bind(now)
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
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations o WHERE o.id = $1"
        ))
        .bind(*id.as_uuid())
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
        // The balance becomes `credits` now: the charges so far are folded
        // into the organization's spending (a charge committing meanwhile
        // waits for the stripes' locks and counts against the new balance).
        let done = sqlx::query(
            "WITH folded AS (DELETE FROM organization_charges WHERE organization_id = $2 \
                             RETURNING amount) \
             UPDATE organizations \
             SET spent = spent + COALESCE((SELECT SUM(amount) FROM folded), 0), \
                 credits = $1::numeric \
             WHERE id = $2",
        )
        .bind(credits.0)
        .bind(*id.as_uuid())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let scopes: Vec<String> = key.scopes.iter().map(ToString::to_string).collect();
        let row = sqlx::query(
            "INSERT INTO api_keys (organization_id, name, lookup, key_hash, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (lookup) DO NOTHING RETURNING *",
        )
        .bind(*key.organization_id.as_uuid())
        .bind(&key.name)
        .bind(&key.lookup)
        .bind(&key.key_hash)
        .bind(Json(&scopes))
        .bind(time::now())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(key_from_row(&row)?.key),
            None => Err(StorageError::Conflict("API key".into())),
        }
    }

    async fn find_api_key(&self, lookup: &str) -> Result<Option<StoredApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE lookup = $1")
            .bind(lookup)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn revoke_api_key(&self, lookup: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE lookup = $2 AND revoked_at IS NULL",
        )
        .bind(time::now())
        .bind(lookup)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_agent(&self, agent: NewAgent) -> Result<(Agent, AgentVersion)> {
        let now = time::now();
        let agent_id = AgentId::new();
        let version_id = AgentVersionId::new();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agents (id, organization_id, name, engine_class_id, disable_cache, \
             cache_failed_jobs, current_version_id, creator_key_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, false, false, $5, $6, $7, $7)",
        )
        .bind(*agent_id.as_uuid())
        .bind(*agent.organization_id.as_uuid())
        .bind(agent.name.as_str())
        .bind(&agent.engine_class_id)
        .bind(*version_id.as_uuid())
        .bind(agent.creator_key_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_version(&mut tx, version_id, agent_id, &agent.first_version, now).await?;
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
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.organization_id = $1 AND a.id = $2"
        ))
        .bind(*org.as_uuid())
        .bind(*id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn list_agents(&self, org: OrganizationId, query: &AgentQuery) -> Result<Page<Agent>> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM agents a");
        push_agent_filters(&mut count, org, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut select =
            QueryBuilder::<Postgres>::new(format!("SELECT {AGENT_COLUMNS} FROM agents a"));
        push_agent_filters(&mut select, org, query);
        let direction = jobs::direction(query.ordering.descending);
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
        let done = sqlx::query(
            "UPDATE agents SET name = COALESCE($1, name), \
             disable_cache = COALESCE($2, disable_cache), \
             cache_failed_jobs = COALESCE($3, cache_failed_jobs), \
             current_version_id = COALESCE($7, current_version_id), updated_at = $4 \
             WHERE organization_id = $5 AND id = $6",
        )
        .bind(update.name)
        .bind(update.disable_cache)
        .bind(update.cache_failed_jobs)
        .bind(time::now())
        .bind(*org.as_uuid())
        .bind(*id.as_uuid())
        .bind(update.current_version_id.map(|id| *id.as_uuid()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_agent(org, id).await
    }

    async fn delete_agent(&self, org: OrganizationId, id: AgentId) -> Result<Option<Vec<FileId>>> {
        let mut tx = self.pool.begin().await?;
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM agents WHERE organization_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(*org.as_uuid())
        .bind(*id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        let files = files::unlink_jobs(&mut tx, "agent_id", *id.as_uuid()).await?;
        // Versions and jobs go with the agent (foreign keys).
        sqlx::query("DELETE FROM agents WHERE organization_id = $1 AND id = $2")
            .bind(*org.as_uuid())
            .bind(*id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(files))
    }

    async fn run_context(
        &self,
        org: OrganizationId,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<RunContext>> {
        // One round trip: this runs for every job.
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, (o.credits - {charged}) ::float8 AS organization_credits, \
             v.id AS v_id, \
             v.agent_id AS v_agent_id, v.version_name AS v_version_name, \
             v.description AS v_description, v.input_definitions AS v_input_definitions, \
             v.engine_config AS v_engine_config, v.creator_key_id AS v_creator_key_id, \
             v.created_at AS v_created_at FROM agents a \
             JOIN organizations o ON o.id = a.organization_id \
             LEFT JOIN agent_versions v ON v.agent_id = a.id AND v.id = $1 \
             WHERE a.organization_id = $2 AND a.id = $3",
            charged = charged!(),
        );
        let Some(row) = sqlx::query(&sql)
            .bind(*version.as_uuid())
            .bind(*org.as_uuid())
            .bind(*agent.as_uuid())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let version_found: Option<Uuid> = sqlx::Row::try_get(&row, "v_id")?;
        Ok(Some(RunContext {
            credits: Credits(sqlx::Row::try_get(&row, "organization_credits")?),
            agent: agent_from_row(&row)?,
            version: version_found
                .map(|_| rows::prefixed_version_from_row(&row, "v_"))
                .transpose()?,
        }))
    }

    async fn list_versions(&self, agent: AgentId) -> Result<Vec<AgentVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM agent_versions WHERE agent_id = $1 ORDER BY created_at DESC, seq DESC",
        )
        .bind(*agent.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn get_version(
        &self,
        agent: AgentId,
        version: AgentVersionId,
    ) -> Result<Option<AgentVersion>> {
        let row = sqlx::query("SELECT * FROM agent_versions WHERE agent_id = $1 AND id = $2")
            .bind(*agent.as_uuid())
            .bind(*version.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn create_version(
        &self,
        agent: AgentId,
        version: NewAgentVersion,
    ) -> Result<AgentVersion> {
        let now = time::now();
        let version_id = AgentVersionId::new();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE agents SET current_version_id = $1, updated_at = $2 WHERE id = $3")
            .bind(*version_id.as_uuid())
            .bind(now)
            .bind(*agent.as_uuid())
            .execute(&mut *tx)
            .await?;
        Self::insert_version(&mut tx, version_id, agent, &version, now).await?;
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
            "UPDATE agent_versions SET version_name = COALESCE($1, version_name), \
             description = COALESCE($2, description) WHERE agent_id = $3 AND id = $4",
        )
        .bind(update.version_name)
        .bind(update.description)
        .bind(*agent.as_uuid())
        .bind(*version.as_uuid())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_version(agent, version).await
    }

    async fn delete_version(&self, agent: AgentId, version: AgentVersionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM agent_versions WHERE agent_id = $1 AND id = $2")
            .bind(*agent.as_uuid())
            .bind(*version.as_uuid())
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
        Ok(jobs::get_jobs(&self.pool, org, &[id], true).await?.pop())
    }

    async fn get_jobs(&self, org: OrganizationId, ids: &[JobId]) -> Result<Vec<Job>> {
        jobs::get_jobs(&self.pool, org, ids, false).await
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

    async fn jobs_past_retention(
        &self,
        finished_before: Timestamp,
        limit: i64,
    ) -> Result<Vec<(OrganizationId, JobId)>> {
        jobs::jobs_past_retention(&self.pool, finished_before, limit).await
    }

    async fn admit_provider_call(
        &self,
        provider: &str,
        per_minute: u32,
    ) -> Result<crate::provider_limits::Admission> {
        limits::admit_call(self, provider, per_minute).await
    }

    async fn take_provider_slot(
        &self,
        provider: &str,
        max_in_flight: usize,
        slot: &str,
        lease: Duration,
    ) -> Result<crate::provider_limits::Admission> {
        limits::take_slot(self, provider, max_in_flight, slot, lease).await
    }

    async fn renew_provider_slot(&self, slot: &str, lease: Duration) -> Result<bool> {
        limits::renew_slot(self, slot, lease).await
    }

    async fn release_provider_slot(&self, slot: &str) -> Result<()> {
        limits::release_slot(self, slot).await
    }

    async fn create_file(&self, org: OrganizationId, file: &FileRef) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        files::insert_file(&mut conn, org, file, time::now()).await
    }

    async fn get_file(&self, org: OrganizationId, id: FileId) -> Result<Option<FileRef>> {
        let row = sqlx::query("SELECT * FROM files WHERE organization_id = $1 AND id = $2")
            .bind(*org.as_uuid())
            .bind(*id.as_uuid())
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
