//! References and artifacts a job saved: a `job_references` row over a
//! file record linked to the job (see the migration for their lifecycle).

use agentd_domain::{FileId, JobId, OrganizationId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::files::{insert_file, link};
use super::jobs::now;
use super::rows::{file_from_row, id};
use super::SqliteStorage;
use crate::{
    reference_insert_error, JobReference, JobReferenceKind, NewJobReference, ReferenceAdded,
    ReferenceLookup, Result, StorageError,
};

pub(super) async fn add_job_reference(
    db: &SqliteStorage,
    job: JobId,
    reference: &NewJobReference,
) -> Result<ReferenceAdded> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let org: Option<String> = sqlx::query_scalar("SELECT organization_id FROM jobs WHERE id = ?")
        .bind(job.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(org) = org else {
        return Ok(ReferenceAdded::JobGone);
    };
    let org: OrganizationId = org
        .parse()
        .map_err(|_| StorageError::Corrupt(format!("bad organization id {org}")))?;
    let replaced = match &reference.artifact_key {
        Some(key) => remove_artifact(&mut tx, job, key).await?,
        None => None,
    };
    insert_file(&mut tx, org, &reference.file, &at).await?;
    link(&mut tx, job, reference.file.id).await?;
    sqlx::query(
        "INSERT INTO job_references (id, job_id, file_id, kind, artifact_key, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(reference.id.to_string())
    .bind(job.to_string())
    .bind(reference.file.id.to_string())
    .bind(reference.kind.as_str())
    .bind(&reference.artifact_key)
    .bind(&at)
    .execute(&mut *tx)
    .await
    .map_err(|error| reference_insert_error(error, reference))?;
    tx.commit().await?;
    Ok(replaced.map_or(ReferenceAdded::Added, ReferenceAdded::Replaced))
}

const SELECT_REFERENCES: &str =
    "SELECT r.id AS reference_id, r.job_id, r.kind, r.artifact_key, f.* \
     FROM job_references r JOIN files f ON f.id = r.file_id JOIN jobs j ON j.id = r.job_id \
     WHERE j.organization_id = ? AND r.job_id = ?";

pub(super) async fn find_job_reference(
    db: &SqliteStorage,
    org: OrganizationId,
    job: JobId,
    lookup: ReferenceLookup<'_>,
) -> Result<Option<JobReference>> {
    let (condition, value) = match lookup {
        ReferenceLookup::Reference(id) => ("r.id = ? AND r.kind = 'reference'", id.to_string()),
        ReferenceLookup::ArtifactKey(key) => {
            ("r.artifact_key = ? AND r.kind = 'artifact'", key.to_owned())
        }
    };
    let row = sqlx::query(&format!("{SELECT_REFERENCES} AND {condition}"))
        .bind(org.to_string())
        .bind(job.to_string())
        .bind(value)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(reference_from_row).transpose()
}

fn reference_from_row(row: &SqliteRow) -> Result<JobReference> {
    Ok(JobReference {
        id: id(row, "reference_id")?,
        job_id: id(row, "job_id")?,
        kind: JobReferenceKind::parse(&row.try_get::<String, _>("kind")?)?,
        artifact_key: row.try_get("artifact_key")?,
        file: file_from_row(row)?,
    })
}

/// The files of what `job` saved, with their kinds (read before the job's
/// files are released, to tell them from its input files).
pub(super) async fn saved_files(
    conn: &mut SqliteConnection,
    job: JobId,
) -> Result<Vec<(FileId, JobReferenceKind)>> {
    let rows = sqlx::query("SELECT file_id, kind FROM job_references WHERE job_id = ?")
        .bind(job.to_string())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                id(row, "file_id")?,
                JobReferenceKind::parse(&row.try_get::<String, _>("kind")?)?,
            ))
        })
        .collect()
}

/// Removes the job's artifact `key` (its link and file record; the
/// reference row goes with the file); returns its file.
async fn remove_artifact(
    conn: &mut SqliteConnection,
    job: JobId,
    key: &str,
) -> Result<Option<FileId>> {
    let file: Option<String> = sqlx::query_scalar(
        "SELECT file_id FROM job_references WHERE job_id = ? AND artifact_key = ?",
    )
    .bind(job.to_string())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(file) = file else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM job_files WHERE job_id = ? AND file_id = ?")
        .bind(job.to_string())
        .bind(&file)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM files WHERE id = ?")
        .bind(&file)
        .execute(&mut *conn)
        .await?;
    file.parse()
        .map(Some)
        .map_err(|_| StorageError::Corrupt(format!("bad file id {file}")))
}
