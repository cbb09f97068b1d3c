//! One attempt at a job: everything is read back from storage (agent,
//! version, input files), so any worker can run any job, also after a crash.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use std::collections::HashMap;

use agentd_documents::{DocumentError, Documents};
use agentd_domain::template::{self, FileAsText, TemplateError};
use agentd_domain::{
    FailureKind, FileId, FileRef, InputKind, InputValue, Job, JobId, JobInput, JobOutcome,
    OrganizationId, ResolvedInputs, Usage,
};
use agentd_engines::{
    EngineContext, EngineError, EngineRegistry, FileReader, JobReferences, Progress, SavedReference,
};
use agentd_providers::ProviderRegistry;
use agentd_storage::Storage;
use async_trait::async_trait;

use super::{retry_transient, INTERNAL_FAILURE, READ_ATTEMPTS};
use crate::files::{FileError, FileStore, STORE_UNREACHABLE};
use crate::metrics::JobLabels;
use crate::references::JobReferenceStore;

#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

pub struct JobExecutor {
    storage: Arc<dyn Storage>,
    engines: EngineRegistry,
    models: Arc<ProviderRegistry>,
    files: FileStore,
    documents: Documents,
    references: JobReferenceStore,
    web: Arc<agentd_web::Web>,
}

/// What one attempt at a job came to.
#[derive(Debug)]
pub enum Attempted {
    Finished(JobOutcome),
    /// Storage stayed unavailable (a full disk, a locked database) through
    /// the retries: nothing is recorded, and the job runs again once its
    /// lease expires.
    Postponed,
}

enum AttemptError {
    Failed {
        failure: Failure,
        usage: Usage,
        cost: f64,
    },
    Postponed,
}

impl From<Failure> for AttemptError {
    fn from(failure: Failure) -> Self {
        Self::Failed {
            failure,
            usage: Usage::default(),
            cost: 0.0,
        }
    }
}

/// A failure inside agentd: the details go to the log, the job gets a
/// generic message (internal text never reaches a user).
fn internal(job: &Job, error: &dyn std::fmt::Display) -> Failure {
    tracing::error!(job = %job.id, %error, "job failed inside agentd");
    Failure {
        kind: FailureKind::Internal,
        message: INTERNAL_FAILURE.to_owned(),
    }
}

/// A storage failure while preparing a job: still transient after the
/// retries postpones the job, anything else fails it.
fn storage_failure(job: &Job, error: &agentd_storage::StorageError) -> AttemptError {
    if error.is_transient() {
        tracing::warn!(job = %job.id, %error, "storage unavailable; the job runs again after its lease");
        AttemptError::Postponed
    } else {
        internal(job, error).into()
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        kind: FailureKind::Invalid,
        message: message.into(),
    }
}

impl JobExecutor {
    pub fn new(
        storage: Arc<dyn Storage>,
        engines: EngineRegistry,
        models: Arc<ProviderRegistry>,
        files: FileStore,
        documents: Documents,
        references: JobReferenceStore,
        web: Arc<agentd_web::Web>,
    ) -> Self {
        Self {
            storage,
            engines,
            models,
            files,
            documents,
            references,
            web,
        }
    }

    /// Runs a claimed job once as worker `owner`; the caller records the
    /// outcome.
    pub async fn execute(&self, job: &Job, owner: &str) -> Attempted {
        crate::panics::panic_on_job(job);
        let started = std::time::Instant::now();
        let mut labels = JobLabels::default();
        let attempted = self.outcome(job, owner, &mut labels).await;
        if let Attempted::Finished(outcome) = &attempted {
            crate::metrics::record_job_finished(&labels, outcome, started.elapsed());
        }
        attempted
    }

