//! The record store on both backends: atomic pages, hash-skipped rewrites, tenant scoping.

// Shared test helpers are not `#[test]` functions, so allow-unwrap-in-tests does not reach them.
#![allow(clippy::unwrap_used)]

use plugboard_sync::store::{
    PageCommit, QuarantineEntry, RunRecord, RunState, Store, StoredRecord, SyncDefinition,
};

mod stores;
use stores::{postgres, record, sqlite};

fn sync(tenant: &str) -> SyncDefinition {
    SyncDefinition {
        tenant_id: tenant.into(),
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
    }
}

async fn exercise(store: Store) {
    store.upsert_sync(&sync("tenant-a")).await.unwrap();
    store.upsert_sync(&sync("tenant-b")).await.unwrap();

    let first = store
        .commit_page(PageCommit {
            tenant_id: "tenant-a",
            connection_id: "c1",
            stream: "Candidate",
            records: vec![record("1", "h1"), record("2", "h2")],
            quarantined: vec![QuarantineEntry {
                id: uuid::Uuid::now_v7().to_string(),
                run_id: "r1".into(),
                stream: "Candidate".into(),
                external_id: "3".into(),
                payload_json: "{\"id\":3}".into(),
                reason: "email is not a string".into(),
                field_path: "email".into(),
                quarantined_at: "2026-01-01T00:00:00.000Z".into(),
            }],
            checkpoint: "{\"start\":2}",
        })
        .await
        .unwrap();
    assert_eq!((first.written, first.unchanged), (2, 0));

    // The same content again is not rewritten; changed content is.
    let second = store
        .commit_page(PageCommit {
            tenant_id: "tenant-a",
            connection_id: "c1",
            stream: "Candidate",
            records: vec![record("1", "h1"), record("2", "h2-changed")],
            quarantined: vec![],
            checkpoint: "{\"start\":4}",
        })
        .await
        .unwrap();
    assert_eq!((second.written, second.unchanged), (1, 1));

    let checkpoint = store
        .load_checkpoint("tenant-a", "c1", "Candidate")
        .await
        .unwrap();
    assert_eq!(checkpoint.as_deref(), Some("{\"start\":4}"));

    // Tenant B shares the connection id and sees none of tenant A's data.
    assert_eq!(
        store
            .count_records("tenant-b", "c1", "candidate")
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .quarantine()
            .list("tenant-b", "c1", "", 10, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .load_checkpoint("tenant-b", "c1", "Candidate")
            .await
            .unwrap(),
        None
    );

    // A run left "running" by a process that died is marked failed by the next lease holder.
    let abandoned = plugboard_sync::store::RunRecord {
        run_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: "tenant-a".into(),
        connection_id: "c1".into(),
        state: plugboard_sync::store::RunState::Running,
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: None,
        error: None,
        streams: vec![],
    };
    store.insert_run(&abandoned).await.unwrap();
    assert_eq!(
        store.fail_abandoned_runs("tenant-b", "c1").await.unwrap(),
        0
    );
    assert_eq!(
        store.fail_abandoned_runs("tenant-a", "c1").await.unwrap(),
        1
    );
    let marked = store
        .get_run("tenant-a", &abandoned.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marked.state, plugboard_sync::store::RunState::Failed);
    assert!(marked.error.unwrap_or_default().starts_with("interrupted"));

    let listed = store
        .list_records("tenant-a", "c1", "candidate", "", 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].content_hash, "h2-changed");
    let quarantined = store
        .quarantine()
        .list("tenant-a", "c1", "", 10, false)
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].entry.field_path, "email");
    assert_eq!(quarantined[0].resolution, None);

    runs_and_pauses(&store).await;
}

fn run(tenant: &str, run_id: &str, started_at: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        tenant_id: tenant.into(),
        connection_id: "c1".into(),
        state: RunState::Succeeded,
        started_at: started_at.into(),
        finished_at: Some(started_at.into()),
        error: None,
        streams: vec![],
    }
}

