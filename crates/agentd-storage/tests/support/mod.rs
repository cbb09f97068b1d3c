//! Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database
//! on the server `AGENTD_TEST_POSTGRES_URL` names (by default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.
//! Without a server the PostgreSQL half is skipped with a message, unless
//! `AGENTD_REQUIRE_POSTGRES=1` makes that a failure.

#![allow(dead_code, unused_macros)]

use std::sync::Arc;

use agentd_domain::{AgentName, JobId, JobInput, NewAgent, NewAgentVersion, OrganizationId};
use agentd_storage::{ConnectOptions, NewJob, Storage};
use serde_json::json;
use sqlx::{Connection, PgConnection};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server's administrative URL, or `None` (with a message) when no
/// server answers and none is required.
pub async fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("AGENTD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    match PgConnection::connect(&url).await {
        Ok(connection) => {
            let _ = connection.close().await;
            Some(url)
        }
        Err(error) => {
            let required = std::env::var("AGENTD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "AGENTD_REQUIRE_POSTGRES=1 but PostgreSQL at {url} is unreachable: {error}"
            );
            eprintln!(
                "SKIPPING the PostgreSQL half of this test: no server at {url} ({error}). \
                 Set AGENTD_TEST_POSTGRES_URL, or AGENTD_REQUIRE_POSTGRES=1 to fail instead."
            );
            None
        }
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..host_end])
}

enum Cleanup {
    Directory(std::path::PathBuf),
    Database { admin_url: String, name: String },
}

pub struct TempDb {
    pub storage: Arc<dyn Storage>,
    /// The URL `storage` was opened with.
    url: String,
    cleanup: Cleanup,
}

impl TempDb {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("agentd-storage-test-{}", JobId::new()));
        let url = format!("sqlite://{}/agentd.db", dir.display());
        TempDb {
            storage: agentd_storage::connect(&url).await.unwrap(),
            url,
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A fresh database `agentd_test_<random>`, or `None` when skipped.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_admin_url().await?;
        let name = format!("agentd_test_{}", JobId::new().as_uuid().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        let options = ConnectOptions {
            max_connections: 16,
        };
        let url = with_database(&admin_url, &name);
        let storage = agentd_storage::connect_with(&url, &options).await.unwrap();
        Some(TempDb {
            storage,
            url,
            cleanup: Cleanup::Database { admin_url, name },
        })
    }
}

impl TempDb {
    /// The same database opened again, with a pool (and, on SQLite, a
    /// write lock) of its own: what another process would see.
    pub async fn open_again(&self) -> Arc<dyn Storage> {
        agentd_storage::connect(&self.url).await.unwrap()
    }

    /// The URL of a PostgreSQL test database (`None` for SQLite).
    pub fn postgres_url(&self) -> Option<String> {
        match &self.cleanup {
            Cleanup::Database { admin_url, name } => Some(with_database(admin_url, name)),
            Cleanup::Directory(_) => None,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                // Drop cannot await: the database goes on a thread of its own
                // (FORCE closes the pool's connections still open).
                let (admin_url, database) = (admin_url.clone(), name.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let mut admin = PgConnection::connect(&admin_url).await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await?;
                        admin.close().await
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("could not drop the test database {name}: {dropped:?}");
                }
            }
        }
    }
}

/// Runs each test once on a fresh SQLite file and once on a fresh
/// PostgreSQL database (skipped, with a message, without a server).
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::TempDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(db) = super::TempDb::postgres().await {
                        super::$test(db).await;
                    }
                }
            )*
        }
    };
}

pub async fn agent(storage: &dyn Storage, org: OrganizationId, name: &str) -> agentd_domain::Agent {
    storage
        .create_agent(NewAgent {
            organization_id: org,
            name: AgentName::parse(name).unwrap(),
            engine_class_id: "MultimodalExtractionEngine".into(),
            creator_key_id: None,
            first_version: NewAgentVersion {
                version_name: None,
                description: None,
                input_definitions: vec![],
                engine_config: json!({"instruction": "x"}),
                creator_key_id: None,
            },
        })
        .await
        .unwrap()
        .0
}

pub fn new_job(agent: &agentd_domain::Agent) -> NewJob {
    NewJob {
        id: JobId::new(),
        organization_id: agent.organization_id,
        agent_id: agent.id,
        agent_version_id: agent.current_version_id,
        inputs: vec![JobInput {
            key: "text".into(),
            description: String::new(),
            data_type: "text/plain".into(),
            value: "hello".into(),
            file_name: None,
        }],
        metadata: json!({"batch": "7"}),
        creator_key_id: None,
        cache_key: Some("k1".into()),
        idempotency_key: None,
        cached: None,
        files: vec![],
        awaited: false,
    }
}

pub async fn setup(db: TempDb) -> (TempDb, agentd_domain::Agent) {
    let org = db
        .storage
        .create_organization(OrganizationId::new(), "org")
        .await
        .unwrap();
    let agent = agent(db.storage.as_ref(), org.id, "a").await;
    (db, agent)
}

#[test]
fn the_database_of_a_url_is_replaced() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/", "x"),
        "postgres://u:p@h/x"
    );
    assert_eq!(
        with_database("postgresql://h:5432?sslmode=disable", "x"),
        "postgresql://h:5432/x?sslmode=disable"
    );
}
