//! Jobs: every run of an agent version, with its status history and outputs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, AgentVersionId, JobId, OrganizationId};
pub use crate::input::JobInputRecord as JobInput;
use crate::time::Timestamp;

/// Roe's job status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum JobStatus {
    Pending = 0,
    Started = 1,
    Retry = 2,
    Success = 3,
    Failure = 4,
    Cancelled = 5,
    Cached = 6,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Pending,
        JobStatus::Started,
        JobStatus::Retry,
        JobStatus::Success,
        JobStatus::Failure,
        JobStatus::Cancelled,
        JobStatus::Cached,
    ];

    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() as i64 == code)
    }

    /// A final status never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Cached
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Started => "STARTED",
            JobStatus::Retry => "RETRY",
            JobStatus::Success => "SUCCESS",
            JobStatus::Failure => "FAILURE",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Cached => "CACHED",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatusEvent {
    pub status: JobStatus,
    pub timestamp: Timestamp,
    pub error_message: Option<String>,
}

/// One output of a job (`AgentDatum`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentDatum {
    pub key: String,
    #[serde(default)]
    pub description: String,
    pub data_type: String,
    pub value: String,
    #[serde(default)]
    pub cost: Option<f64>,
}

/// Tokens spent by model calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Prompt tokens the provider served from its cache (part of `input_tokens`).
    #[serde(default)]
    pub cached_input_tokens: i64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
    }
}

/// Who is to blame for a failed job; decides the HTTP status of a
/// synchronous run (400, 502, 500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The agent's config or the inputs cannot be run.
    Invalid,
    /// The model provider failed or answered badly.
    Upstream,
    /// agentd itself failed, or gave up after repeated lost workers.
    Internal,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Upstream => "upstream",
            Self::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "invalid" => Some(Self::Invalid),
            "upstream" => Some(Self::Upstream),
            "internal" => Some(Self::Internal),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub organization_id: OrganizationId,
    pub agent_id: AgentId,
    pub agent_version_id: AgentVersionId,
    pub status: JobStatus,
    pub inputs: Vec<JobInput>,
    pub metadata: Value,
    pub outputs: Option<Vec<AgentDatum>>,
    pub error_message: Option<String>,
    pub error_kind: Option<FailureKind>,
    pub usage: Option<Usage>,
    pub cost: Option<f64>,
    pub attempts: i32,
    pub creator_key_id: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub events: Vec<StatusEvent>,
    /// Name of the version the job ran, when it still exists.
    pub agent_version_name: Option<String>,
    /// Inputs, outputs and files were erased (delete-data).
    pub data_deleted: bool,
}

impl Job {
    /// When the status last changed.
    pub fn last_event_at(&self) -> crate::time::Timestamp {
        self.events.last().map_or(self.updated_at, |e| e.timestamp)
    }

    /// Milliseconds from the first event to the last non-CACHED final
    /// event; `None` while the job runs.
    pub fn duration_ms(&self) -> Option<i64> {
        if !self.status.is_final() {
            return None;
        }
        let start = self.events.first()?.timestamp;
        let end = self
            .events
            .iter()
            .rev()
            .find(|e| e.status != JobStatus::Cached)
            .map_or(start, |e| e.timestamp);
        Some((end - start).num_milliseconds().max(0))
    }
}

/// The few fields of a job that a status answer needs.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSummary {
    pub id: JobId,
    pub agent_id: AgentId,
    pub status: JobStatus,
    pub error_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<&Job> for JobSummary {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id,
            agent_id: job.agent_id,
            status: job.status,
            error_message: job.error_message.clone(),
            created_at: job.created_at,
            updated_at: job.last_event_at(),
        }
    }
}

/// What a finished attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutcome {
    Success {
        outputs: Vec<AgentDatum>,
        usage: Usage,
        cost: f64,
    },
    Failure {
        error_message: String,
        kind: FailureKind,
        usage: Usage,
        cost: f64,
    },
}

impl JobOutcome {
    pub fn status(&self) -> JobStatus {
        match self {
            JobOutcome::Success { .. } => JobStatus::Success,
            JobOutcome::Failure { .. } => JobStatus::Failure,
        }
    }

    pub fn cost(&self) -> f64 {
        match self {
            JobOutcome::Success { cost, .. } | JobOutcome::Failure { cost, .. } => *cost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::from_code(status.code() as i64), Some(status));
        }
        assert_eq!(JobStatus::from_code(7), None);
        assert!(JobStatus::Cached.is_final());
        assert!(!JobStatus::Retry.is_final());
    }
}
