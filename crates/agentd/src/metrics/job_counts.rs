//! Gauges read from the database at scrape time: jobs by status, engine and
//! model, and the queue depth. Counted by one grouped query, cached for a
//! moment so that frequent scrapes (or several Prometheus servers) cost one
//! query per interval.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use agentd_domain::JobStatus;
use agentd_storage::{JobCount, Storage};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Jobs in the database by `status`, `engine` and `model` (all processes).
pub const JOBS: &str = "agentd_jobs";
/// Jobs waiting for a worker (PENDING or RETRY), in the database.
pub const QUEUE_DEPTH: &str = "agentd_queue_depth";
/// 1 when the last count of jobs succeeded, 0 when the database failed.
pub const DATABASE_UP: &str = "agentd_database_up";

/// How long a count is reused.
const CACHE_FOR: Duration = Duration::from_secs(2);

pub struct JobCounts {
    storage: Arc<dyn Storage>,
    /// The last successful count and when it was taken. The lock is held
    /// across the query, so concurrent scrapes wait for one count.
    cached: Mutex<Option<(Instant, Arc<Vec<JobCount>>)>>,
}

impl JobCounts {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            cached: Mutex::new(None),
        }
    }

    /// The current counts, from the cache when it is fresh.
    async fn counts(&self) -> agentd_storage::Result<Arc<Vec<JobCount>>> {
        let mut cached = self.cached.lock().await;
        if let Some((taken, counts)) = cached.as_ref() {
            if taken.elapsed() < CACHE_FOR {
                return Ok(Arc::clone(counts));
            }
        }
        let counts = Arc::new(self.storage.count_jobs().await?);
        *cached = Some((Instant::now(), Arc::clone(&counts)));
        Ok(counts)
    }

    /// The database gauges in the Prometheus text format. A job whose
    /// version names no model is labelled with `default_model`, the model
    /// that runs it. A database failure is logged and reported as
    /// `agentd_database_up 0`, without the job gauges.
    pub async fn render(&self, default_model: &str) -> String {
        match self.counts().await {
            Ok(counts) => {
                let mut text = render_counts(&counts, default_model);
                text.push_str(&gauge(
                    DATABASE_UP,
                    "1 when the database answered the last count of jobs.",
                    1,
                ));
                text
            }
            Err(error) => {
                tracing::warn!(%error, "counting jobs for /metrics failed");
                gauge(
                    DATABASE_UP,
                    "1 when the database answered the last count of jobs.",
                    0,
                )
            }
        }
    }
}

fn gauge(name: &str, help: &str, value: i64) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
}

/// `agentd_jobs` for every status of every engine and model seen (zeros
/// included, so that a series drops to 0 instead of vanishing), and
/// `agentd_queue_depth`.
fn render_counts(counts: &[JobCount], default_model: &str) -> String {
    // Counts by series, then by status code.
    let mut by_series: BTreeMap<(&str, &str), BTreeMap<i16, i64>> = BTreeMap::new();
    for count in counts {
        let model = count.model.as_deref().unwrap_or(default_model);
        *by_series
            .entry((&count.engine_class_id, model))
            .or_default()
            .entry(count.status.code())
            .or_default() += count.count;
    }
    let mut text = format!(
        "# HELP {JOBS} Jobs in the database by status, engine and model (all processes sharing it).\n\
         # TYPE {JOBS} gauge\n"
    );
    for ((engine, model), statuses) in &by_series {
        for status in JobStatus::ALL {
            let value = statuses.get(&status.code()).copied().unwrap_or(0);
            let _ = writeln!(
                text,
                "{JOBS}{{status=\"{}\",engine=\"{}\",model=\"{}\"}} {value}",
                status.name(),
                escape_label(engine),
                escape_label(model),
            );
        }
    }
    let waiting: i64 = counts
        .iter()
        .filter(|c| matches!(c.status, JobStatus::Pending | JobStatus::Retry))
        .map(|c| c.count)
        .sum();
    text.push_str(&gauge(
        QUEUE_DEPTH,
        "Jobs waiting for a worker (PENDING or RETRY) in the database.",
        waiting,
    ));
    text
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(status: JobStatus, model: Option<&str>, count: i64) -> JobCount {
        JobCount {
            status,
            engine_class_id: "MultimodalExtractionEngine".into(),
            model: model.map(str::to_owned),
            count,
        }
    }

    #[test]
    fn every_status_is_listed_and_the_default_model_names_unset_models() {
        let text = render_counts(
            &[
                count(JobStatus::Pending, None, 2),
                count(JobStatus::Retry, Some("m\"1"), 1),
                count(JobStatus::Success, Some("default"), 4),
                count(JobStatus::Success, None, 3),
            ],
            "default",
        );
        let line = |status: &str, model: &str| {
            format!("agentd_jobs{{status=\"{status}\",engine=\"MultimodalExtractionEngine\",model=\"{model}\"}}")
        };
        assert!(text.contains(&format!("{} 7\n", line("SUCCESS", "default"))));
        assert!(text.contains(&format!("{} 2\n", line("PENDING", "default"))));
        assert!(text.contains(&format!("{} 0\n", line("FAILURE", "default"))));
        assert!(text.contains(&format!("{} 1\n", line("RETRY", "m\\\"1"))));
        assert!(text.contains(&format!("{} 0\n", line("SUCCESS", "m\\\"1"))));
        assert!(text.contains("\nagentd_queue_depth 3\n"));
        assert_eq!(
            text.matches("agentd_jobs{").count(),
            2 * JobStatus::ALL.len()
        );
    }
}
