//! `agentd jobs get|wait|cancel JOB`, and the job status codes the API uses.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::{segment, Api};
use super::output::pretty;
use super::{profile, ClientError, ServerArgs, JOB_FAILED};

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Print a job's status, and its result once it is final; exit 1 if it
    /// failed or was cancelled.
    Get { job: String },
    /// Wait until the job is final, then print it like `get`.
    Wait {
        job: String,
        /// Give up (exit 1) after this many seconds; default: wait as long as it takes.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Ask the server to cancel the job.
    Cancel { job: String },
}

/// The API's job status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Started,
    Retry,
    Success,
    Failure,
    Cancelled,
    Cached,
}

impl Status {
    pub fn from_code(code: &Value) -> Option<Self> {
        Some(match code.as_i64()? {
            0 => Self::Pending,
            1 => Self::Started,
            2 => Self::Retry,
            3 => Self::Success,
            4 => Self::Failure,
            5 => Self::Cancelled,
            6 => Self::Cached,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Started => "STARTED",
            Self::Retry => "RETRY",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Cancelled => "CANCELLED",
            Self::Cached => "CACHED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failure | Self::Cancelled | Self::Cached
        )
    }

    pub fn failed(self) -> bool {
        matches!(self, Self::Failure | Self::Cancelled)
    }
}

pub async fn run(args: JobsArgs) -> Result<ExitCode, ClientError> {
    let api = Api::new(profile::resolve(args.server.profile.as_deref())?)?;
    match args.command {
        JobsCommand::Get { job } => show(&api, &job).await,
        JobsCommand::Wait { job, timeout } => {
            wait(&api, &job, timeout.map(Duration::from_secs)).await?;
            show(&api, &job).await
        }
        JobsCommand::Cancel { job } => {
            api.post(&format!("{}cancel/", job_path(&job)), &json!({}))
                .await?;
            // A running job stops at its next model call: `jobs wait` tells the end.
            eprintln!("cancellation requested for job {job}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn job_path(job: &str) -> String {
    format!("/v1/agents/jobs/{}/", segment(job))
}

async fn status(api: &Api, job: &str) -> Result<(Value, Status), ClientError> {
    let body = api.get(&format!("{}status/", job_path(job))).await?;
    let status = Status::from_code(&body["status"]).ok_or_else(|| {
        ClientError::failed(format!("unknown job status in the server's answer: {body}"))
    })?;
    Ok((body, status))
}

/// Prints the job; exit 1 when it failed or was cancelled.
async fn show(api: &Api, job: &str) -> Result<ExitCode, ClientError> {
    let (body, status) = status(api, job).await?;
    let mut shown = json!({"id": job, "status": status.name()});
    if status.is_final() {
        let result = api.get(&format!("{}result/", job_path(job))).await?;
        if let (Value::Object(shown), Value::Object(result)) = (&mut shown, result) {
            for (key, value) in result {
                if key != "status" {
                    shown.insert(key, value);
                }
            }
        }
    } else if let Some(message) = body.get("error_message").filter(|m| !m.is_null()) {
        shown["error_message"] = message.clone();
    }
    println!("{}", pretty(&shown));
    Ok(if status.failed() {
        ExitCode::from(JOB_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Polls until the job is final, more slowly as time goes by.
async fn wait(api: &Api, job: &str, timeout: Option<Duration>) -> Result<(), ClientError> {
    let started = Instant::now();
    let mut interval = Duration::from_millis(200);
    loop {
        let (_, status) = status(api, job).await?;
        if status.is_final() {
            return Ok(());
        }
        if timeout.is_some_and(|limit| started.elapsed() >= limit) {
            return Err(ClientError::failed(format!(
                "job {job} is still {} after {} s",
                status.name(),
                started.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(2));
    }
}
