//! The file store on both kinds of object store: a folder (`file://`) and an
//! S3 bucket served by a `moto` server started on a free loopback port
//! (`.venv/bin/moto_server`, from tests/e2e/requirements.txt; another with
//! `AGENTD_TEST_MOTO_SERVER`). Without moto the bucket half is skipped with
//! a message, unless `AGENTD_REQUIRE_MOTO=1` makes that a failure.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agentd::file_sweep;
use agentd::files::{FileError, FileStore, Objects};
use agentd_domain::{FileId, Upload};
use agentd_net::AddressPolicy;

const PNG: [u8; 12] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];
const BUCKET: &str = "agentd-test";

/// A moto S3 server, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts one, or `None` (with a message) when moto is not installed
    /// and not required.
    fn start() -> Option<Self> {
        let program = std::env::var("AGENTD_TEST_MOTO_SERVER").map_or_else(
            |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server"),
            PathBuf::from,
        );
        if !program.exists() {
            let required = std::env::var("AGENTD_REQUIRE_MOTO").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "AGENTD_REQUIRE_MOTO=1 but {} is missing",
                program.display()
            );
            eprintln!(
                "SKIPPING the S3 half of this test: {} is missing (install \
                 tests/e2e/requirements.txt, or set AGENTD_TEST_MOTO_SERVER)",
                program.display()
            );
            return None;
        }
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting moto_server");
        // Werkzeug names the bound port on stderr once it listens.
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("moto_server exited before listening")
                .expect("reading moto_server's output");
            if let Some(at) = line.find("Running on http://") {
                break line[at + "Running on ".len()..].trim().to_owned();
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Some(Self { child, endpoint })
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    async fn create_bucket(&self) {
        let response = reqwest::Client::new()
            .put(format!("{}/{BUCKET}", self.endpoint))
            .send()
            .await
            .expect("creating the bucket");
        assert!(response.status().is_success(), "{response:?}");
    }

    /// Every key in the bucket.
    async fn keys(&self) -> Vec<String> {
        let body = reqwest::get(format!("{}/{BUCKET}?list-type=2", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("agentd-file-store-{}", FileId::new()))
}

fn file_store(objects: Objects) -> FileStore {
    FileStore::new(objects, 1024, AddressPolicy::default()).unwrap()
}

fn png_upload() -> Upload {
    Upload {
        file_name: "p.png".into(),
        content_type: None,
        bytes: PNG.to_vec(),
    }
}

/// Waits for a condition that a background task makes true.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What both stores must do, checked through `listed`, which names the
/// stored file ids.
async fn behaves_as_a_file_store<L, Fut>(store: &FileStore, listed: L)
where
    L: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    // Kept: stays, readable, hashed.
    let kept = store.stage_upload(png_upload(), "image/png").await.unwrap();
    let file = kept.file().clone();
    kept.keep();
    assert_eq!(file.size, PNG.len() as u64);
    assert_eq!(file.content_type, "image/png");
    assert_eq!(store.read(file.id).await.unwrap(), PNG);
    assert_eq!(listed().await, vec![file.id.to_string()]);

    // Dropped before its row committed: removed.
    let dropped = store
        .stage_bytes("r.json".into(), "application/json".into(), b"{}")
        .await
        .unwrap();
    let dropped_id = dropped.file().id;
    assert!(listed().await.contains(&dropped_id.to_string()));
    drop(dropped);
    eventually("the dropped file is removed", || async {
        listed().await == vec![file.id.to_string()]
    })
    .await;

    // Refused content writes nothing.
    let refused = store
        .stage_upload(
            Upload {
                bytes: b"text".to_vec(),
                ..png_upload()
            },
            "image/png",
        )
        .await;
    assert!(matches!(refused, Err(FileError::Rejected(_))));
    assert_eq!(listed().await, vec![file.id.to_string()]);

    // Deleted: gone, reading says so, deleting again is no error.
    store.delete(file.id).await.unwrap();
    assert!(listed().await.is_empty());
    assert!(matches!(
        store.read(file.id).await,
        Err(FileError::Missing(id)) if id == file.id
    ));
    store.delete(file.id).await.unwrap();
}

/// The sweep removes bytes no record refers to, once past the grace period.
async fn sweeps_unrecorded_bytes(store: &FileStore) {
    let orphan = store
        .stage_bytes("o.txt".into(), "text/plain".into(), b"orphan")
        .await
        .unwrap();
    let id = orphan.file().id;
    orphan.keep();
    let database = temp_dir();
    std::fs::create_dir_all(&database).unwrap();
    let url = format!("sqlite://{}/agentd.db?mode=rwc", database.display());
    let storage = agentd_storage::connect(&url).await.unwrap();
    let young = file_sweep::sweep(storage.as_ref(), store, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(young.orphan_bytes, 0, "younger than the grace period");
    assert_eq!(store.read(id).await.unwrap(), b"orphan");
    // Object times have a resolution of a second in some stores.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = file_sweep::sweep(storage.as_ref(), store, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.orphan_bytes, 1);
    assert!(matches!(store.read(id).await, Err(FileError::Missing(_))));
    drop(storage);
    let _ = std::fs::remove_dir_all(database);
}

#[tokio::test]
async fn a_folder_is_a_file_store() {
    let dir = temp_dir();
    let store = file_store(Objects::open(None, &dir).unwrap());
    let listed = || {
        let dir = dir.clone();
        async move {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    };
    behaves_as_a_file_store(&store, listed).await;
    sweeps_unrecorded_bytes(&store).await;
    // The same folder named by URL.
    let url = format!("file://{}", dir.display());
    let by_url = file_store(Objects::open(Some(&url), &temp_dir()).unwrap());
    let kept = by_url
        .stage_upload(png_upload(), "image/png")
        .await
        .unwrap();
    assert!(dir.join(kept.file().id.to_string()).exists());
    drop(kept);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_s3_bucket_is_a_file_store() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket().await;
    let url = format!("s3://{BUCKET}/files");
    let objects = Objects::open_with_env(Some(&url), &temp_dir(), moto.env()).unwrap();
    assert!(objects.is_remote());
    let store = Arc::new(file_store(objects));
    let listed = || {
        let moto = &moto;
        async move {
            moto.keys()
                .await
                .into_iter()
                .map(|key| {
                    key.strip_prefix("files/")
                        .expect("every object under the prefix")
                        .to_owned()
                })
                .collect()
        }
    };
    behaves_as_a_file_store(&store, listed).await;
    sweeps_unrecorded_bytes(&store).await;
    // Objects outside the prefix are not agentd's: the sweep leaves them.
    reqwest::Client::new()
        .put(format!(
            "{}/{BUCKET}/other/{}",
            moto.endpoint,
            FileId::new()
        ))
        .body("theirs")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let sweep_db = temp_dir();
    std::fs::create_dir_all(&sweep_db).unwrap();
    let storage = agentd_storage::connect(&format!(
        "sqlite://{}/agentd.db?mode=rwc",
        sweep_db.display()
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = file_sweep::sweep(storage.as_ref(), &store, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.orphan_bytes, 0);
    assert_eq!(moto.keys().await.len(), 1);
    let _ = std::fs::remove_dir_all(sweep_db);
}

#[tokio::test]
async fn an_unreachable_bucket_is_unavailable_not_a_crash() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let objects = Objects::open_with_env(Some("s3://nowhere/x"), &temp_dir(), env).unwrap();
    let store = file_store(objects);
    let upload = store.stage_upload(png_upload(), "image/png").await;
    assert!(
        matches!(upload, Err(FileError::Unavailable(_))),
        "{upload:?}"
    );
    assert!(matches!(
        store.read(FileId::new()).await,
        Err(FileError::Unavailable(_))
    ));
}
