//! The jobs table as a durable queue shared by many processes: claims skip
//! rows other transactions hold (`FOR UPDATE SKIP LOCKED`) and recheck the
//! status, leases run on the database's clock, and every status change
//! writes its event (and a final one its charge) in its own transaction.

use std::collections::HashMap;
use std::time::Duration;

use agentd_domain::time::{self, Timestamp};
use agentd_domain::{
    AgentId, AgentVersionId, Job, JobId, JobInput, JobOutcome, JobStatus, JobSummary,
    OrganizationId, StatusEvent,
};
use sqlx::postgres::PgRow;
use sqlx::types::{Json, Uuid};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::rows::{event_from_row, job_from_row, summary_from_row};
use super::PostgresStorage;
use crate::job_lists::{self, from_clause};
use crate::status_events::{self, contains_pattern, StatusChange, ABANDONED};
use crate::{
    ClaimRequest, Created, DeleteData, IdempotencyKey, JobOrderField, JobQuery, LeaseState, NewJob,
    Page, Result, StorageError,
};

/// The columns of a job (`j`), money as `float8`.
macro_rules! job_columns {
    () => {
        "j.id, j.organization_id, j.agent_id, j.agent_version_id, j.status, j.inputs, \
         j.metadata, j.outputs, j.error_message, j.error_kind, j.input_tokens, j.output_tokens, \
         j.cached_input_tokens, j.cost::float8 AS cost, j.attempts, j.creator_key_id, \
         j.data_deleted, j.created_at, j.updated_at"
    };
}

const SELECT_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    ", v.version_name AS agent_version_name FROM jobs j \
     LEFT JOIN agent_versions v ON v.id = j.agent_version_id"
);

const UNFINISHED: &str = "(0, 1, 2)";

/// A job's metadata under its agent's id, `{"<agent id>": {…metadata}}`:
/// the expression `jobs_by_agent_metadata` indexes (migration 0027).
const AGENT_METADATA: &str = "jsonb_set('{}', ARRAY[j.agent_id::text], j.metadata)";

/// A job's duration, as `Job::duration_ms` computes it: first event to the
/// last non-CACHED one; NULL while the job is unfinished.
const DURATION: &str = "(CASE WHEN j.status NOT IN (0, 1, 2) THEN \
    (SELECT COALESCE(MAX(CASE WHEN e.status <> 6 THEN e.created_at END), MIN(e.created_at)) \
     - MIN(e.created_at) FROM job_events e WHERE e.job_id = j.id) END)";

/// A sort direction with NULLs placed as SQLite places them: first when
/// ascending, last when descending.
pub(super) fn direction(descending: bool) -> &'static str {
    if descending {
        "DESC NULLS LAST"
    } else {
        "ASC NULLS FIRST"
    }
}

fn uuids<T: Copy>(ids: &[T], uuid: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    ids.iter().map(uuid).collect()
}

/// A job whose status an `UPDATE ... RETURNING id, status, error_message` changed.
fn changed_from_row(row: &PgRow) -> Result<StatusChange> {
    let code: i16 = row.try_get("status")?;
    Ok(StatusChange {
        job: JobId::from(row.try_get::<Uuid, _>("id")?),
        status: JobStatus::from_code(code.into())
            .ok_or_else(|| StorageError::Corrupt(format!("status {code}")))?,
        error_message: row.try_get("error_message")?,
    })
}

fn changed_from_rows(rows: &[PgRow]) -> Result<Vec<StatusChange>> {
    rows.iter().map(changed_from_row).collect()
}

/// Writes the status events of jobs whose status changed, the notifications
/// other processes wait for and the webhook deliveries they raise, in the
/// caller's transaction: the one place the events of this backend are made.
async fn record_events(
    conn: &mut PgConnection,
    changed: &[StatusChange],
    at: Timestamp,
) -> Result<()> {
    write_events(conn, changed, at).await?;
    super::notices::notify_changes(conn, changed).await
}

/// `record_events` without the notifications.
async fn write_events(
    conn: &mut PgConnection,
    changed: &[StatusChange],
    at: Timestamp,
) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO job_events (job_id, status, error_message, created_at) \
         SELECT e.job_id, e.status, e.message, $4 \
         FROM UNNEST($1::uuid[], $2::smallint[], $3::text[]) WITH ORDINALITY \
              AS e(job_id, status, message, n) ORDER BY e.n",
    )
    .bind(changed.iter().map(|c| *c.job.as_uuid()).collect::<Vec<_>>())
    .bind(changed.iter().map(|c| c.status.code()).collect::<Vec<_>>())
    .bind(
        changed
            .iter()
            .map(StatusChange::event_message)
            .collect::<Vec<_>>(),
    )
    .bind(at)
    .execute(&mut *conn)
    .await?;
    super::webhooks::queue_for_changes(conn, changed, at).await
}

