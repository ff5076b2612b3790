//! A new content hash scheme does not republish unchanged records: a record stored under the
//! old scheme (hex of the body's JSON) with the same content is unchanged, on both backends.

// Shared test helpers are not `#[test]` functions, so allow-unwrap-in-tests does not reach them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_sync::changes::WatchFilter;
use plugboard_sync::store::{PageCommit, PageOutcome, Store, StoredRecord, SyncDefinition};

mod stores;
use stores::{postgres, sqlite};

/// The JSON-era hash: 64 hex digits, no scheme.
const OLD_HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
const NEW_HASH: &str = "pb:0b14d501a594442a01c6859541bcb3e8164d183d32937b851835442f69d5c94e";
const NEW_HASH_CHANGED: &str =
    "pb:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";

fn candidate(hash: &str, first_name: &str, custom_fields_json: &str) -> StoredRecord {
    StoredRecord {
        entity: "candidate".into(),
        external_id: "7".into(),
        content_hash: hash.into(),
        body_json: format!("{{\"first_name\":\"{first_name}\",\"skills\":[\"rust\",\"sql\"]}}"),
        custom_fields_json: custom_fields_json.into(),
        raw_payload_json: "{\"id\":7}".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

async fn commit(store: &Store, record: StoredRecord, checkpoint: &str) -> PageOutcome {
    store
        .commit_page(PageCommit {
            tenant_id: "tenant-r",
            connection_id: "c1",
            stream: "Candidate",
            records: vec![record],
            quarantined: vec![],
            checkpoint,
        })
        .await
        .unwrap()
}

async fn stored_hash(store: &Store) -> String {
    let records = store
        .list_records("tenant-r", "c1", "candidate", "", 10)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    records[0].content_hash.clone()
}

async fn exercise(store: Store) {
    store
        .upsert_sync(&SyncDefinition {
            tenant_id: "tenant-r".into(),
            connection_id: "c1".into(),
            connector: "bullhorn".into(),
            settings_json: "{}".into(),
            streams: vec!["Candidate".into()],
            interval_seconds: 0,
            cron: String::new(),
            paused: false,
            last_sync_at: None,
            next_run_at: None,
            resumes_at: None,
        })
        .await
        .unwrap();
    let stored_before_upgrade = candidate(OLD_HASH, "Ada", r#"{"a":"1","b":"2"}"#);
    assert_eq!(commit(&store, stored_before_upgrade, "p1").await.written, 1);

    // After the upgrade the same content arrives under the new scheme, its custom fields in
    // another key order (they were written from a hash map): unchanged, and its stored hash
    // is now the new one.
    let same = candidate(NEW_HASH, "Ada", r#"{"b":"2","a":"1"}"#);
    let outcome = commit(&store, same.clone(), "p2").await;
    assert_eq!((outcome.written, outcome.unchanged), (0, 1));
    assert_eq!(stored_hash(&store).await, NEW_HASH);
    let outcome = commit(&store, same, "p3").await;
    assert_eq!((outcome.written, outcome.unchanged), (0, 1));

    // A mapping replica still on the old version during the upgrade: unchanged too.
    let old_again = candidate(OLD_HASH, "Ada", r#"{"a":"1","b":"2"}"#);
    assert_eq!(commit(&store, old_again, "p4").await.written, 0);
    assert_eq!(stored_hash(&store).await, OLD_HASH);

    // Changed content under another scheme is a change.
    let changed = candidate(NEW_HASH_CHANGED, "Grace", r#"{"a":"1","b":"2"}"#);
    assert_eq!(commit(&store, changed, "p5").await.written, 1);
    assert_eq!(stored_hash(&store).await, NEW_HASH_CHANGED);

    // The log holds the first write and the change only.
    let mut feed = store
        .change_feed()
        .watch("tenant-r".into(), WatchFilter::default());
    let mut positions = Vec::new();
    while let Ok(Some(change)) =
        tokio::time::timeout(Duration::from_millis(1500), feed.recv()).await
    {
        let change = change.unwrap();
        let hash = change.record.map(|record| record.content_hash);
        positions.push((change.position, hash));
    }
    assert_eq!(
        positions,
        vec![
            (1, Some(NEW_HASH_CHANGED.into())),
            (2, Some(NEW_HASH_CHANGED.into()))
        ]
    );
}

#[tokio::test]
async fn old_scheme_records_are_not_republished_on_sqlite() {
    exercise(sqlite().await).await;
}

#[tokio::test]
async fn old_scheme_records_are_not_republished_on_postgres() {
    exercise(postgres().await).await;
}
