//! Webhook subscriptions and their deliveries, a durable queue like jobs:
//! claims skip rows other transactions hold and leases run on the
//! database's clock.

use std::collections::HashMap;

use agentd_domain::time::{self, Timestamp};
use agentd_domain::webhook::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent};
use agentd_domain::{AgentId, DeliveryId, JobId, OrganizationId, WebhookId};
use sqlx::types::{Json, Uuid};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::rows::{attempt_from_row, delivery_from_row, due_delivery_from_row, webhook_from_row};
use super::PostgresStorage;
use crate::status_events::{self, StatusChange};
use crate::{
    DeliveryClaim, DeliveryNext, DeliveryTargets, DueDelivery, Page, Result, WebhookUpdate,
};

/// Which subscriptions of the job's agent get a delivery.
enum Targets {
    /// Those subscribed to the event (a job just became final).
    Subscribed,
    Chosen(DeliveryTargets),
}

/// Queues one delivery per subscription in `targets` of the job's agent;
/// returns how many.
async fn insert_deliveries(
    conn: &mut PgConnection,
    job: JobId,
    event: WebhookEvent,
    targets: Targets,
    at: Timestamp,
) -> Result<u64> {
    let mut query = QueryBuilder::<Postgres>::new(
        "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, job_id, event, state, \
         attempts, next_attempt_at, created_at) \
         SELECT gen_random_uuid(), w.organization_id, w.id, j.id, ",
    );
    query.push_bind(event.as_str());
    query.push(", 'pending', 0, ");
    query.push_bind(at);
    query.push(", ");
    query.push_bind(at);
    query.push(
        " FROM jobs j JOIN webhooks w ON w.agent_id = j.agent_id \
         AND w.organization_id = j.organization_id WHERE w.active AND j.id = ",
    );
    query.push_bind(*job.as_uuid());
    match targets {
        Targets::Subscribed => {
            query.push(" AND jsonb_exists(w.events, ");
            query.push_bind(event.as_str());
            query.push(")");
        }
        Targets::Chosen(DeliveryTargets::AllActive) => {}
        Targets::Chosen(DeliveryTargets::One(id)) => {
            query.push(" AND w.id = ");
            query.push_bind(*id.as_uuid());
        }
    }
    query.push(" ORDER BY w.seq");
    Ok(query.build().execute(&mut *conn).await?.rows_affected())
}

/// Queues the deliveries the final statuses among `changed` raise, in the
/// transaction that set them.
pub(super) async fn queue_for_changes(
    conn: &mut PgConnection,
    changed: &[StatusChange],
    at: Timestamp,
) -> Result<()> {
    for change in changed {
        if let Some(event) = change.webhook_event() {
            insert_deliveries(conn, change.job, event, Targets::Subscribed, at).await?;
        }
    }
    Ok(())
}

pub(super) async fn create_webhook(db: &PostgresStorage, webhook: &Webhook) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhooks (id, organization_id, agent_id, url, events, secret, description, \
         active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(*webhook.id.as_uuid())
    .bind(*webhook.organization_id.as_uuid())
    .bind(*webhook.agent_id.as_uuid())
    .bind(&webhook.url)
    .bind(Json(&webhook.events))
    .bind(webhook.secret.as_str())
    .bind(&webhook.description)
    .bind(webhook.active)
    .bind(webhook.created_at)
    .bind(webhook.updated_at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

const OF_AGENT: &str = "organization_id = $1 AND agent_id = $2";

pub(super) async fn list_webhooks(
    db: &PostgresStorage,
    org: OrganizationId,
    agent: AgentId,
    offset: i64,
    limit: i64,
) -> Result<Page<Webhook>> {
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM webhooks WHERE {OF_AGENT}"))
        .bind(*org.as_uuid())
        .bind(*agent.as_uuid())
        .fetch_one(&db.pool)
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT * FROM webhooks WHERE {OF_AGENT} ORDER BY created_at, seq LIMIT $3 OFFSET $4"
    ))
    .bind(*org.as_uuid())
    .bind(*agent.as_uuid())
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    Ok(Page {
        items: rows.iter().map(webhook_from_row).collect::<Result<_>>()?,
        total,
    })
}

pub(super) async fn get_webhook(
    db: &PostgresStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
) -> Result<Option<Webhook>> {
    sqlx::query(&format!(
        "SELECT * FROM webhooks WHERE {OF_AGENT} AND id = $3"
    ))
    .bind(*org.as_uuid())
    .bind(*agent.as_uuid())
    .bind(*id.as_uuid())
    .fetch_optional(&db.pool)
    .await?
    .as_ref()
    .map(webhook_from_row)
    .transpose()
}

