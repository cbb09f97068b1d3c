//! The folder store's own layout: what it writes and what the sweep sees.
//! The behaviour both stores share is tested in `tests/file_store.rs`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;

const PNG: [u8; 12] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0];

struct TempStore {
    dir: PathBuf,
    store: FileStore,
}

impl TempStore {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("agentd-files-test-{}", FileId::new()));
        let objects = Objects::open(None, &dir.join("files")).unwrap();
        let store = FileStore::new(objects, 1024, AddressPolicy::default()).unwrap();
        Self { dir, store }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("files"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_file_is_stored_as_its_id_in_the_folder() {
    let t = TempStore::new();
    let upload = Upload {
        file_name: "p.png".into(),
        content_type: None,
        bytes: PNG.to_vec(),
    };
    let staged = t.store.stage_upload(upload, "image/png").await.unwrap();
    let id = staged.file().id;
    assert_eq!(t.names(), vec![id.to_string()]);
    staged.keep();
    assert_eq!(
        std::fs::read(t.dir.join("files").join(id.to_string())).unwrap(),
        PNG
    );
    // Dropping an unkept file removes it before `drop` returns.
    let dropped = t
        .store
        .stage_bytes("r.json".into(), "application/json".into(), b"{}")
        .await
        .unwrap();
    drop(dropped);
    assert_eq!(t.names(), vec![id.to_string()]);
}

#[tokio::test]
async fn the_folder_lists_stored_staging_and_legacy_partial_files_only() {
    let t = TempStore::new();
    let root = t.dir.join("files");
    let stored = FileId::new();
    let legacy_partial = format!("{}.part", FileId::new());
    let staging = format!("{}#3", FileId::new());
    for name in [
        stored.to_string(),
        legacy_partial.clone(),
        staging.clone(),
        "notes.txt".into(),
        format!("{}#x", FileId::new()),
    ] {
        std::fs::write(root.join(name), b"x").unwrap();
    }
    let future = SystemTime::now() + Duration::from_secs(60);
    let mut entries = t.store.entries_older_than(future).await.unwrap();
    entries.sort_by_key(|entry| format!("{entry:?}"));
    let mut expected = vec![
        Entry::Stored(stored),
        Entry::Partial(legacy_partial.clone()),
        Entry::Partial(staging.clone()),
    ];
    expected.sort_by_key(|entry| format!("{entry:?}"));
    assert_eq!(entries, expected);
    let past = SystemTime::now() - Duration::from_secs(60);
    assert!(t.store.entries_older_than(past).await.unwrap().is_empty());

    for name in [&legacy_partial, &staging] {
        t.store.remove_partial(name).await.unwrap();
    }
    assert!(!root.join(&legacy_partial).exists());
    assert!(!root.join(&staging).exists());
}

#[test]
fn a_folder_that_cannot_be_created_is_named() {
    let file = std::env::temp_dir().join(format!("agentd-not-a-folder-{}", FileId::new()));
    std::fs::write(&file, b"x").unwrap();
    let error = Objects::open(None, &file.join("files"))
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&file).unwrap();
    assert!(error.contains(&file.display().to_string()), "{error}");
}

#[test]
fn only_file_and_s3_urls_are_taken() {
    let folder = std::env::temp_dir();
    for url in [
        "http://example.com/x",
        "gs://bucket/x",
        "not a url",
        "s3:///x",
    ] {
        let error = Objects::open(Some(url), &folder).unwrap_err().to_string();
        assert!(
            error.contains("file:///path or s3://bucket/prefix"),
            "{url}: {error}"
        );
    }
}
