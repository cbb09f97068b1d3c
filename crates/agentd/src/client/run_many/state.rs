//! The state file next to `--out` (`results.jsonl.state`): what the run is
//! (agent, version, input file digest, batch size) and the job ids of every
//! batch the server accepted. With it, a re-run polls the jobs it already
//! has instead of submitting their rows again.
//!
//! JSON Lines, appended and flushed after each batch; a line torn by a
//! crash is ignored (that batch is sent again with the same idempotency
//! key, and the server answers the same job ids).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::ClientError;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Header {
    pub agent_id: String,
    pub agent_version_id: String,
    pub inputs_sha256: String,
    pub rows: usize,
    pub batch_size: usize,
}

#[derive(Debug, Deserialize, Serialize)]
struct BatchLine {
    first_row: usize,
    job_ids: Vec<String>,
}

pub struct StateFile {
    path: PathBuf,
    file: File,
    pub header: Header,
    /// The job id of each row, once its batch was accepted.
    pub job_ids: Vec<Option<String>>,
}

impl StateFile {
    pub fn path_for(out: &Path) -> PathBuf {
        let mut name = out.as_os_str().to_owned();
        name.push(".state");
        PathBuf::from(name)
    }

    /// Opens the state of an earlier run; `None` when there is none.
    pub fn open(path: &Path) -> Result<Option<Self>, ClientError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(path, error)),
        };
        let mut lines = BufReader::new(file).lines();
        let corrupt = |why: &str| {
            ClientError::usage(format!(
                "{}: {why}; remove it (and the output file) to start over",
                path.display()
            ))
        };
        let header: Header = match lines.next() {
            Some(Ok(line)) => {
                serde_json::from_str(&line).map_err(|_| corrupt("unreadable header"))?
            }
            _ => return Err(corrupt("empty or unreadable")),
        };
        let mut job_ids = vec![None; header.rows];
        for line in lines {
            let Ok(line) = line else { break };
            // Only the last line can be torn, by a crash while writing it.
            let Ok(batch) = serde_json::from_str::<BatchLine>(&line) else {
                break;
            };
            let end = batch.first_row + batch.job_ids.len();
            if end > header.rows {
                return Err(corrupt("a batch lies beyond the input rows"));
            }
            for (slot, id) in job_ids[batch.first_row..end].iter_mut().zip(batch.job_ids) {
                *slot = Some(id);
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|error| io_error(path, error))?;
        Ok(Some(Self {
            path: path.to_owned(),
            file,
            header,
            job_ids,
        }))
    }

    pub fn create(path: &Path, header: Header) -> Result<Self, ClientError> {
        let mut file = File::create(path).map_err(|error| io_error(path, error))?;
        let line = serde_json::to_string(&header).expect("header serializes");
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .map_err(|error| io_error(path, error))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            job_ids: vec![None; header.rows],
            header,
        })
    }

    /// Records the job ids the server gave a batch (synchronously: a
    /// Ctrl-C between awaits never leaves half a line).
    pub fn record(&mut self, first_row: usize, job_ids: Vec<String>) -> Result<(), ClientError> {
        let line = serde_json::to_string(&BatchLine {
            first_row,
            job_ids: job_ids.clone(),
        })
        .expect("batch serializes");
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|error| io_error(&self.path, error))?;
        for (slot, id) in self.job_ids[first_row..].iter_mut().zip(job_ids) {
            *slot = Some(id);
        }
        Ok(())
    }
}

pub fn io_error(path: &Path, error: std::io::Error) -> ClientError {
    ClientError::failed(format!("{}: {error}", path.display()))
}
