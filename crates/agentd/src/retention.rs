//! `AGENTD_JOB_RETENTION_DAYS`: the data of jobs finished longer ago than
//! that is erased, as `DELETE /v1/agents/jobs/{id}/delete-data/` erases it.
//! The rows stay as tombstones (status, times, cost, tokens), so counts,
//! usage and listings stay right; their inputs' values, outputs, files,
//! references and artifacts are gone.

use agentd_domain::time::Timestamp;
use agentd_storage::{DeleteData, Storage};

use crate::files::FileStore;

/// Jobs erased per query: a long backlog is worked through in batches.
const BATCH: i64 = 200;

/// Erases the data of every job finished before `finished_before` and the
/// bytes of the files only they referred to; returns how many jobs.
pub async fn erase_jobs_past_retention(
    storage: &dyn Storage,
    files: &FileStore,
    finished_before: Timestamp,
) -> anyhow::Result<usize> {
    let mut erased = 0;
    loop {
        let batch = storage.jobs_past_retention(finished_before, BATCH).await?;
        for (org, job) in &batch {
            if let DeleteData::Deleted {
                files: inputs,
                references,
                artifacts,
            } = storage.delete_job_data(*org, *job).await?
            {
                // Bytes that cannot be removed now have no record any more:
                // the file sweep removes them later.
                let released: Vec<_> = inputs
                    .into_iter()
                    .chain(references)
                    .chain(artifacts)
                    .collect();
                files.delete_all(&released).await;
                erased += 1;
            }
        }
        if (batch.len() as i64) < BATCH {
            return Ok(erased);
        }
    }
}