/// Charges a final job's cost to its organization, in the transaction that
/// made the job final. The charge goes to one of the organization's
/// `CHARGE_STRIPES` rows of `organization_charges`, picked by the job's id:
/// concurrent charges of one organization's workers then seldom wait for
/// each other's row lock (one row for all of them was the queue's
/// bottleneck at 64 workers). Readers add the stripes up (`CHARGED`).
async fn charge(conn: &mut PgConnection, org: Uuid, job: Uuid, cost: f64) -> Result<()> {
    let Some(cost) = status_events::charge(cost) else {
        return Ok(());
    };
    let stripe = i16::from(job.as_bytes()[15] % CHARGE_STRIPES);
    sqlx::query(
        "INSERT INTO organization_charges AS c (organization_id, stripe, amount) \
         VALUES ($2, $3, $1::numeric) ON CONFLICT (organization_id, stripe) \
         DO UPDATE SET amount = c.amount + excluded.amount",
    )
    .bind(cost)
    .bind(org)
    .bind(stripe)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows an organization's charges are spread over.
const CHARGE_STRIPES: u8 = 16;

/// Inserts jobs created at `at` with their events, their agents' job
/// counts and their files: one statement per table for the whole batch
/// (1,000 jobs of an `async/many` request), not one per job.
async fn insert_jobs(conn: &mut PgConnection, jobs: &[&NewJob], at: Timestamp) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let rows: Vec<JobRow<'_>> = jobs.iter().map(|job| JobRow::of(job)).collect();
    sqlx::query(
        "INSERT INTO jobs (id, organization_id, agent_id, agent_version_id, status, inputs, \
         metadata, outputs, error_message, error_kind, input_tokens, output_tokens, \
         cached_input_tokens, cost, attempts, creator_key_id, cache_key, created_at, updated_at, \
         awaited) \
         SELECT r.id, r.organization_id, r.agent_id, r.agent_version_id, r.status, r.inputs, \
         r.metadata, r.outputs, r.error_message, r.error_kind, r.tokens, r.tokens, r.tokens, \
         r.cost, 0, r.creator_key_id, r.cache_key, $15, $15, r.awaited \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::smallint[], \
                     $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::text[], $10::text[], \
                     $11::bigint[], $12::float8[], $13::bigint[], $14::text[], $16::bool[]) \
              WITH ORDINALITY AS r(id, organization_id, agent_id, agent_version_id, status, \
                   inputs, metadata, outputs, error_message, error_kind, tokens, cost, \
                   creator_key_id, cache_key, awaited, n) \
         ORDER BY r.n",
    )
    .bind(column(&rows, |r| *r.job.id.as_uuid()))
    .bind(column(&rows, |r| *r.job.organization_id.as_uuid()))
    .bind(column(&rows, |r| *r.job.agent_id.as_uuid()))
    .bind(column(&rows, |r| *r.job.agent_version_id.as_uuid()))
    .bind(column(&rows, |r| r.status.code()))
    .bind(column(&rows, |r| Json(&r.job.inputs)))
    .bind(column(&rows, |r| Json(&r.job.metadata)))
    .bind(column(&rows, |r| r.outputs.map(Json)))
    .bind(column(&rows, |r| r.error_message))
    .bind(column(&rows, |r| r.error_kind))
    .bind(column(&rows, |r| r.tokens))
    .bind(column(&rows, |r| r.cost))
    .bind(column(&rows, |r| r.job.creator_key_id))
    .bind(column(&rows, |r| r.job.cache_key.as_deref()))
    .bind(at)
    .bind(column(&rows, |r| r.job.awaited))
    .execute(&mut *conn)
    .await?;
    let changes: Vec<StatusChange> = rows
        .iter()
        .flat_map(|r| StatusChange::created(r.job.id, r.status))
        .collect();
    record_events(conn, &changes, at).await?;
    count_agents_jobs(conn, jobs, at).await?;
    for job in jobs.iter().filter(|job| !job.files.is_empty()) {
        super::files::link_job_files(conn, job.organization_id, job.id, &job.files, at).await?;
    }
    Ok(())
}

/// A new job's row: PENDING, or final at once with a cache hit's results.
struct JobRow<'j> {
    job: &'j NewJob,
    status: JobStatus,
    outputs: Option<&'j Vec<agentd_domain::AgentDatum>>,
    error_message: Option<&'j str>,
    error_kind: Option<&'static str>,
    tokens: Option<i64>,
    cost: Option<f64>,
}

