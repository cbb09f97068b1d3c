//! `agentd run-many AGENT --inputs rows.jsonl|rows.csv --out results.jsonl`:
//! every row becomes a job, submitted with `POST /v1/agents/run/{id}/async/many/`
//! in batches of up to 1,000, polled with `/v1/agents/jobs/statuses/` and
//! collected with `/v1/agents/jobs/results/`. One result line per row, in
//! input order.
//!
//! Resuming: the job ids of each accepted batch go to a state file next to
//! the output before anything else happens, so a re-run polls those jobs
//! instead of submitting their rows again. A batch whose answer was lost
//! (Ctrl-C, network, server restart while it was sent) is sent again with
//! the same `Idempotency-Key` (derived from the agent version, the batch
//! index and the rows), and the server answers the jobs it already made.

mod progress;
mod results;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{segment, Api};
use super::jobs::Status;
use super::rows::{self, Row};
use super::{profile, ClientError, ServerArgs, JOB_FAILED};
use progress::Progress;
use results::Results;
use state::{Header, StateFile};

/// What `async/many` and the bulk job endpoints take at most per request.
const MAX_BATCH: usize = 1000;
/// Slowest pace of polling while nothing changes.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Tries of one request while the server is unreachable or overloaded
/// (about a minute in all); then the command stops and a re-run resumes.
const TRANSIENT_TRIES: u32 = 8;

#[derive(Debug, Args)]
pub struct RunManyArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The agent's id (its current version runs every row).
    agent: String,
    /// The rows: a .jsonl file (one JSON object of inputs per line) or a
    /// .csv file (a header row of input keys).
    #[arg(long)]
    inputs: PathBuf,
    /// Where the results go, one JSON line per row in input order; the state
    /// of the run is kept beside it in OUT.state.
    #[arg(long)]
    out: PathBuf,
    /// Most jobs submitted and not yet finished at any time.
    #[arg(long, default_value_t = MAX_BATCH, value_parser = at_least_one)]
    concurrency: usize,
    /// Run even where a cached result exists (X-Skip-Cache).
    #[arg(long)]
    no_cache: bool,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of 1 or more")),
    }
}

pub async fn run(args: RunManyArgs) -> Result<ExitCode, ClientError> {
    let api = Api::new(profile::resolve(args.server.profile.as_deref())?)?;
    // Ctrl-C drops the run between two awaits: every file write is
    // synchronous, so no line is left half written.
    tokio::select! {
        result = run_all(&api, &args) => result,
        _ = tokio::signal::ctrl_c() => Err(ClientError::Interrupted),
    }
}

