//! The output file: one JSON line per input row, in input order. A re-run
//! keeps the complete lines already written (a line torn by a crash is cut
//! off) and carries on after them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::state::io_error;
use crate::client::jobs::Status;
use crate::client::ClientError;

/// Successes, failures and cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    pub succeeded: usize,
    pub failed: usize,
    pub cost: f64,
}

impl Tally {
    pub fn add(&mut self, line: &Value) {
        let failed = line["status"]
            .as_str()
            .is_none_or(|status| matches!(status, "FAILURE" | "CANCELLED" | "MISSING"));
        if failed {
            self.failed += 1;
        } else {
            self.succeeded += 1;
        }
        self.cost += line["cost"].as_f64().unwrap_or(0.0);
    }

    pub fn done(&self) -> usize {
        self.succeeded + self.failed
    }
}

pub struct Results {
    path: PathBuf,
    file: File,
    pub tally: Tally,
}

impl Results {
    /// A new output file.
    pub fn create(path: &Path) -> Result<Self, ClientError> {
        let file = File::create(path).map_err(|error| io_error(path, error))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            tally: Tally::default(),
        })
    }

    /// The output of an interrupted run: its complete lines stay.
    pub fn resume(path: &Path) -> Result<Self, ClientError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Self::create(path)
            }
            Err(error) => return Err(io_error(path, error)),
        };
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut tally = Tally::default();
        for line in bytes[..complete].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_slice(line).map_err(|_| {
                ClientError::usage(format!(
                    "{}: a line is not JSON; remove the file and its .state to start over",
                    path.display()
                ))
            })?;
            tally.add(&value);
        }
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|error| io_error(path, error))?;
        file.set_len(complete as u64)
            .map_err(|error| io_error(path, error))?;
        let mut results = Self {
            path: path.to_owned(),
            file,
            tally,
        };
        use std::io::Seek;
        results
            .file
            .seek(std::io::SeekFrom::End(0))
            .map_err(|error| io_error(path, error))?;
        Ok(results)
    }

    /// Appends one row's line (synchronously, so a Ctrl-C between awaits
    /// never tears it).
    pub fn write(&mut self, line: &Value) -> Result<(), ClientError> {
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|error| io_error(&self.path, error))?;
        self.tally.add(line);
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.file
            .sync_data()
            .map_err(|error| io_error(&self.path, error))
    }
}

/// The output line of a row, from its item of `/v1/agents/jobs/results/`.
pub fn line(row: usize, job_id: &str, input: &Value, result: &Value) -> Value {
    let status = Status::from_code(&result["status"]).map_or("MISSING", Status::name);
    serde_json::json!({
        "row": row,
        "job_id": job_id,
        "status": status,
        "input": input,
        "outputs": result["result"],
        "error_message": result["error_message"],
        "cost": result["cost"],
    })
}
