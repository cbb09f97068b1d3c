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
    /// A PDF reader process, started by the server itself (requests on
    /// stdin, answers on stdout): PDFium runs here, so that a crash inside
    /// it ends this process, not the server.
    #[command(name = "pdf-reader", hide = true)]
    PdfReader(PdfReaderArgs),
}

/// The subcommand of a PDF reader process (hidden from --help).
pub const PDF_READER: &str = "pdf-reader";

#[derive(Debug, Args)]
pub struct PdfReaderArgs {
    /// The PDFium shared library.
    #[arg(long)]
    pub library: std::path::PathBuf,
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

/// Runs a command; a PDF reader runs without an async runtime.
pub fn main(cli: Cli) -> std::process::ExitCode {
    if let Command::PdfReader(args) = &cli.command {
        return agentd_documents::run_reader(&args.library);
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("agentd: starting the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> std::process::ExitCode {
    let outcome = match cli.command {
        Command::Client(command) => return crate::client::run(command).await,
        Command::PdfReader(args) => {
            let reader = move || agentd_documents::run_reader(&args.library);
            return tokio::task::spawn_blocking(reader)
                .await
                .unwrap_or(std::process::ExitCode::FAILURE);
        }
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