impl<'j> JobRow<'j> {
    fn of(job: &'j NewJob) -> Self {
        match &job.cached {
            None => Self {
                job,
                status: JobStatus::Pending,
                outputs: None,
                error_message: None,
                error_kind: None,
                tokens: None,
                cost: None,
            },
            Some(cached) => Self {
                job,
                status: JobStatus::Cached,
                outputs: cached.outputs.as_ref(),
                error_message: cached.error_message.as_deref(),
                error_kind: cached.error_kind.map(|kind| kind.as_str()),
                tokens: Some(0),
                cost: Some(0.0),
            },
        }
    }
}

/// One column of a batch, for `UNNEST`.
fn column<'r, 'j: 'r, T>(rows: &'r [JobRow<'j>], value: impl Fn(&'r JobRow<'j>) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// Adds new jobs to their agents' job counts and newest-job times.
async fn count_agents_jobs(conn: &mut PgConnection, jobs: &[&NewJob], at: Timestamp) -> Result<()> {
    let mut per_agent: Vec<(Uuid, i64)> = Vec::new();
    for job in jobs {
        let agent = *job.agent_id.as_uuid();
        match per_agent.iter_mut().find(|(id, _)| *id == agent) {
            Some((_, count)) => *count += 1,
            None => per_agent.push((agent, 1)),
        }
    }
    sqlx::query(
        "UPDATE agents a SET job_count = a.job_count + n.count, \
         most_recent_job = GREATEST(a.most_recent_job, $3) \
         FROM UNNEST($1::uuid[], $2::bigint[]) AS n(agent_id, count) WHERE a.id = n.agent_id",
    )
    .bind(per_agent.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(
        per_agent
            .iter()
            .map(|(_, count)| *count)
            .collect::<Vec<_>>(),
    )
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes the idempotency key for this job, or says which job holds it
/// (for the same request or another): an insert that does nothing when a
/// live key exists (a key older than 24 h is taken over), so two racing
/// requests cannot both create a job.
async fn take_idempotency_key(
    conn: &mut PgConnection,
    job: &NewJob,
    idempotency: &IdempotencyKey,
    at: Timestamp,
) -> Result<Option<Created>> {
    let window_start = at - time::Delta::hours(24);
    let taken: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys AS k (agent_id, key, job_id, created_at, request_hash) \
         VALUES ($1, $2, $3, $4, $6) \
         ON CONFLICT (agent_id, key) DO UPDATE \
         SET job_id = excluded.job_id, created_at = excluded.created_at, \
             request_hash = excluded.request_hash \
         WHERE k.created_at <= $5 RETURNING job_id",
    )
    .bind(*job.agent_id.as_uuid())
    .bind(&idempotency.key)
    .bind(*job.id.as_uuid())
    .bind(at)
    .bind(window_start)
    .bind(&idempotency.request_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Ok(None);
    }
    let (holder, request_hash): (Uuid, Option<String>) = sqlx::query_as(
        "SELECT job_id, request_hash FROM idempotency_keys WHERE agent_id = $1 AND key = $2",
    )
    .bind(*job.agent_id.as_uuid())
    .bind(&idempotency.key)
    .fetch_one(&mut *conn)
    .await?;
    let holder = JobId::from(holder);
    // Keys stored before hashes were kept match any request.
    let same = request_hash.is_none_or(|hash| hash == idempotency.request_hash);
    Ok(Some(if same {
        Created::Existing(holder)
    } else {
        Created::KeyReused(holder)
    }))
}

pub(super) async fn create_job(db: &PostgresStorage, job: NewJob) -> Result<Created> {
    let mut tx = db.pool.begin().await?;
    let created = create_in(&mut tx, &job, time::now()).await?;
    tx.commit().await?;
    Ok(created)
}

pub(super) async fn create_jobs(db: &PostgresStorage, jobs: Vec<NewJob>) -> Result<Vec<Created>> {
    let at = time::now();
    let mut tx = db.pool.begin().await?;
    let mut created = Vec::with_capacity(jobs.len());
    let mut new = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let outcome = match held_key(&mut tx, job, at).await? {
            Some(held) => held,
            None => {
                new.push(job);
                Created::New(job.id)
            }
        };
        if let Created::KeyReused(_) = outcome {
            // All or nothing: dropping the transaction rolls the batch back.
            return Ok(vec![outcome]);
        }
        created.push(outcome);
    }
    insert_jobs(&mut tx, &new, at).await?;
    tx.commit().await?;
    Ok(created)
}

/// Inserts the job, unless its idempotency key is held by a job of the
/// last 24 h: that job is the answer (or, for a different request under
/// the same key, the conflict).
async fn create_in(conn: &mut PgConnection, job: &NewJob, at: Timestamp) -> Result<Created> {
    if let Some(held) = held_key(conn, job, at).await? {
        return Ok(held);
    }
    insert_jobs(conn, &[job], at).await?;
    Ok(Created::New(job.id))
}

/// The job holding `job`'s idempotency key, if another does; `None` when
/// the job has no key or has just taken it.
async fn held_key(conn: &mut PgConnection, job: &NewJob, at: Timestamp) -> Result<Option<Created>> {
    match &job.idempotency_key {
        Some(key) => take_idempotency_key(conn, job, key, at).await,
        None => Ok(None),
    }
}

/// Completes job rows with their status events.
async fn load_jobs(pool: &PgPool, rows: Vec<PgRow>, with_events: bool) -> Result<Vec<Job>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get::<Uuid, _>("id"))
        .collect::<std::result::Result<_, _>>()?;
    let mut events: HashMap<Uuid, Vec<StatusEvent>> = HashMap::new();
    if with_events {
        let rows = sqlx::query(
            "SELECT job_id, status, error_message, created_at FROM job_events \
             WHERE job_id = ANY($1) ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(pool)
        .await?;
        for row in rows {
            let job_id: Uuid = row.try_get("job_id")?;
            events
                .entry(job_id)
                .or_default()
                .push(event_from_row(&row)?);
        }
    }
    rows.iter()
        .zip(ids)
        .map(|(row, id)| job_from_row(row, events.remove(&id).unwrap_or_default()))
        .collect()
}

