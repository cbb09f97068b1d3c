//! File records and their links to jobs (see the SQLite module for the
//! life of a file): a record goes in the transaction that removes its last link.

use agentd_domain::time::{self, Timestamp};
use agentd_domain::{FileId, FileRef, JobId, JobInput, JobStatus, OrganizationId};
use sqlx::types::{Json, Uuid};
use sqlx::{PgConnection, PgPool, Row};

use super::PostgresStorage;
use crate::{JobFile, Result, StorageError};

/// Records no link refers to, in any organization.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM job_files l WHERE l.file_id = files.id)";

/// Files deleted by one sweep statement.
const SWEEP_BATCH: i64 = 500;

pub(super) async fn insert_file(
    conn: &mut PgConnection,
    org: OrganizationId,
    file: &FileRef,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO files (id, organization_id, file_name, content_type, size, sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(*file.id.as_uuid())
    .bind(*org.as_uuid())
    .bind(&file.file_name)
    .bind(&file.content_type)
    .bind(file.size as i64)
    .bind(&file.sha256)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn link(conn: &mut PgConnection, job: JobId, file: FileId) -> Result<()> {
    sqlx::query("INSERT INTO job_files (job_id, file_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(*job.as_uuid())
        .bind(*file.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a new job's new files and links it to all of its files.
pub(super) async fn link_job_files(
    conn: &mut PgConnection,
    org: OrganizationId,
    job: JobId,
    files: &[JobFile],
    at: Timestamp,
) -> Result<()> {
    for file in files {
        let id = match file {
            JobFile::New(file) => {
                insert_file(conn, org, file, at).await?;
                file.id
            }
            JobFile::Existing(id) => *id,
        };
        link(conn, job, id).await?;
    }
    Ok(())
}

fn file_ids(ids: Vec<Uuid>) -> Vec<FileId> {
    ids.into_iter().map(FileId::from).collect()
}

/// Removes the links of the jobs whose `column` (`id` or `agent_id`) is
/// `value` and the records of the files left without any; returns those files.
pub(super) async fn unlink_jobs(
    conn: &mut PgConnection,
    column: &str,
    value: Uuid,
) -> Result<Vec<FileId>> {
    let linked: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH gone AS (DELETE FROM job_files WHERE job_id IN \
                       (SELECT id FROM jobs WHERE {column} = $1) RETURNING file_id) \
         SELECT DISTINCT file_id FROM gone"
    ))
    .bind(value)
    .fetch_all(&mut *conn)
    .await?;
    if linked.is_empty() {
        return Ok(Vec::new());
    }
    let released: Vec<Uuid> = sqlx::query_scalar(&format!(
        "DELETE FROM files WHERE id = ANY($1) AND {UNREFERENCED} RETURNING id"
    ))
    .bind(linked)
    .fetch_all(&mut *conn)
    .await?;
    Ok(file_ids(released))
}

pub(super) async fn attach_fetched_file(
    db: &PostgresStorage,
    job: JobId,
    input_key: &str,
    file: &FileRef,
) -> Result<bool> {
    let mut tx = db.pool.begin().await?;
    // Locked: a finish or a delete of the job's data waits for this.
    let row =
        sqlx::query("SELECT status, inputs, organization_id FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(*job.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let status: i16 = row.try_get("status")?;
    if JobStatus::from_code(status.into()).is_none_or(JobStatus::is_final) {
        return Ok(false);
    }
    let Json(mut inputs): Json<Vec<JobInput>> = row.try_get("inputs")?;
    let Some(input) = inputs.iter_mut().find(|input| input.key == input_key) else {
        return Err(StorageError::Corrupt(format!(
            "job {job} has no input '{input_key}'"
        )));
    };
    input.value = file.id.to_string();
    input.file_name = Some(file.file_name.clone());
    let org = OrganizationId::from(row.try_get::<Uuid, _>("organization_id")?);
    insert_file(&mut tx, org, file, time::now()).await?;
    link(&mut tx, job, file.id).await?;
    sqlx::query("UPDATE jobs SET inputs = $1 WHERE id = $2")
        .bind(Json(&inputs))
        .bind(*job.as_uuid())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn delete_unreferenced_files(
    db: &PostgresStorage,
    created_before: Timestamp,
) -> Result<Vec<FileId>> {
    let mut released = Vec::new();
    loop {
        // Checked again on the locked rows: a job may have linked one since.
        let deleted: Vec<Uuid> = sqlx::query_scalar(&format!(
            "DELETE FROM files WHERE id IN (SELECT id FROM files \
                 WHERE created_at < $1 AND {UNREFERENCED} LIMIT $2 FOR UPDATE SKIP LOCKED) \
             AND {UNREFERENCED} RETURNING id"
        ))
        .bind(created_before)
        .bind(SWEEP_BATCH)
        .fetch_all(&db.pool)
        .await?;
        let last = (deleted.len() as i64) < SWEEP_BATCH;
        released.extend(file_ids(deleted));
        if last {
            break;
        }
    }
    Ok(released)
}

pub(super) async fn recorded_files(pool: &PgPool, ids: &[FileId]) -> Result<Vec<FileId>> {
    let found: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM files WHERE id = ANY($1)")
        .bind(ids.iter().map(|id| *id.as_uuid()).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(file_ids(found))
}
