use clap::Parser;

fn main() -> std::process::ExitCode {
    agentd::cli::main(agentd::cli::Cli::parse())
}
