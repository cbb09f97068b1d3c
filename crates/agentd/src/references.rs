//! What jobs keep for their callers: references (files served as they are
//! at `/v1/agents/jobs/{job}/references/{resource_id}/`: derived PDFs, page
//! images, web pages) and artifacts (keyed JSON results served at
//! `/v1/agents/jobs/{job}/artifacts/result/?artifact_key=…`).
//!
//! Their bytes are stored like uploaded files ([`FileStore`]: published
//! whole in the object store, removed again unless the row that refers to
//! them commits) and recorded as files of the job, so delete-data, agent
//! deletion and the file sweep remove them by the rules files have.

use std::sync::Arc;

use agentd_domain::{JobId, OrganizationId, ReferenceId};
use agentd_storage::{
    JobReference, JobReferenceKind, NewJobReference, ReferenceAdded, ReferenceLookup, Storage,
};
use serde_json::Value;

use crate::files::{FileError, FileStore};
use crate::public_url::PublicUrl;

#[derive(Clone)]
pub struct JobReferenceStore {
    storage: Arc<dyn Storage>,
    files: FileStore,
    public_url: PublicUrl,
}

/// Why saving failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The job was deleted while it ran (its agent was deleted).
    #[error("the job no longer exists")]
    JobGone,
    #[error(transparent)]
    Store(#[from] FileError),
}

impl From<agentd_storage::StorageError> for SaveError {
    fn from(error: agentd_storage::StorageError) -> Self {
        Self::Store(error.into())
    }
}

/// A stored reference or artifact with its bytes.
pub struct Opened {
    pub reference: JobReference,
    pub bytes: Vec<u8>,
}

const JSON: &str = "application/json";

impl JobReferenceStore {
    pub fn new(storage: Arc<dyn Storage>, files: FileStore, public_url: PublicUrl) -> Self {
        Self {
            storage,
            files,
            public_url,
        }
    }

    /// Where a reference is downloaded.
    pub fn url(&self, job: JobId, id: ReferenceId) -> String {
        format!(
            "{}/v1/agents/jobs/{job}/references/{id}/",
            self.public_url.get()
        )
    }

    /// The key an artifact named `name` of `job` is served under, in the
    /// shape Roe's keys have (`agent-job-<id>/<name>`).
    pub fn artifact_key(job: JobId, name: &str) -> String {
        format!("agent-job-{job}/{name}")
    }

    pub async fn save_reference(
        &self,
        job: JobId,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<JobReference, SaveError> {
        self.save(
            job,
            JobReferenceKind::Reference,
            None,
            file_name,
            content_type,
            bytes,
        )
        .await
    }

    /// Saves `result` (JSON) as the artifact `name` of `job`.
    pub async fn save_artifact(
        &self,
        job: JobId,
        name: &str,
        result: &Value,
    ) -> Result<JobReference, SaveError> {
        let key = Self::artifact_key(job, name);
        let bytes = serde_json::to_vec(result).expect("JSON values serialize");
        self.save(
            job,
            JobReferenceKind::Artifact,
            Some(key),
            name,
            JSON,
            &bytes,
        )
        .await
    }

    async fn save(
        &self,
        job: JobId,
        kind: JobReferenceKind,
        artifact_key: Option<String>,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<JobReference, SaveError> {
        let staged = self
            .files
            .stage_bytes(file_name.to_owned(), content_type.to_owned(), bytes)
            .await?;
        let reference = NewJobReference {
            id: ReferenceId::new(),
            kind,
            artifact_key,
            file: staged.file().clone(),
        };
        match self.storage.add_job_reference(job, &reference).await? {
            // Dropping `staged` removes the bytes.
            ReferenceAdded::JobGone => return Err(SaveError::JobGone),
            ReferenceAdded::Added => staged.keep(),
            // An earlier attempt of the job saved this artifact; its bytes
            // have no record any more (the sweep removes them if this fails).
            ReferenceAdded::Replaced(earlier) => {
                staged.keep();
                if let Err(error) = self.files.delete(earlier).await {
                    tracing::warn!(file = %earlier, %error, "removing a replaced artifact failed");
                }
            }
        }
        Ok(JobReference {
            id: reference.id,
            job_id: job,
            kind,
            artifact_key: reference.artifact_key,
            file: reference.file,
        })
    }

    /// A reference or artifact of the organization's job, with its bytes.
    pub async fn open(
        &self,
        org: OrganizationId,
        job: JobId,
        lookup: ReferenceLookup<'_>,
    ) -> Result<Option<Opened>, FileError> {
        let Some(reference) = self.storage.find_job_reference(org, job, lookup).await? else {
            return Ok(None);
        };
        match self.files.read(reference.file.id).await {
            Ok(bytes) => Ok(Some(Opened { reference, bytes })),
            // Deleted (delete-data) between the lookup and the read.
            Err(FileError::Missing(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
