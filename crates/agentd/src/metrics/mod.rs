//! Prometheus metrics at `/metrics`. Two sources:
//!
//! - **in-process** counters and histograms, recorded through the `metrics`
//!   facade where things happen (HTTP requests, jobs this process ran,
//!   provider calls, webhook deliveries) and rendered by
//!   `metrics-exporter-prometheus`: each process reports its own, and
//!   Prometheus sums them;
//! - **database** gauges (jobs by status, queue depth), counted at scrape
//!   time by one grouped query and cached briefly ([`job_counts`]), so that
//!   every process sharing a database reports the same totals.

pub mod http;
pub mod job_counts;

use std::sync::OnceLock;
use std::time::Duration;

use agentd_domain::{JobOutcome, JobStatus};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use job_counts::JobCounts;

/// Jobs this process finished running, by `engine`, `model` and `status`.
pub const JOBS_FINISHED_TOTAL: &str = "agentd_jobs_finished_total";
/// Seconds a job ran in this process (one attempt), by `engine`, `model`, `status`.
pub const JOB_DURATION_SECONDS: &str = "agentd_job_duration_seconds";
/// Seconds from a job's submission to its first claim by a worker.
pub const JOB_QUEUE_WAIT_SECONDS: &str = "agentd_job_queue_wait_seconds";
/// Cost charged per job this process ran, by `engine` and `model`: a
/// histogram, so that `_sum` is the total cost (counters hold integers only).
pub const JOB_COST: &str = "agentd_job_cost";
/// HTTP requests by `method`, `route` (the route template) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "agentd_http_requests_total";
/// Seconds per HTTP request by `method` and `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "agentd_http_request_duration_seconds";
/// Webhook deliveries by `outcome`.
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "agentd_webhook_deliveries_total";

/// Bucket bounds (seconds) of every `*_seconds` histogram: from a fast
/// HTTP answer to a long document job.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Bucket bounds of the cost of one job.
const COST_BUCKETS: &[f64] = &[0.0001, 0.001, 0.01, 0.1, 1.0, 10.0];

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed on first use (servers built in one
/// test process share it); `None` when another recorder was installed.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full(JOB_COST.into()), COST_BUCKETS)
        })
        .and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => {
            describe();
            spawn_upkeep(handle.clone());
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed; /metrics shows database gauges only");
            None
        }
    }
}

/// Without upkeep, histogram samples pile up between scrapes.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the metrics upkeep thread");
    }
}

fn describe() {
    use ::metrics::{describe_counter, describe_histogram, Unit};
    use agentd_providers::metered;
    describe_counter!(
        JOBS_FINISHED_TOTAL,
        "Jobs this process finished running, by engine, model and final status."
    );
    describe_histogram!(
        JOB_DURATION_SECONDS,
        Unit::Seconds,
        "Time a worker of this process spent on one attempt at a job."
    );
    describe_histogram!(
        JOB_QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time from a job's submission to its first claim by a worker."
    );
    describe_histogram!(
        JOB_COST,
        "Cost charged per job this process ran, by engine and model (_sum: total cost)."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by method, route template and status code."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request latency by method and route template."
    );
    describe_counter!(WEBHOOK_DELIVERIES_TOTAL, "Webhook deliveries by outcome.");
    describe_counter!(
        metered::REQUESTS_TOTAL,
        "Model calls (retries included) by provider, model and outcome."
    );
    describe_histogram!(
        metered::REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Model call latency (retries included) by provider and model."
    );
    describe_counter!(
        metered::TOKENS_TOTAL,
        "Tokens of successful model calls by provider, model and kind."
    );
    describe_counter!(
        metered::RETRIES_TOTAL,
        "Retried model call attempts by provider and the failed attempt's outcome."
    );
}

/// Records one webhook delivery attempt's `outcome` (`success`,
/// `http_error`, `timeout`, ...), for the webhook dispatcher.
pub fn record_webhook_delivery(outcome: &str) {
    ::metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => outcome.to_owned()).increment(1);
}

/// What a job ran with, as far as the attempt got before it ended.
#[derive(Clone, Debug)]
pub struct JobLabels {
    pub engine: String,
    pub model: String,
}

impl Default for JobLabels {
    fn default() -> Self {
        Self {
            engine: UNKNOWN.into(),
            model: UNKNOWN.into(),
        }
    }
}

/// The label of an engine or model a failed attempt never got to.
pub const UNKNOWN: &str = "unknown";

/// Records a job attempt that ended with `outcome` after `elapsed`.
pub fn record_job_finished(labels: &JobLabels, outcome: &JobOutcome, elapsed: Duration) {
    let (status, cost) = match outcome {
        JobOutcome::Success { cost, .. } => (JobStatus::Success, *cost),
        JobOutcome::Failure { cost, .. } => (JobStatus::Failure, *cost),
    };
    let engine = labels.engine.clone();
    let model = labels.model.clone();
    ::metrics::counter!(
        JOBS_FINISHED_TOTAL,
        "engine" => engine.clone(),
        "model" => model.clone(),
        "status" => status.name()
    )
    .increment(1);
    ::metrics::histogram!(
        JOB_DURATION_SECONDS,
        "engine" => engine.clone(),
        "model" => model.clone(),
        "status" => status.name()
    )
    .record(elapsed);
    if cost.is_finite() && cost >= 0.0 {
        ::metrics::histogram!(JOB_COST, "engine" => engine, "model" => model).record(cost);
    }
}

/// Records how long a job waited in the queue before its first claim.
pub fn record_queue_wait(waited: Duration) {
    ::metrics::histogram!(JOB_QUEUE_WAIT_SECONDS).record(waited);
}
