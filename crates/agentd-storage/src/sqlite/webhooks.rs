//! Webhook subscriptions and their deliveries, a durable queue like jobs.

use std::collections::HashMap;

use agentd_domain::time;
use agentd_domain::webhook::{DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent};
use agentd_domain::{AgentId, DeliveryId, JobId, OrganizationId, WebhookId};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::jobs::{later, now};
use super::rows::{attempt_from_row, delivery_from_row, due_delivery_from_row, webhook_from_row};
use super::SqliteStorage;
use crate::status_events::{self, events_json, StatusChange};
use crate::{
    DeliveryClaim, DeliveryNext, DeliveryTargets, DueDelivery, Page, Result, WebhookUpdate,
};

/// A random (version 4) UUID made by SQLite, one per inserted row.
const NEW_UUID: &str = "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || \
    substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || \
    substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))";

/// Which subscriptions of the job's agent get a delivery.
enum Targets {
    /// Those subscribed to the event (a job just became final).
    Subscribed,
    Chosen(DeliveryTargets),
}

/// Queues one delivery per subscription in `targets` of the job's agent;
/// returns how many.
async fn insert_deliveries(
    conn: &mut SqliteConnection,
    job: JobId,
    event: WebhookEvent,
    targets: Targets,
    at: &str,
) -> Result<u64> {
    let mut query = QueryBuilder::<Sqlite>::new(format!(
        "INSERT INTO webhook_deliveries (id, organization_id, webhook_id, job_id, event, state, \
         attempts, next_attempt_at, created_at) SELECT {NEW_UUID}, w.organization_id, w.id, j.id, "
    ));
    query.push_bind(event.as_str());
    query.push(", 'pending', 0, ");
    query.push_bind(at.to_owned());
    query.push(", ");
    query.push_bind(at.to_owned());
    query.push(
        " FROM jobs j JOIN webhooks w ON w.agent_id = j.agent_id \
         AND w.organization_id = j.organization_id WHERE w.active = 1 AND j.id = ",
    );
    query.push_bind(job.to_string());
    match targets {
        Targets::Subscribed => {
            // Event names are fixed tokens: the quoted name matches only itself.
            query.push(" AND w.events LIKE ");
            query.push_bind(format!("%\"{}\"%", event.as_str()));
        }
        Targets::Chosen(DeliveryTargets::AllActive) => {}
        Targets::Chosen(DeliveryTargets::One(id)) => {
            query.push(" AND w.id = ");
            query.push_bind(id.to_string());
        }
    }
    Ok(query.build().execute(&mut *conn).await?.rows_affected())
}

/// Queues the deliveries the final statuses among `changes` raise, in the
/// transaction that set them.
pub(super) async fn queue_for_changes(
    conn: &mut SqliteConnection,
    changes: &[StatusChange],
    at: &str,
) -> Result<()> {
    for change in changes {
        if let Some(event) = change.webhook_event() {
            insert_deliveries(conn, change.job, event, Targets::Subscribed, at).await?;
        }
    }
    Ok(())
}

pub(super) async fn create_webhook(db: &SqliteStorage, webhook: &Webhook) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO webhooks (id, organization_id, agent_id, url, events, secret, description, \
         active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(webhook.id.to_string())
    .bind(webhook.organization_id.to_string())
    .bind(webhook.agent_id.to_string())
    .bind(&webhook.url)
    .bind(events_json(&webhook.events))
    .bind(webhook.secret.as_str())
    .bind(&webhook.description)
    .bind(webhook.active)
    .bind(time::format(&webhook.created_at))
    .bind(time::format(&webhook.updated_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

const OF_AGENT: &str = "organization_id = ? AND agent_id = ?";

pub(super) async fn list_webhooks(
    db: &SqliteStorage,
    org: OrganizationId,
    agent: AgentId,
    offset: i64,
    limit: i64,
) -> Result<Page<Webhook>> {
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM webhooks WHERE {OF_AGENT}"))
        .bind(org.to_string())
        .bind(agent.to_string())
        .fetch_one(&db.pool)
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT * FROM webhooks WHERE {OF_AGENT} ORDER BY created_at, rowid LIMIT ? OFFSET ?"
    ))
    .bind(org.to_string())
    .bind(agent.to_string())
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
    db: &SqliteStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
) -> Result<Option<Webhook>> {
    sqlx::query(&format!(
        "SELECT * FROM webhooks WHERE {OF_AGENT} AND id = ?"
    ))
    .bind(org.to_string())
    .bind(agent.to_string())
    .bind(id.to_string())
    .fetch_optional(&db.pool)
    .await?
    .as_ref()
    .map(webhook_from_row)
    .transpose()
}

pub(super) async fn update_webhook(
    db: &SqliteStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
    update: WebhookUpdate,
) -> Result<Option<Webhook>> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(&format!(
        "UPDATE webhooks SET url = COALESCE(?, url), events = COALESCE(?, events), \
         secret = COALESCE(?, secret), description = COALESCE(?, description), \
         active = COALESCE(?, active), updated_at = ? WHERE {OF_AGENT} AND id = ? RETURNING *"
    ))
    .bind(update.url)
    .bind(update.events.as_deref().map(events_json))
    .bind(update.secret.as_ref().map(|s| s.as_str().to_owned()))
    .bind(update.description)
    .bind(update.active)
    .bind(now())
    .bind(org.to_string())
    .bind(agent.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(super) async fn delete_webhook(
    db: &SqliteStorage,
    org: OrganizationId,
    agent: AgentId,
    id: WebhookId,
) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let deleted = sqlx::query(&format!("DELETE FROM webhooks WHERE {OF_AGENT} AND id = ?"))
        .bind(org.to_string())
        .bind(agent.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected() == 1)
}

pub(super) async fn list_deliveries(
    db: &SqliteStorage,
    webhook: WebhookId,
    offset: i64,
    limit: i64,
) -> Result<Page<WebhookDelivery>> {
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?")
            .bind(webhook.to_string())
            .fetch_one(&db.pool)
            .await?;
    let rows = sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE webhook_id = ? \
         ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
    )
    .bind(webhook.to_string())
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let mut attempts = attempts_of(db, &rows).await?;
    let items = rows
        .iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            delivery_from_row(row, attempts.remove(&id).unwrap_or_default())
        })
        .collect::<Result<_>>()?;
    Ok(Page { items, total })
}