async fn run_all(api: &Api, args: &RunManyArgs) -> Result<ExitCode, ClientError> {
    let (rows, inputs_sha256) = rows::read(&args.inputs)?;
    let agent_path = format!("/v1/agents/{}/", segment(&args.agent));
    let agent = retrying(|| api.get(&agent_path)).await?;
    let version = agent["current_version_id"]
        .as_str()
        .ok_or_else(|| ClientError::failed("the agent has no current_version_id"))?;
    let wanted = Header {
        agent_id: args.agent.clone(),
        agent_version_id: version.to_owned(),
        inputs_sha256,
        rows: rows.len(),
        batch_size: args.concurrency.min(MAX_BATCH),
    };
    let (state, results) = open_files(args, wanted)?;
    let mut run = Run {
        api,
        rows: &rows,
        state,
        results,
        finished: HashMap::new(),
        skip_cache: args.no_cache,
        concurrency: args.concurrency,
    };
    let total = rows.len();
    let mut progress = Progress::new(total, run.results.tally.done());
    run.drive(&mut progress).await?;
    progress.finish();
    let tally = run.results.tally;
    eprintln!(
        "{total} rows: {} succeeded, {} failed; cost ${:.6}; results in {}",
        tally.succeeded,
        tally.failed,
        tally.cost,
        args.out.display()
    );
    Ok(if tally.failed > 0 {
        ExitCode::from(JOB_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The state and output files: those of an interrupted run of the same
/// command, or new ones.
fn open_files(args: &RunManyArgs, wanted: Header) -> Result<(StateFile, Results), ClientError> {
    let state_path = StateFile::path_for(&args.out);
    match StateFile::open(&state_path)? {
        Some(state) => {
            let earlier = &state.header;
            if earlier.agent_id != wanted.agent_id || earlier.inputs_sha256 != wanted.inputs_sha256
            {
                return Err(ClientError::usage(format!(
                    "{} belongs to a run of another agent or input file; choose another --out, or remove both files to start over",
                    state_path.display()
                )));
            }
            if earlier.agent_version_id != wanted.agent_version_id
                && state.job_ids.iter().any(Option::is_none)
            {
                return Err(ClientError::usage(format!(
                    "the agent's current version changed since this run started (version {} then, {} now); remove {} and {} to start over with the new version",
                    earlier.agent_version_id,
                    wanted.agent_version_id,
                    args.out.display(),
                    state_path.display()
                )));
            }
            let results = Results::resume(&args.out)?;
            Ok((state, results))
        }
        None => {
            if args.out.exists() {
                return Err(ClientError::usage(format!(
                    "{} exists and has no {} beside it; choose another --out or remove it",
                    args.out.display(),
                    state_path.display()
                )));
            }
            let state = StateFile::create(&state_path, wanted)?;
            Ok((state, Results::create(&args.out)?))
        }
    }
}

struct Run<'a> {
    api: &'a Api,
    rows: &'a [Row],
    state: StateFile,
    results: Results,
    /// Result lines of finished rows that wait for an earlier row.
    finished: HashMap<usize, Value>,
    skip_cache: bool,
    concurrency: usize,
}

impl Run<'_> {
    async fn drive(&mut self, progress: &mut Progress) -> Result<(), ClientError> {
        let mut interval = MIN_POLL_INTERVAL;
        loop {
            let written = self.write_ready()?;
            let submitted = self.submit_what_fits().await?;
            let running = self.running();
            progress.update(&self.finished_tally(), running.len());
            if self.results.tally.done() == self.rows.len() {
                return self.results.flush();
            }
            let collected = self.collect(&running).await?;
            if written + submitted + collected > 0 {
                interval = MIN_POLL_INTERVAL;
            } else {
                tokio::time::sleep(interval).await;
                interval = (interval * 2).min(MAX_POLL_INTERVAL);
            }
        }
    }

    /// The rows finished, written or waiting for an earlier row.
    fn finished_tally(&self) -> results::Tally {
        let mut tally = self.results.tally;
        self.finished.values().for_each(|line| tally.add(line));
        tally
    }

    /// Rows submitted, not yet finished.
    fn running(&self) -> Vec<(usize, String)> {
        let first = self.results.tally.done();
        self.state.job_ids[first..]
            .iter()
            .enumerate()
            .filter_map(|(offset, id)| Some((first + offset, id.clone()?)))
            .filter(|(row, _)| !self.finished.contains_key(row))
            .collect()
    }

    /// Submits whole batches while the jobs in flight stay within
    /// `--concurrency`; how many rows it submitted.
    async fn submit_what_fits(&mut self) -> Result<usize, ClientError> {
        let batch_size = self.state.header.batch_size;
        let mut submitted = 0;
        loop {
            let Some(first_row) = self.state.job_ids.iter().position(Option::is_none) else {
                return Ok(submitted);
            };
            let batch_index = first_row / batch_size;
            let start = batch_index * batch_size;
            let end = (start + batch_size).min(self.rows.len());
            let in_flight = self.running().len();
            if in_flight > 0 && in_flight + (end - start) > self.concurrency {
                return Ok(submitted);
            }
            let ids = self.submit_batch(batch_index, start..end).await?;
            self.state.record(start, ids)?;
            submitted += end - start;
        }
    }

    async fn submit_batch(
        &self,
        batch_index: usize,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let inputs = &self.rows[rows.clone()];
        let key = idempotency_key(&self.state.header.agent_version_id, batch_index, inputs);
        let path = format!(
            "/v1/agents/run/{}/async/many/",
            segment(&self.state.header.agent_id)
        );
        let body = json!({ "inputs": inputs });
        let answer = retrying(|| {
            let mut request = self
                .api
                .request(Method::POST, &path)
                .header("Idempotency-Key", &key)
                .json(&body);
            if self.skip_cache {
                request = request.header("X-Skip-Cache", "true");
            }
            self.api.send(request)
        })
        .await?;
        let ids: Vec<String> = answer
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() != rows.len() {
            return Err(ClientError::failed(format!(
                "the server answered {} job ids for a batch of {} rows",
                ids.len(),
                rows.len()
            )));
        }
        Ok(ids)
    }

    /// Polls the running jobs and fetches the results of those that are
    /// final; how many finished.
    async fn collect(&mut self, running: &[(usize, String)]) -> Result<usize, ClientError> {
        let mut finished = 0;
        for chunk in running.chunks(MAX_BATCH) {
            let statuses = self.bulk("statuses", chunk).await?;
            let done: Vec<(usize, String)> = chunk
                .iter()
                .zip(&statuses)
                .filter(|(_, status)| {
                    // A job the server no longer knows will not finish either.
                    Status::from_code(&status["status"]).is_none_or(Status::is_final)
                })
                .map(|(row, _)| row.clone())
                .collect();
            if done.is_empty() {
                continue;
            }
            let found = self.bulk("results", &done).await?;
            for ((row, job_id), result) in done.iter().zip(&found) {
                let input = Value::Object(self.rows[*row].clone());
                self.finished
                    .insert(*row, results::line(*row, job_id, &input, result));
            }
            finished += done.len();
        }
        Ok(finished)
    }

    /// `POST /v1/agents/jobs/{what}/` for these jobs; the answer in order.
    async fn bulk(&self, what: &str, jobs: &[(usize, String)]) -> Result<Vec<Value>, ClientError> {
        let ids: Vec<&str> = jobs.iter().map(|(_, id)| id.as_str()).collect();
        let body = json!({ "job_ids": ids });
        let path = format!("/v1/agents/jobs/{what}/");
        let answer = retrying(|| self.api.post(&path, &body)).await?;
        match answer {
            Value::Array(items) if items.len() == jobs.len() => Ok(items),
            other => Err(ClientError::failed(format!(
                "the server answered {what} for {} jobs with {}",
                jobs.len(),
                other
                    .as_array()
                    .map_or("something else".to_owned(), |a| format!(
                        "{} items",
                        a.len()
                    ))
            ))),
        }
    }

    /// Writes the finished rows that follow the written ones; how many.
    fn write_ready(&mut self) -> Result<usize, ClientError> {
        let mut written = 0;
        while let Some(line) = self.finished.remove(&self.results.tally.done()) {
            self.results.write(&line)?;
            written += 1;
        }
        if written > 0 {
            self.results.flush()?;
        }
        Ok(written)
    }
}

/// The same batch of the same rows for the same agent version gets the
/// same key, in this run or a resumed one.
fn idempotency_key(version: &str, batch_index: usize, rows: &[Row]) -> String {
    let mut hash = Sha256::new();
    hash.update(version.as_bytes());
    hash.update(format!("\n{batch_index}\n").as_bytes());
    for row in rows {
        hash.update(Value::Object(row.clone()).to_string().as_bytes());
        hash.update(b"\n");
    }
    format!("agentd-run-many-{}", hex::encode(hash.finalize()))
}

/// Runs the request again while the server is unreachable or answers
/// 429/502/503/504, waiting longer each time; every request it is used
/// for is safe to repeat.
async fn retrying<F, Fut>(mut request: F) -> Result<Value, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, ClientError>>,
{
    let mut pause = Duration::from_millis(250);
    let mut tries = 1;
    loop {
        match request().await {
            Err(error) if error.is_transient() && tries < TRANSIENT_TRIES => {
                eprintln!("agentd: {error}; trying again in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(16));
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(text: &str) -> Row {
        let Value::Object(map) = json!({ "text": text }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn idempotency_keys_follow_version_batch_and_rows() {
        let rows = [row("a"), row("b")];
        let key = idempotency_key("v1", 0, &rows);
        assert_eq!(key, idempotency_key("v1", 0, &rows));
        assert!(key.len() <= 255);
        assert_ne!(key, idempotency_key("v2", 0, &rows));
        assert_ne!(key, idempotency_key("v1", 1, &rows));
        assert_ne!(key, idempotency_key("v1", 0, &[row("a"), row("c")]));
    }
}
