//! `agentd` as a command-line client of any agentd or Roe-compatible server.
//!
//! It speaks HTTP only (nothing here touches the server's code): `profile`
//! finds the server and key, `http` is the API client, and one module per
//! command group does the work. Exit codes scripts can rely on: 0 success,
//! 1 a job failed or the server refused the request, 2 usage error, 3 server
//! unreachable.

mod agents;
mod error;
mod http;
mod jobs;
mod output;
mod profile;
mod rows;
mod run;
mod run_many;
mod webhooks;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use error::ClientError;

/// The client's subcommands (flattened into `agentd`'s own).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Manage agents on a server (YAML or JSON files, for version control).
    Agents(agents::AgentsArgs),
    /// Run an agent once and print its outputs.
    Run(run::RunArgs),
    /// Run an agent over every row of a JSONL or CSV file; resumable.
    RunMany(run_many::RunManyArgs),
    /// Inspect, wait for or cancel a job.
    Jobs(jobs::JobsArgs),
    /// Manage an agent's webhook subscriptions and read their delivery logs.
    Webhooks(webhooks::WebhooksArgs),
}

/// Which server, and with which key.
#[derive(Clone, Debug, Args)]
pub struct ServerArgs {
    /// Profile of ~/.config/agentd/config.toml (default: the `default` profile);
    /// AGENTD_URL, AGENTD_API_KEY and AGENTD_ORGANIZATION_ID override its values.
    #[arg(long, global = true, env = "AGENTD_PROFILE")]
    pub profile: Option<String>,
}

pub async fn run(command: ClientCommand) -> ExitCode {
    match dispatch(command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("agentd: {error}");
            error.exit_code()
        }
    }
}

async fn dispatch(command: ClientCommand) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Agents(args) => agents::run(args).await,
        ClientCommand::Run(args) => run::run(args).await,
        ClientCommand::RunMany(args) => run_many::run(args).await,
        ClientCommand::Jobs(args) => jobs::run(args).await,
        ClientCommand::Webhooks(args) => webhooks::run(args).await,
    }
}

/// Exit code 1: a job failed (or was cancelled).
pub(crate) const JOB_FAILED: u8 = 1;
