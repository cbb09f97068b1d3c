//! Job execution: a stored job is loaded, run by its engine, and its outcome
//! stored, whoever asked for it (a synchronous request today, a worker pool
//! later). Everything needed is read back from storage, so a job can be run
//! again after a crash.

use std::sync::Arc;

use agentd_domain::template::{self, TemplateError};
use agentd_domain::{
    AgentDatum, InputKind, InputValue, Job, JobId, JobOutcome, OrganizationId, ResolvedInputs,
    Usage,
};
use agentd_engines::{EngineContext, EngineError, EngineRegistry};
use agentd_providers::ProviderRegistry;
use agentd_storage::Storage;
use anyhow::Context as _;

use crate::files::{FileError, FileStore};

/// Who is to blame for a failed job, which decides the HTTP status of a
/// synchronous run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The agent's config or the inputs cannot be run (400).
    Invalid,
    /// The model provider failed or answered badly (502).
    Upstream,
    /// agentd itself failed (500).
    Internal,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

pub type RunReport = Result<Vec<AgentDatum>, Failure>;

pub struct JobExecutor {
    storage: Arc<dyn Storage>,
    engines: EngineRegistry,
    models: Arc<ProviderRegistry>,
    files: FileStore,
    default_model: String,
}

struct AttemptError {
    failure: Failure,
    usage: Usage,
    cost: f64,
}

impl From<Failure> for AttemptError {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            usage: Usage::default(),
            cost: 0.0,
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        class: FailureClass::Invalid,
        message: message.into(),
    }
}

impl JobExecutor {
    pub fn new(
        storage: Arc<dyn Storage>,
        engines: EngineRegistry,
        models: Arc<ProviderRegistry>,
        files: FileStore,
        default_model: String,
    ) -> Self {
        Self {
            storage,
            engines,
            models,
            files,
            default_model,
        }
    }

    /// Runs a stored job to its end and records the outcome.
    pub async fn execute(
        &self,
        organization_id: OrganizationId,
        job_id: JobId,
    ) -> anyhow::Result<RunReport> {
        let job = self
            .storage
            .get_job(organization_id, job_id)
            .await?
            .context("job not found")?;
        self.storage.start_job(job_id).await?;
        let (outcome, report) = match self.attempt(&job).await {
            Ok(output) => (
                JobOutcome::Success {
                    outputs: output.outputs.clone(),
                    usage: output.usage,
                    cost: output.cost,
                },
                Ok(output.outputs),
            ),
            Err(error) => {
                if error.failure.class == FailureClass::Internal {
                    tracing::error!(job = %job_id, error = %error.failure.message, "job failed inside agentd");
                }
                (
                    JobOutcome::Failure {
                        error_message: error.failure.message.clone(),
                        usage: error.usage,
                        cost: error.cost,
                    },
                    Err(error.failure),
                )
            }
        };
        self.storage.finish_job(job_id, &outcome).await?;
        Ok(report)
    }

    async fn attempt(&self, job: &Job) -> Result<agentd_engines::EngineOutput, AttemptError> {
        let internal = |message: String| Failure {
            class: FailureClass::Internal,
            message,
        };
        let agent = self
            .storage
            .get_agent(job.organization_id, job.agent_id)
            .await
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| invalid("The agent was deleted before the job ran."))?;
        let version = self
            .storage
            .get_version(job.agent_id, job.agent_version_id)
            .await
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| invalid("The agent version was deleted before the job ran."))?;
        let engine = self.engines.get(&agent.engine_class_id).ok_or_else(|| {
            invalid(format!(
                "Engine '{}' is not available.",
                agent.engine_class_id
            ))
        })?;
        let inputs = self.resolve_inputs(job, &version.input_definitions).await?;
        let config = template::render(&version.engine_config, &inputs)
            .map_err(|e: TemplateError| invalid(e.to_string()))?;
        let context = EngineContext {
            models: &self.models,
            default_model: &self.default_model,
        };
        engine
            .run(&context, &config, &inputs)
            .await
            .map_err(|failure| {
                let class = match failure.error {
                    EngineError::Invalid(_) | EngineError::Model(_) => FailureClass::Invalid,
                    EngineError::Provider(_) | EngineError::InvalidAnswer(_) => {
                        FailureClass::Upstream
                    }
                };
                AttemptError {
                    failure: Failure {
                        class,
                        message: failure.error.to_string(),
                    },
                    usage: failure.usage,
                    cost: failure.cost,
                }
            })
    }

    /// Turns the job's stored input records back into engine inputs.
    async fn resolve_inputs(
        &self,
        job: &Job,
        definitions: &[agentd_domain::InputDefinition],
    ) -> Result<ResolvedInputs, Failure> {
        let mut inputs = ResolvedInputs::default();
        for record in &job.inputs {
            let is_file = definitions
                .iter()
                .find(|d| d.key == record.key)
                .map_or(record.file_name.is_some(), |d| d.kind() == InputKind::File);
            let value = if is_file {
                let id = record
                    .value
                    .parse()
                    .map_err(|_| invalid(format!("Input '{}' has no stored file.", record.key)))?;
                let file = self
                    .files
                    .find(self.storage.as_ref(), job.organization_id, id)
                    .await
                    .map_err(|e| match e {
                        FileError::Rejected(message) => invalid(message),
                        other => Failure {
                            class: FailureClass::Internal,
                            message: other.to_string(),
                        },
                    })?;
                InputValue::File(file)
            } else {
                InputValue::Text(record.value.clone())
            };
            inputs.insert(record.key.clone(), value);
        }
        Ok(inputs)
    }
}
