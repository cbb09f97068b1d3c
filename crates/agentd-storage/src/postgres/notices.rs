//! `LISTEN/NOTIFY` between the processes on one database. Notifications are
//! sent in the transaction that changes a job's status (PostgreSQL delivers
//! them at commit, and drops them on rollback), so a listener never hears of
//! a change it cannot read yet.

use std::collections::HashSet;

use agentd_domain::{JobId, JobStatus};
use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgNotification};
use sqlx::types::Uuid;
use sqlx::{PgConnection, PgPool};

use crate::status_events::StatusChange;
use crate::{JobNotice, JobNotices, Result};

/// Jobs became runnable; no payload (PostgreSQL folds identical
/// notifications of one transaction into one).
const RUNNABLE: &str = "agentd_jobs_runnable";
/// A job became final; the payload is its id.
const FINAL: &str = "agentd_job_final";

/// Announces the status changes of a transaction in one statement: each
/// job that became final by its id, and once that work became runnable
/// (a job created final, a cache hit, is not).
pub(super) async fn notify_changes(
    conn: &mut PgConnection,
    changed: &[StatusChange],
) -> Result<()> {
    let finals: HashSet<JobId> = changed
        .iter()
        .filter(|change| change.status.is_final())
        .map(|change| change.job)
        .collect();
    let runnable = changed.iter().any(|change| {
        matches!(change.status, JobStatus::Pending | JobStatus::Retry)
            && !finals.contains(&change.job)
    });
    let mut channels = vec![FINAL; finals.len()];
    let mut payloads: Vec<String> = finals.iter().map(JobId::to_string).collect();
    if runnable {
        channels.push(RUNNABLE);
        payloads.push(String::new());
    }
    if channels.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_notify(n.channel, n.payload) \
         FROM UNNEST($1::text[], $2::text[]) AS n(channel, payload)",
    )
    .bind(channels)
    .bind(payloads)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Listens on its own connection, taken out of the pool; a lost connection
/// is replaced on the next call.
pub(super) struct PgJobNotices {
    pool: PgPool,
    listener: Option<PgListener>,
}

impl PgJobNotices {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            listener: None,
        }
    }

    async fn connect(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([RUNNABLE, FINAL]).await?;
        Ok(listener)
    }
}

fn notice_from(notification: &PgNotification) -> Option<JobNotice> {
    match notification.channel() {
        RUNNABLE => Some(JobNotice::Runnable),
        FINAL => match notification.payload().parse::<Uuid>() {
            Ok(id) => Some(JobNotice::Final(JobId::from(id))),
            Err(_) => {
                tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed job notification"
                );
                None
            }
        },
        _ => None,
    }
}

#[async_trait]
impl JobNotices for PgJobNotices {
    async fn next(&mut self) -> Result<JobNotice> {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                self.listener = Some(self.connect().await?);
                return Ok(JobNotice::Resumed);
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(notice) = notice_from(&notification) {
                        return Ok(notice);
                    }
                }
                // The connection closed: listen again on a new one.
                Ok(None) => self.listener = None,
                Err(error) => {
                    self.listener = None;
                    return Err(error.into());
                }
            }
        }
    }
}
