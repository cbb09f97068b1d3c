//! The domain of agentd: plain types and the rules that hold for them,
//! independent of HTTP, storage and model providers.

pub mod agent;
pub mod ids;
pub mod input;
pub mod job;
pub mod org;
pub mod output_schema;
pub mod run_body;
pub mod template;
pub mod time;
pub mod webhook;

pub use agent::{
    Agent, AgentName, AgentVersion, InputDefinition, InputKind, NewAgent, NewAgentVersion,
};
pub use ids::{
    AgentId, AgentVersionId, DeliveryId, FileId, JobId, OrganizationId, ReferenceId, WebhookId,
};
pub use input::{
    CheckedInput, FileRef, FileSource, InputError, InputValue, RawInput, ResolvedInputs, Upload,
};
pub use job::{
    AgentDatum, FailureKind, Job, JobInput, JobOutcome, JobStatus, JobSummary, StatusEvent, Usage,
};
pub use org::{ApiKey, Credits, Operation, Organization, Scope};
pub use output_schema::OutputSchema;

mod field_errors;
pub use field_errors::FieldErrors;
