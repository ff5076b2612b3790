//! Quarantined records resolved by a later import, on both backends: the page that imports the
//! record resolves its entries in its own transaction (with when and by which run); a record
//! that fails again stays listed; other tenants, connections and streams are untouched.
#![allow(clippy::unwrap_used)]

use plugboard_sync::quarantine::Listed;
use plugboard_sync::store::{PageCommit, QuarantineEntry, RunPart, Store, StoredRecord};
use plugboard_sync::two_way::PageReview;

mod stores;
use stores::{postgres, record, sqlite};

const TENANT: &str = "tenant-a";
const OTHER_TENANT: &str = "tenant-b";

fn rejected(run_id: &str, stream: &str, external_id: &str) -> QuarantineEntry {
    QuarantineEntry {
        id: uuid::Uuid::now_v7().to_string(),
        run_id: run_id.into(),
        stream: stream.into(),
        external_id: external_id.into(),
        payload_json: format!("{{\"id\":\"{external_id}\"}}"),
        reason: "email is not a string".into(),
        field_path: "email".into(),
        quarantined_at: plugboard_runtime::storage::now_text(),
    }
}

/// Commits one page of `stream` as run `run_id` would.
async fn commit(
    store: &Store,
    tenant: &str,
    stream: &str,
    run_id: &str,
    records: Vec<StoredRecord>,
    quarantined: Vec<QuarantineEntry>,
) -> Result<(), plugboard_sync::Error> {
    store
        .commit_run_page(
            PageCommit {
                tenant_id: tenant,
                connection_id: "c1",
                stream,
                records,
                quarantined,
                checkpoint: run_id,
            },
            &PageReview::default(),
            RunPart {
                fence: None,
                end: None,
                run_id: Some(run_id),
            },
        )
        .await
        .map(|_| ())
}

async fn listed(store: &Store, tenant: &str, include_resolved: bool) -> Vec<Listed> {
    store
        .quarantine()
        .list(tenant, "c1", "", 100, include_resolved)
        .await
        .unwrap()
}

/// (stream, external id, run that quarantined it) of each listed entry, in list order.
fn keys(entries: &[Listed]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|listed| {
            (
                listed.entry.stream.clone(),
                listed.entry.external_id.clone(),
                listed.entry.run_id.clone(),
            )
        })
        .collect()
}

fn key(stream: &str, external_id: &str, run_id: &str) -> (String, String, String) {
    (stream.into(), external_id.into(), run_id.into())
}

async fn exercise(store: Store) {
    // Run 1 imports 1 and quarantines 7 and 8; 7 of another stream and another tenant too.
    commit(
        &store,
        TENANT,
        "Candidate",
        "r1",
        vec![record("1", "h1")],
        vec![
            rejected("r1", "Candidate", "7"),
            rejected("r1", "Candidate", "8"),
        ],
    )
    .await
    .unwrap();
    commit(
        &store,
        TENANT,
        "JobOrder",
        "r1",
        vec![],
        vec![rejected("r1", "JobOrder", "7")],
    )
    .await
    .unwrap();
    commit(
        &store,
        OTHER_TENANT,
        "Candidate",
        "r1-b",
        vec![],
        vec![rejected("r1-b", "Candidate", "7")],
    )
    .await
    .unwrap();
    assert_eq!(listed(&store, TENANT, false).await.len(), 3);

    // Run 2 imports 7; 8 fails again and is quarantined again.
    commit(
        &store,
        TENANT,
        "Candidate",
        "r2",
        vec![record("1", "h1"), record("7", "h7")],
        vec![rejected("r2", "Candidate", "8")],
    )
    .await
    .unwrap();
    let unresolved = listed(&store, TENANT, false).await;
    assert_eq!(
        keys(&unresolved),
        [
            key("Candidate", "8", "r1"),
            key("JobOrder", "7", "r1"),
            key("Candidate", "8", "r2"),
        ],
        "7 of Candidate is resolved; 8 failed again and 7 of JobOrder is another stream's"
    );
    assert!(unresolved.iter().all(|listed| listed.resolution.is_none()));

    // Asked for every entry, the resolved one says when and by which run.
    let every = listed(&store, TENANT, true).await;
    assert_eq!(every.len(), 4);
    let resolved: Vec<&Listed> = every
        .iter()
        .filter(|listed| listed.resolution.is_some())
        .collect();
    assert_eq!(keys(&[resolved[0].clone()]), [key("Candidate", "7", "r1")]);
    let resolution = resolved[0].resolution.as_ref().unwrap();
    assert_eq!(resolution.run_id, "r2");
    assert!(
        resolution.resolved_at >= resolved[0].entry.quarantined_at,
        "{resolution:?}"
    );

    // The other tenant's entry with the same connection, stream and id is untouched.
    let other = listed(&store, OTHER_TENANT, true).await;
    assert_eq!(keys(&other), [key("Candidate", "7", "r1-b")]);
    assert_eq!(other[0].resolution, None);

    // A page whose commit fails resolves nothing: the resolution is in the page's transaction.
    let duplicate = rejected("r3", "Candidate", "9");
    commit(
        &store,
        TENANT,
        "Candidate",
        "r3",
        vec![],
        vec![duplicate.clone()],
    )
    .await
    .unwrap();
    let failed = commit(
        &store,
        TENANT,
        "Candidate",
        "r3",
        vec![record("8", "h8")],
        vec![duplicate],
    )
    .await;
    assert!(failed.is_err(), "a quarantine id used twice fails the page");
    let still = keys(&listed(&store, TENANT, false).await);
    assert!(still.contains(&key("Candidate", "8", "r1")), "{still:?}");
    assert!(still.contains(&key("Candidate", "8", "r2")), "{still:?}");

    // Once 8 imports, both of its entries are resolved by that run.
    commit(
        &store,
        TENANT,
        "Candidate",
        "r4",
        vec![record("8", "h8")],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        keys(&listed(&store, TENANT, false).await),
        [key("JobOrder", "7", "r1"), key("Candidate", "9", "r3")]
    );
    let by_r4 = listed(&store, TENANT, true)
        .await
        .into_iter()
        .filter(|listed| listed.resolution.as_ref().is_some_and(|r| r.run_id == "r4"))
        .count();
    assert_eq!(by_r4, 2);
}

#[tokio::test]
async fn quarantine_is_resolved_by_a_later_import_on_sqlite() {
    exercise(sqlite().await).await;
}

#[tokio::test]
async fn quarantine_is_resolved_by_a_later_import_on_postgres() {
    exercise(postgres().await).await;
}
