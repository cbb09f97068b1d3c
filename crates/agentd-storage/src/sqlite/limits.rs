//! Shared provider limits on SQLite: processes on one file take turns
//! through its single writer; instants come from the host's clock (the
//! processes sharing a file share a host).

use std::time::Duration;

use agentd_domain::time;

use super::SqliteStorage;
use crate::provider_limits::{admit_rate, admit_slot, millis, sql, Admission, RATE_WINDOW_MS};
use crate::Result;

fn now_ms() -> i64 {
    time::now().timestamp_millis()
}

pub(super) async fn admit_call(
    db: &SqliteStorage,
    provider: &str,
    per_minute: u32,
) -> Result<Admission> {
    let mut tx = db.begin_write().await?;
    // Read after the lock: the instants recorded before are not later.
    let now = now_ms();
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
    db: &SqliteStorage,
    provider: &str,
    max_in_flight: usize,
    slot: &str,
    lease: Duration,
) -> Result<Admission> {
    let mut tx = db.begin_write().await?;
    // Read after the lock: the instants recorded before are not later.
    let now = now_ms();
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

pub(super) async fn renew_slot(db: &SqliteStorage, slot: &str, lease: Duration) -> Result<bool> {
    let mut tx = db.begin_write().await?;
    let renewed = sqlx::query(sql::RENEW_SLOT)
        .bind(now_ms() + millis(lease))
        .bind(slot)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(renewed.rows_affected() == 1)
}

pub(super) async fn release_slot(db: &SqliteStorage, slot: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(sql::RELEASE_SLOT)
        .bind(slot)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