/// Recent runs come newest first and only the tenant's; pausing touches only the tenant's sync.
async fn runs_and_pauses(store: &Store) {
    for (id, at) in [
        ("r-old", "2026-01-01T00:00:00.000Z"),
        ("r-new", "2026-01-03T00:00:00.000Z"),
        ("r-mid", "2026-01-02T00:00:00.000Z"),
    ] {
        store.insert_run(&run("tenant-a", id, at)).await.unwrap();
    }
    store
        .insert_run(&run("tenant-b", "r-b", "2026-01-04T00:00:00.000Z"))
        .await
        .unwrap();
    let runs = store.list_runs("tenant-a", "c1", 2).await.unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r-new", "r-mid"]);

    assert!(store.set_paused("tenant-a", "c1", true).await.unwrap());
    assert!(!store.set_paused("tenant-c", "c1", true).await.unwrap());
    let a = store.get_sync("tenant-a", "c1").await.unwrap().unwrap();
    let b = store.get_sync("tenant-b", "c1").await.unwrap().unwrap();
    assert!(a.paused);
    assert!(!b.paused);
    assert!(store.set_paused("tenant-a", "c1", false).await.unwrap());
    assert!(
        !store
            .get_sync("tenant-a", "c1")
            .await
            .unwrap()
            .unwrap()
            .paused
    );
}

#[tokio::test]
async fn record_store_on_sqlite() {
    exercise(sqlite().await).await;
}

#[tokio::test]
async fn record_store_on_postgres() {
    exercise(postgres().await).await;
}

async fn next_change(
    receiver: &mut tokio::sync::mpsc::Receiver<
        Result<plugboard_proto::sync::v1::WatchChangesResponse, tonic::Status>,
    >,
) -> plugboard_proto::sync::v1::WatchChangesResponse {
    tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
        .await
        .expect("a change within 5 s")
        .expect("the feed stays open")
        .expect("the feed reads the log")
}

/// Written records appear on the feed in commit order, numbered per tenant; a watcher that
/// resumes from a position sees only what came after; unchanged records are not changes.
async fn exercise_changes(store: Store) {
    use plugboard_sync::changes::WatchFilter;

    store.upsert_sync(&sync("tenant-c")).await.unwrap();
    let commit = |records: Vec<StoredRecord>, checkpoint: &'static str| {
        let store = store.clone();
        async move {
            store
                .commit_page(PageCommit {
                    tenant_id: "tenant-c",
                    connection_id: "c1",
                    stream: "Candidate",
                    records,
                    quarantined: vec![],
                    checkpoint,
                })
                .await
                .unwrap()
        }
    };
    commit(vec![record("1", "h1"), record("2", "h2")], "p1").await;
    // Unchanged content is not a change; changed content is.
    commit(vec![record("1", "h1"), record("2", "h2b")], "p2").await;

    let feed = store.change_feed();
    let mut all = feed.watch("tenant-c".into(), WatchFilter::default());
    let seen: Vec<(u64, String)> = [
        next_change(&mut all).await,
        next_change(&mut all).await,
        next_change(&mut all).await,
    ]
    .into_iter()
    .map(|change| (change.position, change.external_id))
    .collect();
    assert_eq!(
        seen,
        vec![(1, "1".into()), (2, "2".into()), (3, "2".into())]
    );

    // Resuming after position 2 starts at 3, and a commit made while watching arrives live.
    let mut resumed = feed.watch(
        "tenant-c".into(),
        WatchFilter {
            after_position: 2,
            ..WatchFilter::default()
        },
    );
    let third = next_change(&mut resumed).await;
    assert_eq!((third.position, third.external_id.as_str()), (3, "2"));
    let record_body = third.record.expect("the record travels with its change");
    assert_eq!(record_body.content_hash, "h2b");
    commit(vec![record("3", "h3")], "p3").await;
    let live = next_change(&mut resumed).await;
    assert_eq!((live.position, live.external_id.as_str()), (4, "3"));

    // Another tenant sees none of it.
    let mut other = feed.watch("tenant-d".into(), WatchFilter::default());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1500), other.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn change_feed_on_sqlite() {
    exercise_changes(sqlite().await).await;
}

#[tokio::test]
async fn change_feed_on_postgres() {
    exercise_changes(postgres().await).await;
}