/// The attempts of the deliveries in `rows`, by delivery id, in order.
async fn attempts_of(
    db: &SqliteStorage,
    rows: &[SqliteRow],
) -> Result<HashMap<String, Vec<DeliveryAttempt>>> {
    let mut by_delivery: HashMap<String, Vec<DeliveryAttempt>> = HashMap::new();
    if rows.is_empty() {
        return Ok(by_delivery);
    }
    let mut query =
        QueryBuilder::<Sqlite>::new("SELECT * FROM webhook_attempts WHERE delivery_id IN (");
    let mut ids = query.separated(", ");
    for row in rows {
        ids.push_bind(row.try_get::<String, _>("id")?);
    }
    query.push(") ORDER BY delivery_id, attempt");
    for row in query.build().fetch_all(&db.pool).await? {
        by_delivery
            .entry(row.try_get("delivery_id")?)
            .or_default()
            .push(attempt_from_row(&row)?);
    }
    Ok(by_delivery)
}

pub(super) async fn queue_deliveries(
    db: &SqliteStorage,
    job: JobId,
    event: WebhookEvent,
    targets: DeliveryTargets,
) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let queued = insert_deliveries(&mut tx, job, event, Targets::Chosen(targets), &now()).await?;
    tx.commit().await?;
    Ok(queued)
}

pub(super) async fn claim_deliveries(
    db: &SqliteStorage,
    claim: &DeliveryClaim,
) -> Result<Vec<DueDelivery>> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET lease_owner = ?1, lease_expires_at = ?2 WHERE id IN (\
         SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.state = 'pending' AND d.next_attempt_at <= ?3 AND w.active = 1 \
         AND (d.lease_expires_at IS NULL OR d.lease_expires_at < ?3) \
         ORDER BY d.next_attempt_at LIMIT ?4) RETURNING id",
    )
    .bind(&claim.owner)
    .bind(later(claim.lease))
    .bind(&at)
    .bind(claim.limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT d.id, d.organization_id, d.webhook_id, d.job_id, d.event, d.attempts, w.url, \
         w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id IN (",
    );
    let mut binds = query.separated(", ");
    for id in ids {
        binds.push_bind(id);
    }
    query.push(") ORDER BY d.next_attempt_at");
    query
        .build()
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(due_delivery_from_row)
        .collect()
}

pub(super) async fn record_delivery_attempt(
    db: &SqliteStorage,
    id: DeliveryId,
    owner: &str,
    attempt: &DeliveryAttempt,
    next: DeliveryNext,
) -> Result<bool> {
    let next_attempt_at = status_events::next_attempt_delay(next).map(later);
    let mut tx = db.begin_write().await?;
    let number: Option<i64> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?, \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ? AND lease_owner = ? AND state = 'pending' RETURNING attempts",
    )
    .bind(status_events::state_after(next).as_str())
    .bind(next_attempt_at)
    .bind(id.to_string())
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(number) = number else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, response_status, \
         latency_ms, error) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(number)
    .bind(time::format(&attempt.attempted_at))
    .bind(attempt.response_status.map(i64::from))
    .bind(attempt.latency_ms)
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
