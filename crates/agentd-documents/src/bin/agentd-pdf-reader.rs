//! A PDF reader process on its own, for this crate's tests and tools, which
//! cannot re-execute the `agentd` binary: `agentd-pdf-reader --library
//! PATH`. The server runs the same reader as `agentd pdf-reader`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(library), None) if flag == "--library" => {
            agentd_documents::run_reader(&PathBuf::from(library))
        }
        _ => {
            eprintln!(
                "usage: agentd-pdf-reader --library PATH (requests on stdin, answers on stdout)"
            );
            ExitCode::from(2)
        }
    }
}
