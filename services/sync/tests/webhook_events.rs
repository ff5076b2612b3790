//! The webhook event log and tombstones on both backends: a repeated event id is dropped
//! durably and per tenant, the newest known time of a record comes from its stored payload and
//! the events that changed it, tombstones reach the change feed once, pending reads are found
//! and marked.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_sync::events::store::{
    Outcome, StoredEvent, mark_read, newest_known, parse_time, pending_reads, record_event,
    tombstone,
};
use plugboard_sync::store::{PageCommit, Store, StoredRecord, SyncDefinition};

mod stores;
use stores::{postgres, sqlite};

fn event(id: &str, occurred_at: &str) -> StoredEvent {
    StoredEvent {
        event_id: id.into(),
        event_type: "update_candidate".into(),
        entity: "candidate".into(),
        external_id: "7".into(),
        stream: "candidates".into(),
        occurred_at: occurred_at.into(),
        deleted: false,
        received_at: "2026-03-01T10:00:00.000Z".into(),
    }
}

async fn exercise(store: Store) {
    for tenant in ["tenant-a", "tenant-b"] {
        store
            .upsert_sync(&SyncDefinition {
                tenant_id: tenant.into(),
                connection_id: "gh".into(),
                connector: "greenhouse".into(),
                settings_json: "{}".into(),
                streams: Vec::new(),
                interval_seconds: 0,
                cron: String::new(),
                paused: false,
                last_sync_at: None,
                next_run_at: None,
                resumes_at: None,
            })
            .await
            .unwrap();
    }
    store
        .commit_page(PageCommit {
            tenant_id: "tenant-a",
            connection_id: "gh",
            stream: "candidates",
            records: vec![StoredRecord {
                entity: "candidate".into(),
                external_id: "7".into(),
                content_hash: "h7".into(),
                body_json: "{}".into(),
                custom_fields_json: "{}".into(),
                raw_payload_json: r#"{"id":7,"updated_at":"2026-03-01T09:00:00+01:00"}"#.into(),
                updated_at: "2026-03-01T10:00:00.000Z".into(),
            }],
            quarantined: Vec::new(),
            checkpoint: "{}",
        })
        .await
        .unwrap();

    // Dropped the second time, durably; another tenant's identical id is its own.
    let first = event("e1", "2026-03-01T08:30:00.000Z");
    assert!(
        record_event(&store, "tenant-a", "gh", &first, Outcome::ReadPending)
            .await
            .unwrap()
    );
    assert!(
        !record_event(&store, "tenant-a", "gh", &first, Outcome::ReadPending)
            .await
            .unwrap()
    );
    assert!(
        record_event(&store, "tenant-b", "gh", &first, Outcome::Ignored)
            .await
            .unwrap()
    );

    // The stored payload says 08:00 UTC; the applied event is older and does not count more.
    let known = newest_known(&store, "tenant-a", "gh", "candidate", "7", "updated_at")
        .await
        .unwrap();
    assert_eq!(known, parse_time("2026-03-01T08:30:00Z"));
    let later = event("e2", "2026-03-01T11:00:00.000Z");
    record_event(&store, "tenant-a", "gh", &later, Outcome::ReadPending)
        .await
        .unwrap();
    let ignored = event("e3", "2026-03-02T00:00:00.000Z");
    record_event(&store, "tenant-a", "gh", &ignored, Outcome::Ignored)
        .await
        .unwrap();
    let known = newest_known(&store, "tenant-a", "gh", "candidate", "7", "updated_at")
        .await
        .unwrap();
    assert_eq!(known, parse_time("2026-03-01T11:00:00Z"));
    // Without events the payload's time is what the store knows.
    let payload_only = newest_known(&store, "tenant-b", "gh", "candidate", "7", "updated_at")
        .await
        .unwrap();
    assert_eq!(payload_only, None, "tenant-b holds no record 7");

    // Pending reads are listed per stream and marked by the run that covers them.
    let pending = pending_reads(&store, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].tenant_id, "tenant-a");
    assert_eq!(pending[0].stream, "candidates");
    let marked = mark_read(&store, &pending[0], "2026-03-01T10:00:00.000Z", "run-1")
        .await
        .unwrap();
    assert_eq!(marked, 2);
    assert!(pending_reads(&store, 10).await.unwrap().is_empty());

    // A tombstone is written once, reaches the feed, and leaves ListRecords.
    let gone = tombstone(
        &store,
        "tenant-a",
        "gh",
        "candidate",
        &["7".into(), "7".into(), "404".into()],
    )
    .await
    .unwrap();
    assert_eq!(gone, vec!["7".to_owned()]);
    let again = tombstone(&store, "tenant-a", "gh", "candidate", &["7".into()])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        store
            .count_records("tenant-a", "gh", "candidate")
            .await
            .unwrap(),
        0
    );
    let mut feed = store.change_feed().watch(
        "tenant-a".into(),
        plugboard_sync::changes::WatchFilter::default(),
    );
    let mut deletions = 0;
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(500), feed.recv()).await
    {
        let change = change.unwrap();
        if change.deleted {
            assert_eq!(change.external_id, "7");
            deletions += 1;
        }
    }
    assert_eq!(deletions, 1);
}

#[tokio::test]
async fn webhook_events_on_sqlite() {
    exercise(sqlite().await).await;
}

#[tokio::test]
async fn webhook_events_on_postgres() {
    exercise(postgres().await).await;
}
