//! The jobs table as a durable queue.

use std::collections::HashMap;
use std::time::Duration;

use agentd_domain::time;
use agentd_domain::{Job, JobId, JobOutcome, JobStatus, JobSummary, OrganizationId, StatusEvent};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::rows::job_from_row;
use super::SqliteStorage;
use crate::job_lists;
use crate::status_events::{self, contains_pattern, StatusChange, ABANDONED};
use crate::{
    ClaimRequest, Created, DeleteData, JobOrderField, JobQuery, LeaseState, NewJob, Page, Result,
    StorageError,
};

const SELECT_JOBS: &str = "SELECT j.*, v.version_name AS agent_version_name FROM jobs j \
    LEFT JOIN agent_versions v ON v.id = j.agent_version_id";

const UNFINISHED: &str = "(0, 1, 2)";

/// A job's duration in days, as `Job::duration_ms` computes it: first
/// event to the last non-CACHED one; NULL while the job is unfinished.
const DURATION: &str = "(CASE WHEN j.status NOT IN (0, 1, 2) THEN \
    (SELECT julianday(COALESCE(MAX(CASE WHEN e.status <> 6 THEN e.created_at END), MIN(e.created_at))) \
     - julianday(MIN(e.created_at)) FROM job_events e WHERE e.job_id = j.id) END)";

pub(super) fn now() -> String {
    time::format(&time::now())
}

pub(super) fn later(lease: Duration) -> String {
    let until = time::now() + chrono_duration(lease);
    time::format(&until)
}

fn chrono_duration(d: Duration) -> agentd_domain::time::Delta {
    agentd_domain::time::Delta::from_std(d).unwrap_or(agentd_domain::time::Delta::MAX)
}