    /// One attempt, with the engine and model it ran named in `labels`.
    async fn outcome(&self, job: &Job, owner: &str, labels: &mut JobLabels) -> Attempted {
        match self.attempt(job, owner, labels).await {
            Ok(output) => Attempted::Finished(JobOutcome::Success {
                outputs: output.outputs,
                usage: output.usage,
                cost: output.cost,
            }),
            Err(AttemptError::Failed {
                failure,
                usage,
                cost,
            }) => Attempted::Finished(JobOutcome::Failure {
                error_message: failure.message,
                kind: failure.kind,
                usage,
                cost,
            }),
            Err(AttemptError::Postponed) => Attempted::Postponed,
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        owner: &str,
        labels: &mut JobLabels,
    ) -> Result<agentd_engines::EngineOutput, AttemptError> {
        let context = retry_transient("reading a job's agent", READ_ATTEMPTS, move || {
            self.storage
                .run_context(job.organization_id, job.agent_id, job.agent_version_id)
        })
        .await
        .map_err(|e| storage_failure(job, &e))?
        .ok_or_else(|| invalid("The agent was deleted before the job ran."))?;
        // Checked again here, so that queued jobs cannot overspend a balance
        // by more than the jobs already running.
        if context.credits.exhausted() {
            return Err(invalid(format!(
                "Insufficient credits: the organization's balance is {}.",
                context.credits
            ))
            .into());
        }
        let agent = context.agent;
        labels.engine = agent.engine_class_id.clone();
        let version = context
            .version
            .ok_or_else(|| invalid("The agent version was deleted before the job ran."))?;
        let engine = self.engines.get(&agent.engine_class_id).ok_or_else(|| {
            invalid(format!(
                "Engine '{}' is not available.",
                agent.engine_class_id
            ))
        })?;
        let inputs = self.resolve_inputs(job, &version.input_definitions).await?;
        let file_fields = engine.file_fields();
        let is_file_input = |key: &str| matches!(inputs.get(key), Some(InputValue::File(_)));
        let used_as_text =
            template::files_used_as_text(&version.engine_config, &is_file_input, file_fields);
        let texts = self.read_as_text(&inputs, &used_as_text).await?;
        let files = template::Files {
            fields: file_fields,
            texts: &texts,
        };
        let config = template::render(&version.engine_config, &inputs, files)
            .map_err(|e: TemplateError| invalid(e.to_string()))?;
        let model = config.get("model").and_then(serde_json::Value::as_str);
        labels.model = self.models.model_or_default(model).to_owned();
        let files = JobFiles {
            store: &self.files,
            storage: self.storage.as_ref(),
            organization_id: job.organization_id,
        };
        let references = JobSaves {
            store: &self.references,
            job: job.id,
            store_unreachable: AtomicBool::new(false),
        };
        let progress = JobProgress {
            storage: self.storage.as_ref(),
            job: job.id,
            owner,
        };
        let context = EngineContext {
            models: &self.models,
            files: &files,
            documents: &self.documents,
            references: &references,
            progress: &progress,
            web: &self.web,
        };
        engine
            .run(&context, &config, &inputs)
            .await
            .map_err(|failure| {
                let kind = match failure.error {
                    EngineError::Invalid(_) | EngineError::Model(_) => FailureKind::Invalid,
                    EngineError::Provider(_) | EngineError::InvalidAnswer(_) => {
                        FailureKind::Upstream
                    }
                    EngineError::Internal(_) => FailureKind::Internal,
                };
                let failure_of_job = match kind {
                    FailureKind::Internal if references.store_unreachable.load(Relaxed) => {
                        tracing::warn!(job = %job.id, error = %failure.error, "the object store is unavailable");
                        Failure {
                            kind,
                            message: format!("A result could not be saved: {STORE_UNREACHABLE}."),
                        }
                    }
                    FailureKind::Internal => internal(job, &failure.error),
                    _ => Failure {
                        kind,
                        message: failure.error.to_string(),
                    },
                };
                AttemptError::Failed {
                    failure: failure_of_job,
                    usage: failure.usage,
                    cost: failure.cost,
                }
            })
    }

    /// The text of each file input placed where the engine expects text
    /// (PDF pages with page markers, office files, HTML as Markdown, …).
    async fn read_as_text(
        &self,
        inputs: &ResolvedInputs,
        used: &[FileAsText],
    ) -> Result<HashMap<String, String>, Failure> {
        let mut texts = HashMap::new();
        for FileAsText { key, field } in used {
            let Some(InputValue::File(file)) = inputs.get(key) else {
                continue;
            };
            let bytes = self.files.read(file.id).await.map_err(|error| {
                tracing::error!(file = %file.id, %error, "reading a job's file failed");
                let why = match error {
                    FileError::Unavailable(_) => STORE_UNREACHABLE,
                    _ => "the error was logged",
                };
                Failure {
                    kind: FailureKind::Internal,
                    message: format!("Input '{key}' could not be read: {why}."),
                }
            })?;
            let text = self
                .documents
                .to_text(&file.content_type, &file.file_name, bytes)
                .await
                .map_err(|error| document_failure(key, field, &error))?;
            texts.insert(key.clone(), text);
        }
        Ok(texts)
    }

    /// Turns the job's stored input records back into engine inputs.
    async fn resolve_inputs(
        &self,
        job: &Job,
        definitions: &[agentd_domain::InputDefinition],
    ) -> Result<ResolvedInputs, AttemptError> {
        let mut inputs = ResolvedInputs::default();
        // What the job's URL inputs may still fetch, all together.
        let mut budget = self.files.fetch_limits().max_bytes_per_job;
        for record in &job.inputs {
            let definition = definitions.iter().find(|d| d.key == record.key);
            let is_file =
                definition.map_or(record.file_name.is_some(), |d| d.kind() == InputKind::File);
            let is_html = definition.is_some_and(|d| {
                d.data_type
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("text/html")
            });
            let value = if is_file {
                InputValue::File(self.input_file(job, record, &mut budget).await?)
            } else if is_html {
                InputValue::Text(agentd_documents::html_to_markdown(&record.value))
            } else {
                InputValue::Text(record.value.clone())
            };
            inputs.insert(record.key.clone(), value);
        }
        Ok(inputs)
    }

    /// The stored file of a file input; an input still given as a URL is
    /// first fetched into the store and recorded as the job's file.
    async fn input_file(
        &self,
        job: &Job,
        record: &JobInput,
        budget: &mut u64,
    ) -> Result<FileRef, AttemptError> {
        let key = &record.key;
        if let Ok(id) = record.value.parse::<FileId>() {
            return self
                .files
                .find(self.storage.as_ref(), job.organization_id, id)
                .await
                .map_err(|e| file_failure(job, key, e));
        }
        if !(record.value.starts_with("http://") || record.value.starts_with("https://")) {
            return Err(invalid(format!("Input '{key}' has no stored file.")).into());
        }
        let staged = self
            .files
            .stage_url(&record.value, &record.data_type, budget)
            .await
            .map_err(|e| file_failure(job, key, e))?;
        let attached = self
            .storage
            .attach_fetched_file(job.id, key, staged.file())
            .await
            .map_err(|e| file_failure(job, key, e.into()))?;
        if !attached {
            // Cancelled or deleted meanwhile: the staged bytes go.
            return Err(invalid(format!(
                "The job ended while its input '{key}' was fetched."
            ))
            .into());
        }
        let file = staged.file().clone();
        staged.keep();
        Ok(file)
    }
}

/// A file that could not be read or fetched: the input's fault when the
/// file was refused; postponed when storage or the disk is full or busy
/// (the job runs again after its lease); agentd's fault otherwise (details
/// logged, not shown).
fn file_failure(job: &Job, key: &str, error: FileError) -> AttemptError {
    match error {
        FileError::Rejected(message) => invalid(format!("Input '{key}': {message}")).into(),
        FileError::Storage(error) if error.is_transient() => storage_failure(job, &error),
        FileError::Unavailable(error) => {
            tracing::warn!(job = %job.id, input = key, %error, "the object store is unavailable");
            Failure {
                kind: FailureKind::Internal,
                message: format!("Input '{key}' could not be stored: {STORE_UNREACHABLE}."),
            }
            .into()
        }
        FileError::Io(error) if agentd_storage::is_disk_full(&error) => {
            tracing::warn!(job = %job.id, input = key, %error, "the file store is full; the job runs again after its lease");
            AttemptError::Postponed
        }
        other => {
            tracing::error!(job = %job.id, input = key, error = %other, "storing an input file failed");
            Failure {
                kind: FailureKind::Internal,
                message: format!("Input '{key}' could not be stored; try again later."),
            }
            .into()
        }
    }
}

/// A file that could not be read as text, named by its input and field.
fn document_failure(key: &str, field: &str, error: &DocumentError) -> Failure {
    let message = match error {
        DocumentError::Image(_) => {
            format!("Input '{key}' is used as text in engine_config field '{field}', but {error}.")
        }
        _ => format!("Input '{key}' (engine_config field '{field}'): {error}."),
    };
    let kind = if error.is_caller_fault() {
        FailureKind::Invalid
    } else {
        FailureKind::Internal
    };
    Failure { kind, message }
}

/// An engine's progress, written as the job's status events. Progress is
/// news, not state: a failure to write it is logged and the run goes on.
struct JobProgress<'a> {
    storage: &'a dyn Storage,
    job: JobId,
    owner: &'a str,
}

