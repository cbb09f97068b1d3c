use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = agentd::cli::Cli::parse();
    match agentd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