/// Writes the status events of jobs whose status was just set, and the
/// webhook deliveries they raise, in the caller's transaction.
async fn record_events(
    conn: &mut SqliteConnection,
    changes: &[StatusChange],
    at: &str,
) -> Result<()> {
    for change in changes {
        sqlx::query(
            "INSERT INTO job_events (job_id, status, error_message, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(change.job.to_string())
        .bind(change.status.code())
        .bind(change.event_message())
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    super::webhooks::queue_for_changes(conn, changes, at).await
}

/// Charges a job's cost to its organization, in the transaction that ends it.
async fn charge(conn: &mut SqliteConnection, org: &str, cost: f64) -> Result<()> {
    if let Some(cost) = status_events::charge(cost) {
        sqlx::query(
            "UPDATE organizations SET spent = spent + $1, credits = credits - $1 WHERE id = $2",
        )
        .bind(cost)
        .bind(org)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The jobs an `UPDATE ... RETURNING id, status, error_message` changed.
fn changes_from_rows(rows: &[SqliteRow]) -> Result<Vec<StatusChange>> {
    rows.iter()
        .map(|row| {
            let code: i64 = row.try_get("status")?;
            Ok(StatusChange {
                job: parse_id(&row.try_get::<String, _>("id")?)?,
                status: JobStatus::from_code(code)
                    .ok_or_else(|| crate::StorageError::Corrupt(format!("status {code}")))?,
                error_message: row.try_get("error_message")?,
            })
        })
        .collect()
}

async fn insert_job(conn: &mut SqliteConnection, job: &NewJob, at: &str) -> Result<()> {
    let id = job.id.to_string();
    let (status, outputs, error_message, error_kind, tokens, cost) = match &job.cached {
        None => (JobStatus::Pending, None, None, None, None, None),
        Some(cached) => (
            JobStatus::Cached,
            cached
                .outputs
                .as_ref()
                .map(|o| serde_json::to_string(o).expect("outputs serialize")),
            cached.error_message.clone(),
            cached.error_kind.map(|kind| kind.as_str()),
            Some(0i64),
            Some(0.0f64),
        ),
    };
    sqlx::query(
        "INSERT INTO jobs (id, organization_id, agent_id, agent_version_id, status, inputs, metadata, \
         outputs, error_message, error_kind, input_tokens, output_tokens, cached_input_tokens, cost, \
         attempts, creator_key_id, cache_key, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(job.organization_id.to_string())
    .bind(job.agent_id.to_string())
    .bind(job.agent_version_id.to_string())
    .bind(status.code())
    .bind(serde_json::to_string(&job.inputs).expect("inputs serialize"))
    .bind(job.metadata.to_string())
    .bind(outputs)
    .bind(&error_message)
    .bind(error_kind)
    .bind(tokens)
    .bind(tokens)
    .bind(tokens)
    .bind(cost)
    .bind(job.creator_key_id)
    .bind(&job.cache_key)
    .bind(at)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    record_events(conn, &StatusChange::created(job.id, status), at).await?;
    sqlx::query("UPDATE agents SET job_count = job_count + 1, most_recent_job = ? WHERE id = ?")
        .bind(at)
        .bind(job.agent_id.to_string())
        .execute(&mut *conn)
        .await?;
    super::files::link_job_files(conn, job.organization_id, job.id, &job.files, at).await
}

pub(super) async fn create_job(db: &SqliteStorage, job: NewJob) -> Result<Created> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let created = create_in(&mut tx, &job, &at).await?;
    tx.commit().await?;
    Ok(created)
}

pub(super) async fn create_jobs(db: &SqliteStorage, jobs: Vec<NewJob>) -> Result<Vec<Created>> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let mut created = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let outcome = create_in(&mut tx, job, &at).await?;
        if let Created::KeyReused(_) = outcome {
            // All or nothing: dropping the transaction rolls the batch back.
            return Ok(vec![outcome]);
        }
        created.push(outcome);
    }
    tx.commit().await?;
    Ok(created)
}

/// Inserts the job, unless its idempotency key names a job of the same agent
/// created in the last 24 h: that job is the answer (or, for a different
/// request under the same key, the conflict).
async fn create_in(conn: &mut SqliteConnection, job: &NewJob, at: &str) -> Result<Created> {
    if let Some(idempotency) = &job.idempotency_key {
        let agent = job.agent_id.to_string();
        let existing: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT job_id, created_at, request_hash FROM idempotency_keys WHERE agent_id = ? AND key = ?",
        )
        .bind(&agent)
        .bind(&idempotency.key)
        .fetch_optional(&mut *conn)
        .await?;
        let window_start = time::format(&(time::now() - agentd_domain::time::Delta::hours(24)));
        if let Some((job_id, created_at, request_hash)) = existing {
            if created_at > window_start {
                let job_id = parse_id(&job_id)?;
                // Keys stored before hashes were kept match any request.
                let same = request_hash.is_none_or(|hash| hash == idempotency.request_hash);
                return Ok(if same {
                    Created::Existing(job_id)
                } else {
                    Created::KeyReused(job_id)
                });
            }
        }
        sqlx::query(
            "INSERT INTO idempotency_keys (agent_id, key, job_id, created_at, request_hash) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (agent_id, key) DO UPDATE SET job_id = excluded.job_id, \
             created_at = excluded.created_at, request_hash = excluded.request_hash",
        )
        .bind(&agent)
        .bind(&idempotency.key)
        .bind(job.id.to_string())
        .bind(at)
        .bind(&idempotency.request_hash)
        .execute(&mut *conn)
        .await?;
    }
    insert_job(conn, job, at).await?;
    Ok(Created::New(job.id))
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| crate::StorageError::Corrupt(format!("bad id {text}")))
}

/// Loads jobs matching a filter, with their events.
async fn load_jobs(pool: &SqlitePool, rows: Vec<SqliteRow>, with_events: bool) -> Result<Vec<Job>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<std::result::Result<_, _>>()?;
    let mut events: HashMap<String, Vec<StatusEvent>> = HashMap::new();
    for chunk in ids.chunks(500).filter(|_| with_events) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT job_id, status, error_message, created_at FROM job_events WHERE job_id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id);
        }
        query.push(") ORDER BY id");
        for row in query.build().fetch_all(pool).await? {
            let job_id: String = row.try_get("job_id")?;
            events
                .entry(job_id)
                .or_default()
                .push(super::rows::event_from_row(&row)?);
        }
    }
    rows.iter()
        .zip(ids)
        .map(|(row, id)| job_from_row(row, events.remove(&id).unwrap_or_default()))
        .collect()
}

