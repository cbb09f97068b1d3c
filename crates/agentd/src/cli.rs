//! Command line: `agentd serve`, `agentd admin ...`, and the client
//! commands (`agents`, `run`, `run-many`, `jobs`; see [`crate::client`]).

use clap::{Args, Parser, Subcommand};

use crate::config::ServeConfig;

#[derive(Debug, Parser)]
#[command(
    name = "agentd",
    version,
    about = "Runs AI agents over unstructured data; speaks the Roe AI Agents API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run jobs.
    Serve(ServeConfig),
    /// Run jobs only, sharing DATABASE_URL with `agentd serve` processes.
    Worker(ServeConfig),
    /// Manage organizations, API keys and credits in DATABASE_URL.
    Admin(AdminArgs),
    /// Client commands, against AGENTD_URL with AGENTD_API_KEY.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[arg(long, env = "DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Pooled PostgreSQL connections (SQLite ignores it).
    #[arg(
        long,
        env = "AGENTD_DB_MAX_CONNECTIONS",
        default_value_t = agentd_storage::ConnectOptions::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub db_max_connections: u32,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Credits of an organization.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// Apply the database's migrations and exit (servers also apply them
    /// on start; run this first when rolling out a new version).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Create { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key and print it (it is shown only this once).
    Create {
        #[arg(long)]
        org: String,
        /// read, write, run or agent:<uuid>; repeatable. No scope: full access.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long, default_value = "api key")]
        name: String,
    },
    /// Revoke an API key; later requests with it get 401.
    Revoke {
        #[arg(long)]
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Set the balance: a number of dollars, or `unlimited`.
    Set {
        #[arg(long)]
        org: String,
        amount: String,
    },
    /// Print the balance and the total spent.
    Show {
        #[arg(long)]
        org: String,
    },
}

pub async fn run(cli: Cli) -> std::process::ExitCode {
    let outcome = match cli.command {
        Command::Client(command) => return crate::client::run(command).await,
        Command::Serve(config) => serve(config).await,
        Command::Worker(config) => worker(config).await,
        Command::Admin(args) => crate::admin::run(args).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    crate::telemetry::init(&config.log_format);
    let application = crate::startup::Application::build(config).await?;
    application.run_until_stopped().await
}

async fn worker(config: ServeConfig) -> anyhow::Result<()> {
    crate::telemetry::init(&config.log_format);
    let state = crate::startup::AppState::build(config).await?;
    state.run_workers_until_stopped().await
}