#[async_trait]
impl Progress for JobProgress<'_> {
    async fn report(&self, message: String) {
        if let Err(error) = self
            .storage
            .record_progress(self.job, self.owner, &message)
            .await
        {
            tracing::warn!(job = %self.job, %error, "recording a job's progress failed");
        }
    }
}

/// The files of one job's organization, for engines.
struct JobFiles<'a> {
    store: &'a FileStore,
    storage: &'a dyn Storage,
    organization_id: OrganizationId,
}

#[async_trait]
impl FileReader for JobFiles<'_> {
    async fn read(&self, id: FileId) -> Result<(FileRef, Vec<u8>), String> {
        let unreadable = |error: FileError| match error {
            FileError::Rejected(message) => message,
            FileError::Unavailable(error) => {
                tracing::warn!(file = %id, %error, "reading a job's file failed");
                format!("File {id} could not be read: {STORE_UNREACHABLE}.")
            }
            other => {
                tracing::error!(file = %id, error = %other, "reading a job's file failed");
                format!("File {id} could not be read.")
            }
        };
        let file = self
            .store
            .find(self.storage, self.organization_id, id)
            .await
            .map_err(unreadable)?;
        let bytes = self.store.read(id).await.map_err(unreadable)?;
        Ok((file, bytes))
    }

    async fn fetch(&self, url: &str) -> Result<(String, Vec<u8>), String> {
        let upload = self.store.fetch(url).await.map_err(|e| e.to_string())?;
        Ok((upload.file_name, upload.bytes))
    }
}

