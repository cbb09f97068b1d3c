//! Shared provider limits on PostgreSQL: processes on any host take turns on
//! a provider through a transaction-scoped advisory lock, and instants come
//! from the database's clock, so a host with a skewed clock counts like the
//! others.

use std::time::Duration;

use sqlx::PgConnection;

use super::PostgresStorage;
use crate::provider_limits::{admit_rate, admit_slot, millis, sql, Admission, RATE_WINDOW_MS};
use crate::Result;

const NOW_MS: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Waits for the provider's lock (held until the transaction ends) and
/// returns the database's time after it.
async fn lock_provider(conn: &mut PgConnection, provider: &str) -> Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('agentd.provider_limits'), hashtext($1))")
        .bind(provider)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_scalar(NOW_MS).fetch_one(&mut *conn).await?)
}

pub(super) async fn admit_call(
    db: &PostgresStorage,
    provider: &str,
    per_minute: u32,
) -> Result<Admission> {
    let mut tx = db.pool.begin().await?;
    let now = lock_provider(&mut tx, provider).await?;
    sqlx::query(sql::FORGET_OLD_STARTS)
        .bind(provider)
        .bind(now - RATE_WINDOW_MS)
        .execute(&mut *tx)
        .await?;
    let (recent, oldest): (i64, Option<i64>) = sqlx::query_as(sql::RECENT_STARTS)
        .bind(provider)
        .fetch_one(&mut *tx)
        .await?;
    let admission = admit_rate(recent, oldest, now, per_minute);
    if admission == Admission::Granted {
        sqlx::query(sql::RECORD_START)
            .bind(provider)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(admission)
}

pub(super) async fn take_slot(
    db: &PostgresStorage,
    provider: &str,
    max_in_flight: usize,
    slot: &str,
    lease: Duration,
) -> Result<Admission> {
    let mut tx = db.pool.begin().await?;
    let now = lock_provider(&mut tx, provider).await?;
    sqlx::query(sql::FORGET_EXPIRED_SLOTS)
        .bind(provider)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let live: i64 = sqlx::query_scalar(sql::LIVE_SLOTS)
        .bind(provider)
        .fetch_one(&mut *tx)
        .await?;
    let admission = admit_slot(live, max_in_flight);
    if admission == Admission::Granted {
        sqlx::query(sql::TAKE_SLOT)
            .bind(slot)
            .bind(provider)
            .bind(now + millis(lease))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(admission)
}

pub(super) async fn renew_slot(db: &PostgresStorage, slot: &str, lease: Duration) -> Result<bool> {
    let mut conn = db.pool.acquire().await?;
    let now: i64 = sqlx::query_scalar(NOW_MS).fetch_one(&mut *conn).await?;
    let renewed = sqlx::query(sql::RENEW_SLOT)
        .bind(now + millis(lease))
        .bind(slot)
        .execute(&mut *conn)
        .await?;
    Ok(renewed.rows_affected() == 1)
}

pub(super) async fn release_slot(db: &PostgresStorage, slot: &str) -> Result<()> {
    sqlx::query(sql::RELEASE_SLOT)
        .bind(slot)
        .execute(&db.pool)
        .await?;
    Ok(())
}
