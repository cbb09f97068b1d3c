//! What the local model's command-line tools share: reading a flag's
//! value, and turning the outcome into an exit code.

use std::future::Future;
use std::process::ExitCode;

/// The value after `flag`, or the usage text when there is none.
pub fn flag_value(
    words: &mut impl Iterator<Item = String>,
    flag: &str,
    usage: &str,
) -> Result<String, String> {
    words
        .next()
        .ok_or_else(|| format!("{flag} needs a value\n{usage}"))
}

/// `value` as a number above zero.
pub fn positive_number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} takes a positive number, not {value:?}"))
}

/// Exit code 2 when the arguments are wrong (their message printed as is),
/// 1 when `run` fails (its message printed after the tool's `name`).
pub async fn exit_code<A, F>(
    name: &str,
    args: Result<A, String>,
    run: impl FnOnce(A) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), String>>,
{
    let args = match args {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}