/// What the running job saves for its caller, kept with the job.
struct JobSaves<'a> {
    store: &'a JobReferenceStore,
    job: agentd_domain::JobId,
    /// A save failed because the object store could not be reached: the
    /// job's error says so instead of naming an internal error.
    store_unreachable: AtomicBool,
}

impl JobSaves<'_> {
    /// Saving failed on the server's side: logged in full; the engine gets
    /// an internal error (never shown to the user).
    fn failed(&self, error: crate::references::SaveError) -> EngineError {
        if matches!(
            error,
            crate::references::SaveError::Store(FileError::Unavailable(_))
        ) {
            self.store_unreachable.store(true, Relaxed);
        }
        tracing::error!(job = %self.job, %error, "saving a job reference failed");
        EngineError::Internal(format!("saving a result of job {} failed", self.job))
    }
}

#[async_trait]
impl JobReferences for JobSaves<'_> {
    async fn save_reference(
        &self,
        file_name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<SavedReference, EngineError> {
        let saved = self
            .store
            .save_reference(self.job, file_name, content_type, &bytes)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(SavedReference {
            resource_id: saved.id.to_string(),
            url: self.store.url(self.job, saved.id),
        })
    }

    async fn save_artifact(
        &self,
        name: &str,
        result: &serde_json::Value,
    ) -> Result<String, EngineError> {
        let saved = self
            .store
            .save_artifact(self.job, name, result)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(saved.artifact_key.unwrap_or_default())
    }
}
