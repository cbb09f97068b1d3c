//! The periodic sweep of files nothing refers to: records no job links
//! (left by older versions, or by a link removed outside agentd's rules) and
//! bytes without a record (a crash between a commit and the removal of the
//! bytes, or between writing and committing). Only what is older than a
//! grace period goes, so files of requests and jobs in flight are safe.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentd_domain::{time, FileId};
use agentd_storage::Storage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::files::{Entry, FileStore};

#[derive(Clone, Copy, Debug)]
pub struct SweepConfig {
    /// Time between two sweeps; zero turns the sweep off.
    pub interval: Duration,
    /// Age below which nothing is removed.
    pub grace: Duration,
}

/// What one sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Records no job referred to (their bytes too).
    pub records: usize,
    /// Bytes with no record, and partial files.
    pub orphan_bytes: usize,
}

/// Sweeps at start and then every `config.interval` until `shutdown`.
pub fn spawn(
    storage: Arc<dyn Storage>,
    files: FileStore,
    config: SweepConfig,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if config.interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {},
                _ = shutdown.cancelled() => return,
            }
            match sweep(storage.as_ref(), &files, config.grace).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        records = report.records,
                        orphan_bytes = report.orphan_bytes,
                        "file sweep removed orphans"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "file sweep failed"),
            }
        }
    }))
}

/// One sweep.
pub async fn sweep(
    storage: &dyn Storage,
    files: &FileStore,
    grace: Duration,
) -> anyhow::Result<SweepReport> {
    let grace_delta = time::Delta::from_std(grace).unwrap_or(time::Delta::MAX);
    let created_before = time::now()
        .checked_sub_signed(grace_delta)
        .unwrap_or(time::Timestamp::UNIX_EPOCH);
    let released = storage.delete_unreferenced_files(created_before).await?;
    files.delete_all(&released).await;

    let written_before = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut stored: Vec<FileId> = Vec::new();
    let mut orphan_bytes = 0;
    for entry in files.entries_older_than(written_before).await? {
        match entry {
            Entry::Stored(id) => stored.push(id),
            Entry::Partial(name) => {
                files.remove_partial(&name).await?;
                orphan_bytes += 1;
            }
        }
    }
    let recorded: std::collections::HashSet<FileId> =
        storage.recorded_files(&stored).await?.into_iter().collect();
    let unrecorded: Vec<FileId> = stored
        .into_iter()
        .filter(|id| !recorded.contains(id))
        .collect();
    orphan_bytes += unrecorded.len() - files.delete_all(&unrecorded).await.len();
    Ok(SweepReport {
        records: released.len(),
        orphan_bytes,
    })
}
