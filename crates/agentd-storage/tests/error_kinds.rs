//! Storage errors are classified by what they mean for the caller, from real
//! SQLite failures: the API maps the kinds to statuses, workers retry the
//! transient ones.

use std::str::FromStr;
use std::time::Duration;

use agentd_storage::{StorageError, StorageErrorKind};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

async fn memory() -> SqliteConnection {
    SqliteConnection::connect("sqlite::memory:").await.unwrap()
}

fn kind_of(error: sqlx::Error) -> StorageErrorKind {
    StorageError::from(error).kind()
}

#[tokio::test]
async fn a_unique_violation_is_a_conflict() {
    let mut db = memory().await;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut db)
        .await
        .unwrap();
    let error = sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut db)
        .await
        .unwrap_err();
    assert_eq!(kind_of(error), StorageErrorKind::Conflict);
    assert_eq!(
        StorageError::Conflict("API key".into()).kind(),
        StorageErrorKind::Conflict
    );
}

#[tokio::test]
async fn a_full_database_is_full_and_transient() {
    let mut db = memory().await;
    sqlx::query("CREATE TABLE t (data BLOB)")
        .execute(&mut db)
        .await
        .unwrap();
    // The database may not grow past its current size: SQLITE_FULL.
    sqlx::query("PRAGMA max_page_count = 8")
        .execute(&mut db)
        .await
        .unwrap();
    let mut error = None;
    for _ in 0..64 {
        if let Err(e) = sqlx::query("INSERT INTO t VALUES (zeroblob(4096))")
            .execute(&mut db)
            .await
        {
            error = Some(e);
            break;
        }
    }
    let error = StorageError::from(error.expect("the database filled up"));
    assert_eq!(error.kind(), StorageErrorKind::Full);
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_locked_database_is_unavailable() {
    let dir = std::env::temp_dir().join(format!("agentd-error-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}/locked.db", dir.display()))
        .unwrap()
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let mut holder = options.connect().await.unwrap();
    let mut other = options.connect().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let error = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap_err();
    assert_eq!(kind_of(error), StorageErrorKind::Unavailable);
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pool_and_io_failures_are_transient_and_bugs_are_internal() {
    assert_eq!(
        kind_of(sqlx::Error::PoolTimedOut),
        StorageErrorKind::Unavailable
    );
    assert_eq!(
        kind_of(sqlx::Error::PoolClosed),
        StorageErrorKind::Unavailable
    );
    let no_space = std::io::Error::from_raw_os_error(28); // ENOSPC
    assert_eq!(kind_of(sqlx::Error::Io(no_space)), StorageErrorKind::Full);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(
        kind_of(sqlx::Error::Io(refused)),
        StorageErrorKind::Unavailable
    );
    assert_eq!(
        kind_of(sqlx::Error::RowNotFound),
        StorageErrorKind::Internal
    );
    assert_eq!(
        StorageError::Corrupt("bad row".into()).kind(),
        StorageErrorKind::Internal
    );
    assert!(!StorageErrorKind::Internal.is_transient());
    assert!(!StorageErrorKind::Conflict.is_transient());
}

#[tokio::test]
async fn a_bad_statement_is_internal() {
    let mut db = memory().await;
    let error = sqlx::query("SELEC nothing")
        .execute(&mut db)
        .await
        .unwrap_err();
    assert_eq!(kind_of(error), StorageErrorKind::Internal);
}

#[tokio::test]
async fn an_unsupported_database_url_names_both_schemes() {
    let error = match agentd_storage::connect("mysql://localhost/agentd").await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a mysql URL was accepted"),
    };
    assert!(error.contains("sqlite://"), "{error}");
    assert!(error.contains("postgres://"), "{error}");
}

mod support;

/// A PostgreSQL unique violation is a conflict; a connection the server
/// terminated (admin_shutdown, as in a restart) is unavailable.
#[tokio::test]
async fn postgres_errors_are_classified() {
    use sqlx::PgConnection;
    let Some(url) = support::postgres_admin_url().await else {
        return;
    };
    let mut db = PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TEMPORARY TABLE t (id integer PRIMARY KEY)")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut db)
        .await
        .unwrap();
    let error = sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut db)
        .await
        .unwrap_err();
    assert_eq!(kind_of(error), StorageErrorKind::Conflict);
    let error = sqlx::query("SELEC nothing")
        .execute(&mut db)
        .await
        .unwrap_err();
    assert_eq!(kind_of(error), StorageErrorKind::Internal);

    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);
    let error = sqlx::query("SELECT 1").execute(&mut db).await.unwrap_err();
    let described = format!("{error:?}");
    assert_eq!(kind_of(error), StorageErrorKind::Unavailable, "{described}");
}
