use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agentd::cli::run(agentd::cli::Cli::parse()).await
}