pub(super) async fn get_jobs(
    pool: &PgPool,
    org: OrganizationId,
    ids: &[JobId],
    with_events: bool,
) -> Result<Vec<Job>> {
    let rows = sqlx::query(&format!(
        "{SELECT_JOBS} WHERE j.id = ANY($1) AND j.organization_id = $2"
    ))
    .bind(uuids(ids, |id| *id.as_uuid()))
    .bind(*org.as_uuid())
    .fetch_all(pool)
    .await?;
    load_jobs(pool, rows, with_events).await
}

pub(super) async fn get_job_summaries(
    pool: &PgPool,
    org: OrganizationId,
    ids: &[JobId],
) -> Result<Vec<JobSummary>> {
    let rows = sqlx::query(
        "SELECT id, agent_id, status, error_message, created_at, updated_at FROM jobs \
         WHERE id = ANY($1) AND organization_id = $2",
    )
    .bind(uuids(ids, |id| *id.as_uuid()))
    .bind(*org.as_uuid())
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary_from_row).collect()
}

fn push_job_filters<'q>(
    query: &mut QueryBuilder<'q, Postgres>,
    org: OrganizationId,
    agent: AgentId,
    filter: &'q JobQuery,
) {
    query
        .push(" WHERE j.organization_id = ")
        .push_bind(*org.as_uuid())
        .push(" AND j.agent_id = ")
        .push_bind(*agent.as_uuid());
    if !filter.statuses.is_empty() {
        let codes: Vec<i16> = filter.statuses.iter().map(|s| s.code()).collect();
        query
            .push(" AND j.status = ANY(")
            .push_bind(codes)
            .push(")");
    }
    if let Some(name) = &filter.version_name {
        query
            .push(" AND v.version_name = ")
            .push_bind(name.as_str());
    }
    if !filter.metadata.is_empty() {
        // Containment under the agent's id finds the candidates through the
        // GIN index `jobs_by_agent_metadata` (its keys are the agent and the
        // metadata's paths together, so only this agent's matching jobs are
        // read); the equalities keep the filter's meaning for object and
        // array values, which containment alone would match as supersets.
        let pairs = serde_json::Map::from_iter(filter.metadata.iter().cloned());
        let scoped = serde_json::Map::from_iter([(
            agent.as_uuid().to_string(),
            serde_json::Value::Object(pairs),
        )]);
        query
            .push(format!(" AND {AGENT_METADATA} @> "))
            .push_bind(Json(serde_json::Value::Object(scoped)));
    }
    for (key, value) in &filter.metadata {
        query
            .push(" AND j.metadata -> ")
            .push_bind(key.as_str())
            .push(" = ")
            .push_bind(Json(value));
    }
    if let Some(from) = filter.created_from {
        query.push(" AND j.created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.created_to {
        query.push(" AND j.created_at <= ").push_bind(to);
    }
    let substrings = [
        ("j.id::text", &filter.job_id),
        ("j.inputs::text", &filter.job_inputs),
    ];
    for (column, text) in substrings {
        if let Some(text) = text {
            query
                .push(format!(" AND {column} ILIKE "))
                .push_bind(contains_pattern(text));
        }
    }
    if let Some(search) = &filter.search {
        let pattern = contains_pattern(search);
        query
            .push(" AND (j.id::text ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR j.inputs::text ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR j.metadata::text ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

pub(super) async fn list_jobs(
    pool: &PgPool,
    org: OrganizationId,
    agent: AgentId,
    filter: &JobQuery,
) -> Result<Page<Job>> {
    let total = count_listed_jobs(pool, org, agent, filter).await?;
    let rows = page_of_jobs(pool, org, agent, filter).await?;
    Ok(Page {
        items: load_jobs(pool, rows, true).await?,
        total,
    })
}

/// How many jobs match, counting no further than `filter.count_cap`: an
/// agent with millions of jobs costs no more than one with the cap, and an
/// unfiltered list reads the count kept on the agent.
async fn count_listed_jobs(
    pool: &PgPool,
    org: OrganizationId,
    agent: AgentId,
    filter: &JobQuery,
) -> Result<i64> {
    if filter.is_unfiltered() {
        let kept: Option<i64> = sqlx::query_scalar(job_lists::AGENT_JOB_COUNT)
            .bind(*agent.as_uuid())
            .bind(*org.as_uuid())
            .fetch_optional(pool)
            .await?;
        return Ok(job_lists::capped(filter, kept.unwrap_or(0)));
    }
    let mut count = QueryBuilder::<Postgres>::new(format!(
        "SELECT COUNT(*) FROM (SELECT 1 {}",
        from_clause(filter)
    ));
    push_job_filters(&mut count, org, agent, filter);
    if let Some(cap) = filter.count_cap {
        count.push(" LIMIT ").push_bind(cap);
    }
    count.push(") matching");
    Ok(count.build_query_scalar().fetch_one(pool).await?)
}

/// The rows of one page. The page's ids are found first, from the index
/// alone where the filters and order allow it (`jobs_by_agent_page`), and
/// only those rows are read: a deep offset skips index entries, not rows.
async fn page_of_jobs(
    pool: &PgPool,
    org: OrganizationId,
    agent: AgentId,
    filter: &JobQuery,
) -> Result<Vec<PgRow>> {
    let order = job_order(filter);
    let mut select =
        QueryBuilder::<Postgres>::new(format!("WITH page AS (SELECT j.id {}", from_clause(filter)));
    push_job_filters(&mut select, org, agent, filter);
    select
        .push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(filter.limit)
        .push(" OFFSET ")
        .push_bind(filter.offset);
    select.push(format!(
        ") {SELECT_JOBS} JOIN page ON page.id = j.id ORDER BY {order}"
    ));
    Ok(select.build().fetch_all(pool).await?)
}

/// The ORDER BY of a job list: the asked keys, then creation order in the
/// direction of the first key. Columns that are never NULL get no NULLS
/// clause, so that an index on them gives the order (PostgreSQL reads an
/// index backwards as `DESC NULLS FIRST`, never as `DESC NULLS LAST`).
fn job_order(filter: &JobQuery) -> String {
    let default_order = [(JobOrderField::CreatedAt, true)];
    let keys = if filter.order_by.is_empty() {
        &default_order[..]
    } else {
        &filter.order_by[..]
    };
    let mut order: Vec<String> = keys
        .iter()
        .filter_map(|&(field, descending)| {
            let (column, nullable) = match field {
                JobOrderField::Id => ("j.id::text", false),
                JobOrderField::AgentVersionName => ("v.version_name", true),
                JobOrderField::StatusCode => ("j.status", false),
                JobOrderField::CreatedAt => ("j.created_at", false),
                JobOrderField::LastUpdatedAt => ("j.updated_at", false),
                JobOrderField::Cost => ("j.cost", true),
                JobOrderField::Duration => (DURATION, true),
                // No grader scores: every job ties.
                JobOrderField::GraderScore => return None,
            };
            let direction = if nullable {
                direction(descending)
            } else {
                plain_direction(descending)
            };
            Some(format!("{column} {direction}"))
        })
        .collect();
    let ties = plain_direction(keys[0].1);
    order.push(format!("j.created_at {ties}, j.seq {ties}"));
    order.join(", ")
}

fn plain_direction(descending: bool) -> &'static str {
    if descending {
        "DESC"
    } else {
        "ASC"
    }
}

/// Jobs whose lease expired by the database's clock: retried, or failed
/// after `max_attempts`. Rows another transaction holds are left to it.
async fn requeue_expired(conn: &mut PgConnection, max_attempts: i32, at: Timestamp) -> Result<()> {
    let rows = sqlx::query(
        "WITH expired AS (SELECT id FROM jobs WHERE status = 1 AND lease_expires_at < now() \
                          FOR UPDATE SKIP LOCKED) \
         UPDATE jobs j SET status = CASE WHEN j.attempts >= $1 THEN 4 ELSE 2 END, \
         error_message = CASE WHEN j.attempts >= $1 THEN $2 ELSE j.error_message END, \
         error_kind = CASE WHEN j.attempts >= $1 THEN 'internal' ELSE j.error_kind END, \
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
         FROM expired WHERE j.id = expired.id AND j.status = 1 \
         RETURNING j.id, j.status, j.error_message",
    )
    .bind(max_attempts)
    .bind(ABANDONED)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    record_events(conn, &changed_from_rows(&rows)?, at).await
}

/// Leases up to `request.limit` runnable jobs, oldest first, skipping the
/// ones other claims are taking; the status is checked again on the locked row.
async fn claim_in(
    conn: &mut PgConnection,
    request: &ClaimRequest,
    at: Timestamp,
) -> Result<Vec<Job>> {
    requeue_expired(conn, request.max_attempts, at).await?;
    let rows = sqlx::query(concat!(
        "WITH picked AS (SELECT id FROM jobs WHERE status IN (0, 2) \
                         ORDER BY created_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
         UPDATE jobs j SET status = 1, attempts = j.attempts + 1, lease_owner = $1, \
         lease_expires_at = now() + make_interval(secs => $2), updated_at = $3 \
         FROM picked WHERE j.id = picked.id AND j.status IN (0, 2) RETURNING ",
        job_columns!()
    ))
    .bind(&request.owner)
    .bind(request.lease.as_secs_f64())
    .bind(at)
    .bind(request.limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    let mut changed = Vec::with_capacity(rows.len());
    for row in &rows {
        // Workers need no status history.
        let job = job_from_row(row, Vec::new())?;
        changed.push(StatusChange::new(job.id, JobStatus::Started));
        claimed.push(job);
    }
    record_events(conn, &changed, at).await?;
    claimed.sort_by_key(|job| job.created_at);
    Ok(claimed)
}

pub(super) async fn claim_jobs(db: &PostgresStorage, request: &ClaimRequest) -> Result<Vec<Job>> {
    let mut tx = db.pool.begin().await?;
    let jobs = claim_in(&mut tx, request, time::now()).await?;
    tx.commit().await?;
    Ok(jobs)
}

/// One transaction for the hot path of a worker: the end of one job and
/// the start of the next.
pub(super) async fn finish_and_claim(
    db: &PostgresStorage,
    id: JobId,
    outcome: &JobOutcome,
    next: &ClaimRequest,
) -> Result<Vec<Job>> {
    let at = time::now();
    let mut tx = db.pool.begin().await?;
    let charge = finish_in(&mut tx, id, outcome, at).await?;
    let jobs = claim_in(&mut tx, next, at).await?;
    charge.apply(&mut tx).await?;
    tx.commit().await?;
    Ok(jobs)
}

pub(super) async fn record_progress(
    db: &PostgresStorage,
    id: JobId,
    owner: &str,
    message: &str,
) -> Result<bool> {
    let written = sqlx::query(
        "INSERT INTO job_events (job_id, status, error_message, created_at) \
         SELECT id, status, $1, $2 FROM jobs WHERE id = $3 AND lease_owner = $4 AND status = 1",
    )
    .bind(message)
    .bind(time::now())
    .bind(*id.as_uuid())
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(written.rows_affected() == 1)
}

pub(super) async fn renew_lease(
    db: &PostgresStorage,
    id: JobId,
    owner: &str,
    lease: Duration,
) -> Result<LeaseState> {
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $1) \
         WHERE id = $2 AND lease_owner = $3 AND status = 1",
    )
    .bind(lease.as_secs_f64())
    .bind(*id.as_uuid())
    .bind(owner)
    .execute(&db.pool)
    .await?;
    if renewed.rows_affected() == 1 {
        return Ok(LeaseState::Held);
    }
    let status: Option<i16> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(*id.as_uuid())
        .fetch_optional(&db.pool)
        .await?;
    Ok(if status == Some(JobStatus::Cancelled.code()) {
        LeaseState::Cancelled
    } else {
        LeaseState::Lost
    })
}

pub(super) async fn hand_back_job(db: &PostgresStorage, id: JobId, owner: &str) -> Result<bool> {
    let at = time::now();
    let mut tx = db.pool.begin().await?;
    let handed = sqlx::query(status_events::HAND_BACK_SQL)
        .bind(at)
        .bind(*id.as_uuid())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    if handed.rows_affected() == 0 {
        return Ok(false);
    }
    record_events(&mut tx, &[StatusChange::handed_back(id)], at).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn finish_job(
    db: &PostgresStorage,
    id: JobId,
    outcome: &JobOutcome,
) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    let charge = finish_in(&mut tx, id, outcome, time::now()).await?;
    charge.apply(&mut tx).await?;
    tx.commit().await.map_err(Into::into)
}

/// What a finished job owes its organization, charged by the transaction
/// that finished it as its last statement: the charge locks the
/// organization's charge row (one of a few, see [`charge`]) until the commit,
/// and holding it through the rest of the transaction (the next claim) made
/// the workers queue behind each other (scripts/bench-jobs.sh --database
/// postgres: most of the database's waits were on it).
#[must_use = "the charge must be applied before the commit"]
struct PendingCharge(Option<(Uuid, Uuid, f64)>);

impl PendingCharge {
    async fn apply(self, conn: &mut PgConnection) -> Result<()> {
        match self.0 {
            Some((org, job, cost)) => charge(conn, org, job, cost).await,
            None => Ok(()),
        }
    }
}

/// Records the outcome of an unfinished job and its event; its charge is
/// the caller's to apply last (see [`PendingCharge`]).
async fn finish_in(
    conn: &mut PgConnection,
    id: JobId,
    outcome: &JobOutcome,
    at: Timestamp,
) -> Result<PendingCharge> {
    let (outputs, error_message, kind, usage) = match outcome {
        JobOutcome::Success { outputs, usage, .. } => (Some(Json(outputs)), None, None, usage),
        JobOutcome::Failure {
            error_message,
            kind,
            usage,
            ..
        } => (
            None,
            Some(error_message.as_str()),
            Some(kind.as_str()),
            usage,
        ),
    };
    let cost = outcome.cost();
    let finished = sqlx::query(&format!(
        "UPDATE jobs SET status = $1, outputs = $2, error_message = $3, error_kind = $4, \
         input_tokens = $5, output_tokens = $6, cached_input_tokens = $7, cost = $8::numeric, \
         lease_owner = NULL, lease_expires_at = NULL, updated_at = $9 \
         WHERE id = $10 AND status IN {UNFINISHED} \
         RETURNING id, status, error_message, organization_id, awaited"
    ))
    .bind(outcome.status().code())
    .bind(outputs)
    .bind(error_message)
    .bind(kind)
    .bind(usage.input_tokens)
    .bind(usage.output_tokens)
    .bind(usage.cached_input_tokens)
    .bind(cost)
    .bind(at)
    .bind(*id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    // Already final (cancelled, or a late duplicate): nothing to record.
    let Some(row) = finished else {
        return Ok(PendingCharge(None));
    };
    let change = [changed_from_row(&row)?];
    // Other processes hear of the end only where someone waits for it (a
    // sync run, an MCP call): a notifying commit takes PostgreSQL's one
    // notification-queue lock, which made every worker of every process
    // commit one after the other.
    if row.try_get("awaited")? {
        record_events(conn, &change, at).await?;
    } else {
        write_events(conn, &change, at).await?;
    }
    Ok(PendingCharge(Some((
        row.try_get("organization_id")?,
        *id.as_uuid(),
        cost,
    ))))
}

/// Marks the listed rows CANCELLED (the caller holds their locks or
/// selects them by status in the update) and records their events.
async fn cancel_where(
    conn: &mut PgConnection,
    filter: &str,
    first: Uuid,
    org: OrganizationId,
    at: Timestamp,
) -> Result<Vec<JobId>> {
    let rows = sqlx::query(&format!(
        "UPDATE jobs SET status = 5, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
         WHERE {filter} = $1 AND organization_id = $2 AND status IN {UNFINISHED} \
         RETURNING id, status, error_message"
    ))
    .bind(first)
    .bind(*org.as_uuid())
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    let changed = changed_from_rows(&rows)?;
    record_events(conn, &changed, at).await?;
    Ok(changed.into_iter().map(|c| c.job).collect())
}

pub(super) async fn cancel_job(
    db: &PostgresStorage,
    org: OrganizationId,
    id: JobId,
) -> Result<Option<JobStatus>> {
    let mut tx = db.pool.begin().await?;
    let status: Option<i16> = sqlx::query_scalar(
        "SELECT status FROM jobs WHERE id = $1 AND organization_id = $2 FOR UPDATE",
    )
    .bind(*id.as_uuid())
    .bind(*org.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(code) = status else {
        return Ok(None);
    };
    let status = JobStatus::from_code(code.into())
        .ok_or_else(|| StorageError::Corrupt(format!("status {code}")))?;
    if status.is_final() {
        return Ok(Some(status));
    }
    cancel_where(&mut tx, "id", *id.as_uuid(), org, time::now()).await?;
    tx.commit().await?;
    Ok(Some(JobStatus::Cancelled))
}

pub(super) async fn cancel_agent_jobs(
    db: &PostgresStorage,
    org: OrganizationId,
    agent: AgentId,
) -> Result<Vec<JobId>> {
    let mut tx = db.pool.begin().await?;
    let ids = cancel_where(&mut tx, "agent_id", *agent.as_uuid(), org, time::now()).await?;
    tx.commit().await?;
    Ok(ids)
}

pub(super) async fn delete_job_data(
    db: &PostgresStorage,
    org: OrganizationId,
    id: JobId,
) -> Result<DeleteData> {
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query(
        "SELECT status, inputs FROM jobs WHERE id = $1 AND organization_id = $2 FOR UPDATE",
    )
    .bind(*id.as_uuid())
    .bind(*org.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(DeleteData::NotFound);
    };
    let status: i16 = row.try_get("status")?;
    if !JobStatus::from_code(status.into()).is_some_and(JobStatus::is_final) {
        return Ok(DeleteData::NotFinal);
    }
    let Json(mut inputs): Json<Vec<JobInput>> = row.try_get("inputs")?;
    for input in &mut inputs {
        input.value.clear();
        input.file_name = None;
    }
    sqlx::query(
        "UPDATE jobs SET inputs = $1, outputs = NULL, data_deleted = true, updated_at = $2 \
         WHERE id = $3",
    )
    .bind(Json(&inputs))
    .bind(time::now())
    .bind(*id.as_uuid())
    .execute(&mut *tx)
    .await?;
    let saved = super::references::saved_files(&mut tx, id).await?;
    // Files other jobs still refer to stay.
    let released = super::files::unlink_jobs(&mut tx, "id", *id.as_uuid()).await?;
    tx.commit().await?;
    Ok(DeleteData::deleted(released, &saved))
}

pub(super) async fn find_cached(
    pool: &PgPool,
    version: AgentVersionId,
    cache_key: &str,
    include_failed: bool,
) -> Result<Option<Job>> {
    let statuses: &[i16] = if include_failed {
        &[JobStatus::Success.code(), JobStatus::Failure.code()]
    } else {
        &[JobStatus::Success.code()]
    };
    let row = sqlx::query(&format!(
        "{SELECT_JOBS} WHERE j.agent_version_id = $1 AND j.cache_key = $2 \
         AND j.status = ANY($3) AND NOT j.data_deleted \
         ORDER BY j.created_at DESC, j.seq DESC LIMIT 1"
    ))
    .bind(*version.as_uuid())
    .bind(cache_key)
    .bind(statuses)
    .fetch_optional(pool)
    .await?;
    Ok(load_jobs(pool, row.into_iter().collect(), false)
        .await?
        .pop())
}

/// Jobs counted by status, engine and the string `model` of their version's
/// config (none when the config names none or the version is gone).
pub(super) async fn count_jobs(pool: &PgPool) -> Result<Vec<crate::JobCount>> {
    let rows = sqlx::query(
        "SELECT j.status, a.engine_class_id, \
           CASE WHEN jsonb_typeof(v.engine_config -> 'model') = 'string' \
             THEN v.engine_config ->> 'model' END AS model, \
           COUNT(*) AS count \
         FROM jobs j JOIN agents a ON a.id = j.agent_id \
         LEFT JOIN agent_versions v ON v.id = j.agent_version_id \
         GROUP BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let code: i16 = row.try_get("status")?;
            Ok(crate::JobCount {
                status: JobStatus::from_code(code.into())
                    .ok_or_else(|| StorageError::Corrupt(format!("job status {code}")))?,
                engine_class_id: row.try_get("engine_class_id")?,
                model: row.try_get("model")?,
                count: row.try_get("count")?,
            })
        })
        .collect()
}

pub(super) async fn jobs_past_retention(
    pool: &PgPool,
    finished_before: Timestamp,
    limit: i64,
) -> Result<Vec<(OrganizationId, JobId)>> {
    let rows = sqlx::query(
        "SELECT organization_id, id FROM jobs \
         WHERE status IN (3, 4, 5, 6) AND NOT data_deleted AND updated_at < $1 \
         ORDER BY updated_at LIMIT $2",
    )
    .bind(finished_before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                super::rows::id(row, "organization_id")?,
                super::rows::id(row, "id")?,
            ))
        })
        .collect()
}
