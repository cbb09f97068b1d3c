//! References and artifacts a job saved (see the SQLite module).

use agentd_domain::time;
use agentd_domain::{FileId, JobId, OrganizationId};
use sqlx::postgres::PgRow;
use sqlx::types::Uuid;
use sqlx::{PgConnection, Row};

use super::files::{insert_file, link};
use super::rows::{file_from_row, id};
use super::PostgresStorage;
use crate::{
    reference_insert_error, JobReference, JobReferenceKind, NewJobReference, ReferenceAdded,
    ReferenceLookup, Result,
};

pub(super) async fn add_job_reference(
    db: &PostgresStorage,
    job: JobId,
    reference: &NewJobReference,
) -> Result<ReferenceAdded> {
    let at = time::now();
    let mut tx = db.pool.begin().await?;
    // Locked so that the job cannot be deleted before the rows referring to it exist.
    let org: Option<Uuid> =
        sqlx::query_scalar("SELECT organization_id FROM jobs WHERE id = $1 FOR SHARE")
            .bind(*job.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(org) = org else {
        return Ok(ReferenceAdded::JobGone);
    };
    let replaced = match &reference.artifact_key {
        Some(key) => remove_artifact(&mut tx, job, key).await?,
        None => None,
    };
    insert_file(&mut tx, OrganizationId::from(org), &reference.file, at).await?;
    link(&mut tx, job, reference.file.id).await?;
    sqlx::query(
        "INSERT INTO job_references (id, job_id, file_id, kind, artifact_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(*reference.id.as_uuid())
    .bind(*job.as_uuid())
    .bind(*reference.file.id.as_uuid())
    .bind(reference.kind.as_str())
    .bind(&reference.artifact_key)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(|error| reference_insert_error(error, reference))?;
    tx.commit().await?;
    Ok(replaced.map_or(ReferenceAdded::Added, ReferenceAdded::Replaced))
}

const SELECT_REFERENCES: &str =
    "SELECT r.id AS reference_id, r.job_id, r.kind, r.artifact_key, f.* \
     FROM job_references r JOIN files f ON f.id = r.file_id JOIN jobs j ON j.id = r.job_id \
     WHERE j.organization_id = $1 AND r.job_id = $2";

pub(super) async fn find_job_reference(
    db: &PostgresStorage,
    org: OrganizationId,
    job: JobId,
    lookup: ReferenceLookup<'_>,
) -> Result<Option<JobReference>> {
    let by_reference = format!("{SELECT_REFERENCES} AND r.id = $3 AND r.kind = 'reference'");
    let by_key = format!("{SELECT_REFERENCES} AND r.artifact_key = $3 AND r.kind = 'artifact'");
    let query = match lookup {
        ReferenceLookup::Reference(id) => sqlx::query(&by_reference)
            .bind(*org.as_uuid())
            .bind(*job.as_uuid())
            .bind(*id.as_uuid()),
        ReferenceLookup::ArtifactKey(key) => sqlx::query(&by_key)
            .bind(*org.as_uuid())
            .bind(*job.as_uuid())
            .bind(key.to_owned()),
    };
    let row = query.fetch_optional(&db.pool).await?;
    row.as_ref().map(reference_from_row).transpose()
}

fn reference_from_row(row: &PgRow) -> Result<JobReference> {
    Ok(JobReference {
        id: id(row, "reference_id")?,
        job_id: id(row, "job_id")?,
        kind: JobReferenceKind::parse(&row.try_get::<String, _>("kind")?)?,
        artifact_key: row.try_get("artifact_key")?,
        file: file_from_row(row)?,
    })
}

/// The files of what `job` saved, with their kinds.
pub(super) async fn saved_files(
    conn: &mut PgConnection,
    job: JobId,
) -> Result<Vec<(FileId, JobReferenceKind)>> {
    let rows = sqlx::query("SELECT file_id, kind FROM job_references WHERE job_id = $1")
        .bind(*job.as_uuid())
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
async fn remove_artifact(conn: &mut PgConnection, job: JobId, key: &str) -> Result<Option<FileId>> {
    let file: Option<Uuid> = sqlx::query_scalar(
        "SELECT file_id FROM job_references WHERE job_id = $1 AND artifact_key = $2",
    )
    .bind(*job.as_uuid())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(file) = file else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM job_files WHERE job_id = $1 AND file_id = $2")
        .bind(*job.as_uuid())
        .bind(file)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM files WHERE id = $1")
        .bind(file)
        .execute(&mut *conn)
        .await?;
    Ok(Some(FileId::from(file)))
}