pub(super) async fn get_jobs(
    pool: &SqlitePool,
    org: Option<OrganizationId>,
    ids: &[JobId],
    with_events: bool,
) -> Result<Vec<Job>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(500) {
        let mut query = QueryBuilder::<Sqlite>::new(format!("{SELECT_JOBS} WHERE j.id IN ("));
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.to_string());
        }
        query.push(")");
        if let Some(org) = org {
            query
                .push(" AND j.organization_id = ")
                .push_bind(org.to_string());
        }
        rows.extend(query.build().fetch_all(pool).await?);
    }
    load_jobs(pool, rows, with_events).await
}

pub(super) async fn get_job_summaries(
    pool: &SqlitePool,
    org: OrganizationId,
    ids: &[JobId],
) -> Result<Vec<JobSummary>> {
    let mut summaries = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, agent_id, status, error_message, created_at, updated_at FROM jobs WHERE id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.to_string());
        }
        query
            .push(") AND organization_id = ")
            .push_bind(org.to_string());
        for row in query.build().fetch_all(pool).await? {
            summaries.push(super::rows::summary_from_row(&row)?);
        }
    }
    Ok(summaries)
}

fn push_job_filters<'q>(
    query: &mut QueryBuilder<'q, Sqlite>,
    org: OrganizationId,
    agent: agentd_domain::AgentId,
    filter: &'q JobQuery,
) {
    query
        .push(" WHERE j.organization_id = ")
        .push_bind(org.to_string())
        .push(" AND j.agent_id = ")
        .push_bind(agent.to_string());
    if !filter.statuses.is_empty() {
        query.push(" AND j.status IN (");
        let mut list = query.separated(", ");
        for status in &filter.statuses {
            list.push_bind(status.code());
        }
        query.push(")");
    }
    if let Some(name) = &filter.version_name {
        query
            .push(" AND v.version_name = ")
            .push_bind(name.as_str());
    }
    for (key, value) in &filter.metadata {
        query
            .push(" AND json_extract(j.metadata, '$.\"' || ")
            .push_bind(key.replace('"', ""))
            .push(" || '\"') = ");
        match value {
            serde_json::Value::String(s) => query.push_bind(s.as_str()),
            serde_json::Value::Bool(b) => query.push_bind(*b as i64),
            serde_json::Value::Number(n) => query.push_bind(n.as_f64().unwrap_or_default()),
            other => query.push_bind(other.to_string()),
        };
    }
    if let Some(from) = &filter.created_from {
        query
            .push(" AND j.created_at >= ")
            .push_bind(time::format(from));
    }
    if let Some(to) = &filter.created_to {
        query
            .push(" AND j.created_at <= ")
            .push_bind(time::format(to));
    }
    let substrings = [("j.id", &filter.job_id), ("j.inputs", &filter.job_inputs)];
    for (column, text) in substrings {
        if let Some(text) = text {
            query
                .push(format!(" AND {column} LIKE "))
                .push_bind(contains_pattern(text))
                .push(" ESCAPE '\\'");
        }
    }
    if let Some(search) = &filter.search {
        let pattern = contains_pattern(search);
        query
            .push(" AND (j.id LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR j.inputs LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR j.metadata LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

pub(super) async fn list_jobs(
    pool: &SqlitePool,
    org: OrganizationId,
    agent: agentd_domain::AgentId,
    filter: &JobQuery,
) -> Result<Page<Job>> {
    let total = count_listed_jobs(pool, org, agent, filter).await?;

    let mut select = QueryBuilder::<Sqlite>::new(SELECT_JOBS);
    push_job_filters(&mut select, org, agent, filter);
    let default_order = [(JobOrderField::CreatedAt, true)];
    let keys = if filter.order_by.is_empty() {
        &default_order[..]
    } else {
        &filter.order_by[..]
    };
    let order: Vec<String> = keys
        .iter()
        .map(|(field, descending)| {
            let column = match field {
                JobOrderField::Id => "j.id",
                JobOrderField::AgentVersionName => "v.version_name",
                JobOrderField::StatusCode => "j.status",
                JobOrderField::CreatedAt => "j.created_at",
                JobOrderField::LastUpdatedAt => "j.updated_at",
                JobOrderField::Cost => "j.cost",
                JobOrderField::Duration => DURATION,
                JobOrderField::GraderScore => "NULL",
            };
            format!("{column} {}", if *descending { "DESC" } else { "ASC" })
        })
        .collect();
    // Ties follow the direction of the first key, then creation order.
    let direction = if keys[0].1 { "DESC" } else { "ASC" };
    select.push(format!(
        " ORDER BY {}, j.created_at {direction}, j.rowid {direction} LIMIT ",
        order.join(", ")
    ));
    select
        .push_bind(filter.limit)
        .push(" OFFSET ")
        .push_bind(filter.offset);
    let rows = select.build().fetch_all(pool).await?;
    Ok(Page {
        items: load_jobs(pool, rows, true).await?,
        total,
    })
}

/// How many jobs match, counting no further than the cap (see
/// `JobQuery::count_cap`); an unfiltered list reads the agent's count.
async fn count_listed_jobs(
    pool: &SqlitePool,
    org: OrganizationId,
    agent: agentd_domain::AgentId,
    filter: &JobQuery,
) -> Result<i64> {
    if filter.is_unfiltered() {
        let kept: Option<i64> = sqlx::query_scalar(job_lists::AGENT_JOB_COUNT)
            .bind(agent.to_string())
            .bind(org.to_string())
            .fetch_optional(pool)
            .await?;
        return Ok(job_lists::capped(filter, kept.unwrap_or(0)));
    }
    let mut count = QueryBuilder::<Sqlite>::new(format!(
        "SELECT COUNT(*) FROM (SELECT 1 {}",
        job_lists::from_clause(filter)
    ));
    push_job_filters(&mut count, org, agent, filter);
    if let Some(cap) = filter.count_cap {
        count.push(" LIMIT ").push_bind(cap);
    }
    count.push(") matching");
    Ok(count.build_query_scalar().fetch_one(pool).await?)
}

/// Jobs whose worker vanished: retried, or failed after `max_attempts`.
async fn requeue_expired(conn: &mut SqliteConnection, max_attempts: i32, at: &str) -> Result<()> {
    let rows = sqlx::query(
        "UPDATE jobs SET status = CASE WHEN attempts >= ?1 THEN 4 ELSE 2 END, \
         error_message = CASE WHEN attempts >= ?1 THEN ?2 ELSE error_message END, \
         error_kind = CASE WHEN attempts >= ?1 THEN 'internal' ELSE error_kind END, \
         lease_owner = NULL, lease_expires_at = NULL, updated_at = ?3 \
         WHERE status = 1 AND lease_expires_at < ?3 RETURNING id, status, error_message",
    )
    .bind(max_attempts)
    .bind(ABANDONED)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    record_events(conn, &changes_from_rows(&rows)?, at).await
}

/// Leases up to `request.limit` runnable jobs, oldest first.
async fn claim_in(
    conn: &mut SqliteConnection,
    request: &ClaimRequest,
    requeue: bool,
    at: &str,
) -> Result<Vec<Job>> {
    if requeue {
        requeue_expired(conn, request.max_attempts, at).await?;
    }
    let claimed = sqlx::query(&format!(
        "UPDATE jobs SET status = 1, attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?, \
         updated_at = ? WHERE id IN (SELECT id FROM jobs WHERE status IN (0, 2) \
         ORDER BY created_at, rowid LIMIT ?) AND status IN {UNFINISHED} RETURNING *"
    ))
    .bind(&request.owner)
    .bind(later(request.lease))
    .bind(at)
    .bind(request.limit)
    .fetch_all(&mut *conn)
    .await?;
    // Workers need no status history.
    let jobs = claimed
        .iter()
        .map(|row| job_from_row(row, Vec::new()))
        .collect::<Result<Vec<_>>>()?;
    let started: Vec<StatusChange> = jobs
        .iter()
        .map(|job| StatusChange::new(job.id, JobStatus::Started))
        .collect();
    record_events(conn, &started, at).await?;
    Ok(jobs)
}

pub(super) async fn claim_jobs(db: &SqliteStorage, request: &ClaimRequest) -> Result<Vec<Job>> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let jobs = claim_in(&mut tx, request, db.requeue_due(request.lease), &at).await?;
    tx.commit().await?;
    Ok(jobs)
}

/// One transaction for the hot path of a worker: the end of one job and
/// the start of the next.
pub(super) async fn finish_and_claim(
    db: &SqliteStorage,
    id: JobId,
    outcome: &JobOutcome,
    next: &ClaimRequest,
) -> Result<Vec<Job>> {
    let at = now();
    let mut tx = db.begin_write().await?;
    finish_in(&mut tx, id, outcome, &at).await?;
    let jobs = claim_in(&mut tx, next, db.requeue_due(next.lease), &at).await?;
    tx.commit().await?;
    Ok(jobs)
}

pub(super) async fn record_progress(
    db: &SqliteStorage,
    id: JobId,
    owner: &str,
    message: &str,
) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let written = sqlx::query(
        "INSERT INTO job_events (job_id, status, error_message, created_at) \
         SELECT id, status, ?, ? FROM jobs WHERE id = ? AND lease_owner = ? AND status = 1",
    )
    .bind(message)
    .bind(now())
    .bind(id.to_string())
    .bind(owner)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(written.rows_affected() == 1)
}

pub(super) async fn renew_lease(
    db: &SqliteStorage,
    id: JobId,
    owner: &str,
    lease: Duration,
) -> Result<LeaseState> {
    let mut tx = db.begin_write().await?;
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = 1",
    )
    .bind(later(lease))
    .bind(id.to_string())
    .bind(owner)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if renewed.rows_affected() == 1 {
        return Ok(LeaseState::Held);
    }
    let status: Option<i64> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await?;
    Ok(if status == Some(JobStatus::Cancelled.code() as i64) {
        LeaseState::Cancelled
    } else {
        LeaseState::Lost
    })
}