pub(super) async fn update_webhook(
    db: &PostgresStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
    update: WebhookUpdate,
) -> Result<Option<Webhook>> {
    let row = sqlx::query(&format!(
        "UPDATE webhooks SET url = COALESCE($4, url), events = COALESCE($5, events), \
         secret = COALESCE($6, secret), description = COALESCE($7, description), \
         active = COALESCE($8, active), updated_at = $9 WHERE {OF_AGENT} AND id = $3 RETURNING *"
    ))
    .bind(*org.as_uuid())
    .bind(*agent.as_uuid())
    .bind(*id.as_uuid())
    .bind(update.url)
    .bind(update.events.map(Json))
    .bind(update.secret.as_ref().map(|s| s.as_str().to_owned()))
    .bind(update.description)
    .bind(update.active)
    .bind(time::now())
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(super) async fn delete_webhook(
    db: &PostgresStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
) -> Result<bool> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM webhooks WHERE {OF_AGENT} AND id = $3"
    ))
    .bind(*org.as_uuid())
    .bind(*agent.as_uuid())
    .bind(*id.as_uuid())
    .execute(&db.pool)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

pub(super) async fn list_deliveries(
    db: &PostgresStorage,
    webhook: WebhookId,
    offset: i64,
    limit: i64,
) -> Result<Page<WebhookDelivery>> {
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(*webhook.as_uuid())
            .fetch_one(&db.pool)
            .await?;
    let rows = sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 \
         ORDER BY created_at DESC, seq DESC LIMIT $2 OFFSET $3",
    )
    .bind(*webhook.as_uuid())
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get::<Uuid, _>("id"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut attempts: HashMap<Uuid, Vec<DeliveryAttempt>> = HashMap::new();
    for row in sqlx::query(
        "SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(&db.pool)
    .await?
    {
        attempts
            .entry(row.try_get("delivery_id")?)
            .or_default()
            .push(attempt_from_row(&row)?);
    }
    let items = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| delivery_from_row(row, attempts.remove(id).unwrap_or_default()))
        .collect::<Result<_>>()?;
    Ok(Page { items, total })
}

pub(super) async fn queue_deliveries(
    db: &PostgresStorage,
    job: JobId,
    event: WebhookEvent,
    targets: DeliveryTargets,
) -> Result<u64> {
    let mut conn = db.pool.acquire().await?;
    insert_deliveries(&mut conn, job, event, Targets::Chosen(targets), time::now()).await
}

pub(super) async fn claim_deliveries(
    db: &PostgresStorage,
    claim: &DeliveryClaim,
) -> Result<Vec<DueDelivery>> {
    let rows = sqlx::query(
        "WITH picked AS (SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                         WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.active \
                         AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now()) \
                         ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED), \
              leased AS (UPDATE webhook_deliveries d SET lease_owner = $1, \
                         lease_expires_at = now() + make_interval(secs => $2) \
                         FROM picked WHERE d.id = picked.id RETURNING d.*) \
         SELECT l.id, l.organization_id, l.webhook_id, l.job_id, l.event, l.attempts, w.url, \
                w.secret \
         FROM leased l JOIN webhooks w ON w.id = l.webhook_id ORDER BY l.next_attempt_at",
    )
    .bind(&claim.owner)
    .bind(claim.lease.as_secs_f64())
    .bind(claim.limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(due_delivery_from_row).collect()
}

pub(super) async fn record_delivery_attempt(
    db: &PostgresStorage,
    id: DeliveryId,
    owner: &str,
    attempt: &DeliveryAttempt,
    next: DeliveryNext,
) -> Result<bool> {
    let retry_in = status_events::next_attempt_delay(next).map(|d| d.as_secs_f64());
    let mut tx = db.pool.begin().await?;
    let number: Option<i32> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $1, \
         next_attempt_at = now() + make_interval(secs => $2), \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $3 AND lease_owner = $4 AND state = 'pending' RETURNING attempts",
    )
    .bind(status_events::state_after(next).as_str())
    .bind(retry_in)
    .bind(*id.as_uuid())
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(number) = number else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, response_status, \
         latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(*id.as_uuid())
    .bind(number)
    .bind(attempt.attempted_at)
    .bind(attempt.response_status.map(i32::from))
    .bind(attempt.latency_ms)
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
