//! File records and their links to jobs. A file lives as long as a job
//! refers to it: the statement that removes its last link removes its record
//! in the same transaction, and the caller then removes its bytes.

use agentd_domain::time::{self, Timestamp};
use agentd_domain::{FileId, FileRef, JobId, JobInput, JobStatus, OrganizationId};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::jobs::now;
use super::SqliteStorage;
use crate::{JobFile, Result, StorageError};

/// Ids per `IN (...)` list, well under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

pub(super) async fn insert_file(
    conn: &mut SqliteConnection,
    org: OrganizationId,
    file: &FileRef,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO files (id, organization_id, file_name, content_type, size, sha256, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(file.id.to_string())
    .bind(org.to_string())
    .bind(&file.file_name)
    .bind(&file.content_type)
    .bind(file.size as i64)
    .bind(&file.sha256)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn link(conn: &mut SqliteConnection, job: JobId, file: FileId) -> Result<()> {
    sqlx::query("INSERT INTO job_files (job_id, file_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(job.to_string())
        .bind(file.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a new job's new files and links it to all of its files.
pub(super) async fn link_job_files(
    conn: &mut SqliteConnection,
    org: OrganizationId,
    job: JobId,
    files: &[JobFile],
    at: &str,
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

/// Removes the links of the jobs `jobs_filter` selects (an SQL condition on
/// `jobs` with one bound parameter) and the records of the files left
/// without any; returns those files.
pub(super) async fn unlink_jobs(
    conn: &mut SqliteConnection,
    jobs_filter: &str,
    bind: &str,
) -> Result<Vec<FileId>> {
    let jobs = format!("SELECT id FROM jobs WHERE {jobs_filter}");
    let linked: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT file_id FROM job_files WHERE job_id IN ({jobs})"
    ))
    .bind(bind)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(&format!("DELETE FROM job_files WHERE job_id IN ({jobs})"))
        .bind(bind)
        .execute(&mut *conn)
        .await?;
    let mut released = Vec::new();
    for chunk in linked.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM files WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id);
        }
        query.push(format!(") AND {UNREFERENCED} RETURNING id"));
        let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        released.extend(ids);
    }
    released.iter().map(|id| parse_file_id(id)).collect()
}

fn parse_file_id(text: &str) -> Result<FileId> {
    text.parse()
        .map_err(|_| StorageError::Corrupt(format!("bad file id {text}")))
}

pub(super) async fn attach_fetched_file(
    db: &SqliteStorage,
    job: JobId,
    input_key: &str,
    file: &FileRef,
) -> Result<bool> {
    let at = now();
    let mut tx = db.begin_write().await?;
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT status, inputs, organization_id FROM jobs WHERE id = ?")
            .bind(job.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, inputs, org)) = row else {
        return Ok(false);
    };
    if JobStatus::from_code(status).is_none_or(JobStatus::is_final) {
        return Ok(false);
    }
    let mut inputs: Vec<JobInput> =
        serde_json::from_str(&inputs).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let Some(input) = inputs.iter_mut().find(|input| input.key == input_key) else {
        return Err(StorageError::Corrupt(format!(
            "job {job} has no input '{input_key}'"
        )));
    };
    input.value = file.id.to_string();
    input.file_name = Some(file.file_name.clone());
    let org: OrganizationId = org
        .parse()
        .map_err(|_| StorageError::Corrupt(format!("bad organization id {org}")))?;
    insert_file(&mut tx, org, file, &at).await?;
    link(&mut tx, job, file.id).await?;
    sqlx::query("UPDATE jobs SET inputs = ? WHERE id = ?")
        .bind(serde_json::to_string(&inputs).expect("inputs serialize"))
        .bind(job.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records no link refers to, in any organization.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM job_files l WHERE l.file_id = files.id)";

/// Files deleted by one sweep statement.
const SWEEP_BATCH: i64 = 500;

pub(super) async fn delete_unreferenced_files(
    db: &SqliteStorage,
    created_before: Timestamp,
) -> Result<Vec<FileId>> {
    let mut released = Vec::new();
    loop {
        // Found with a read, so that the write lock is held only for what
        // is deleted (in steady state: nothing).
        let candidates: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM files WHERE created_at < ? AND {UNREFERENCED} LIMIT ?"
        ))
        .bind(time::format(&created_before))
        .bind(SWEEP_BATCH)
        .fetch_all(&db.pool)
        .await?;
        if candidates.is_empty() {
            break;
        }
        let mut tx = db.begin_write().await?;
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM files WHERE id IN (");
        let mut list = query.separated(", ");
        for id in &candidates {
            list.push_bind(id);
        }
        // Checked again: a job may have linked one since the read.
        query.push(format!(") AND {UNREFERENCED} RETURNING id"));
        let deleted: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let last = deleted.is_empty() || (candidates.len() as i64) < SWEEP_BATCH;
        for id in &deleted {
            released.push(parse_file_id(id)?);
        }
        if last {
            break;
        }
    }
    Ok(released)
}

pub(super) async fn recorded_files(pool: &SqlitePool, ids: &[FileId]) -> Result<Vec<FileId>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT id FROM files WHERE id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(id.to_string());
        }
        query.push(")");
        let rows: Vec<String> = query.build_query_scalar().fetch_all(pool).await?;
        for id in rows {
            found.push(parse_file_id(&id)?);
        }
    }
    Ok(found)
}