pub(super) async fn hand_back_job(db: &SqliteStorage, id: JobId, owner: &str) -> Result<bool> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let handed = sqlx::query(status_events::HAND_BACK_SQL)
        .bind(&at)
        .bind(id.to_string())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    if handed.rows_affected() == 0 {
        return Ok(false);
    }
    record_events(&mut tx, &[StatusChange::handed_back(id)], &at).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn finish_job(db: &SqliteStorage, id: JobId, outcome: &JobOutcome) -> Result<()> {
    let at = now();
    let mut tx = db.begin_write().await?;
    finish_in(&mut tx, id, outcome, &at).await?;
    tx.commit().await
}

/// Records the outcome of an unfinished job and charges its cost.
async fn finish_in(
    conn: &mut SqliteConnection,
    id: JobId,
    outcome: &JobOutcome,
    at: &str,
) -> Result<()> {
    let (outputs, error_message, kind, usage) = match outcome {
        JobOutcome::Success { outputs, usage, .. } => (
            Some(serde_json::to_string(outputs).expect("outputs serialize")),
            None,
            None,
            usage,
        ),
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
    let finished: Option<String> = sqlx::query_scalar(&format!(
        "UPDATE jobs SET status = ?, outputs = ?, error_message = ?, error_kind = ?, input_tokens = ?, \
         output_tokens = ?, cached_input_tokens = ?, cost = ?, lease_owner = NULL, \
         lease_expires_at = NULL, updated_at = ? WHERE id = ? AND status IN {UNFINISHED} \
         RETURNING organization_id"
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
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    // Already final (cancelled, or a late duplicate): nothing to record.
    let Some(org) = finished else {
        return Ok(());
    };
    let change = StatusChange {
        job: id,
        status: outcome.status(),
        error_message: error_message.map(str::to_owned),
    };
    record_events(conn, &[change], at).await?;
    charge(conn, &org, cost).await
}

/// Cancels the unfinished jobs matching `filter`; returns their ids.
async fn cancel_where(db: &SqliteStorage, filter: &str, binds: &[String]) -> Result<Vec<String>> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let sql = format!(
        "UPDATE jobs SET status = 5, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? \
         WHERE {filter} AND status IN {UNFINISHED} RETURNING id"
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql).bind(&at);
    for bind in binds {
        query = query.bind(bind);
    }
    let ids = query.fetch_all(&mut *tx).await?;
    let cancelled = ids
        .iter()
        .map(|id| Ok(StatusChange::new(parse_id(id)?, JobStatus::Cancelled)))
        .collect::<Result<Vec<_>>>()?;
    record_events(&mut tx, &cancelled, &at).await?;
    tx.commit().await?;
    Ok(ids)
}

pub(super) async fn cancel_job(
    db: &SqliteStorage,
    org: OrganizationId,
    id: JobId,
) -> Result<Option<JobStatus>> {
    cancel_where(
        db,
        "id = ? AND organization_id = ?",
        &[id.to_string(), org.to_string()],
    )
    .await?;
    let status: Option<i64> =
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = ? AND organization_id = ?")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&db.pool)
            .await?;
    status
        .map(|code| {
            JobStatus::from_code(code)
                .ok_or_else(|| crate::StorageError::Corrupt(format!("status {code}")))
        })
        .transpose()
}

pub(super) async fn cancel_agent_jobs(
    db: &SqliteStorage,
    org: OrganizationId,
    agent: agentd_domain::AgentId,
) -> Result<Vec<JobId>> {
    let ids = cancel_where(
        db,
        "agent_id = ? AND organization_id = ?",
        &[agent.to_string(), org.to_string()],
    )
    .await?;
    ids.iter().map(|id| parse_id(id)).collect()
}

pub(super) async fn delete_job_data(
    db: &SqliteStorage,
    org: OrganizationId,
    id: JobId,
) -> Result<DeleteData> {
    let mut tx = db.begin_write().await?;
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT status, inputs FROM jobs WHERE id = ? AND organization_id = ?")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, inputs)) = row else {
        return Ok(DeleteData::NotFound);
    };
    if !JobStatus::from_code(status).is_some_and(JobStatus::is_final) {
        return Ok(DeleteData::NotFinal);
    }
    let mut inputs: Vec<agentd_domain::JobInput> =
        serde_json::from_str(&inputs).map_err(|e| crate::StorageError::Corrupt(e.to_string()))?;
    for input in &mut inputs {
        input.value.clear();
        input.file_name = None;
    }
    sqlx::query(
        "UPDATE jobs SET inputs = ?, outputs = NULL, data_deleted = 1, updated_at = ? WHERE id = ?",
    )
    .bind(serde_json::to_string(&inputs).expect("inputs serialize"))
    .bind(now())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    let saved = super::references::saved_files(&mut tx, id).await?;
    // Files other jobs still refer to stay.
    let released = super::files::unlink_jobs(&mut tx, "id = ?", &id.to_string()).await?;
    tx.commit().await?;
    Ok(DeleteData::deleted(released, &saved))
}

pub(super) async fn find_cached(
    pool: &SqlitePool,
    version: agentd_domain::AgentVersionId,
    cache_key: &str,
    include_failed: bool,
) -> Result<Option<Job>> {
    let statuses = if include_failed { "(3, 4)" } else { "(3)" };
    let row = sqlx::query(&format!(
        "{SELECT_JOBS} WHERE j.agent_version_id = ? AND j.cache_key = ? AND j.status IN {statuses} \
         AND j.data_deleted = 0 ORDER BY j.created_at DESC, j.rowid DESC LIMIT 1"
    ))
    .bind(version.to_string())
    .bind(cache_key)
    .fetch_optional(pool)
    .await?;
    Ok(load_jobs(pool, row.into_iter().collect(), false)
        .await?
        .pop())
}

/// Jobs counted by status, engine and the string `model` of their version's
/// config (none when the config names none or the version is gone).
pub(super) async fn count_jobs(pool: &SqlitePool) -> Result<Vec<crate::JobCount>> {
    let rows = sqlx::query(
        "SELECT j.status, a.engine_class_id, \
           CASE WHEN json_type(v.engine_config, '$.model') = 'text' \
             THEN json_extract(v.engine_config, '$.model') END AS model, \
           COUNT(*) AS count \
         FROM jobs j JOIN agents a ON a.id = j.agent_id \
         LEFT JOIN agent_versions v ON v.id = j.agent_version_id \
         GROUP BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let code: i64 = row.try_get("status")?;
            Ok(crate::JobCount {
                status: JobStatus::from_code(code)
                    .ok_or_else(|| StorageError::Corrupt(format!("job status {code}")))?,
                engine_class_id: row.try_get("engine_class_id")?,
                model: row.try_get("model")?,
                count: row.try_get("count")?,
            })
        })
        .collect()
}

pub(super) async fn jobs_past_retention(
    pool: &SqlitePool,
    finished_before: time::Timestamp,
    limit: i64,
) -> Result<Vec<(OrganizationId, JobId)>> {
    let rows = sqlx::query(
        "SELECT organization_id, id FROM jobs \
         WHERE status IN (3, 4, 5, 6) AND data_deleted = 0 AND updated_at < ? \
         ORDER BY updated_at LIMIT ?",
    )
    .bind(time::format(&finished_before))
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
