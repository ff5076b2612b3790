//! What a quota-paused complete read leaves for the run that resumes it, on both backends: the
//! ids it saw while the checkpoint is still its own, a read from the start for streams a full
//! refresh had not reached, nothing once the checkpoint moved on, and nothing after `forget`.
//! tests/tests/quota.rs runs the pause and the resumption across the mesh.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use plugboard_sync::paused_read::{forget, resume, save};
use plugboard_sync::store::{PageCommit, Store};

mod stores;
use stores::{postgres, sqlite};

async fn commit_checkpoint(store: &Store, tenant_id: &str, stream: &str, checkpoint: &str) {
    store
        .commit_page(PageCommit {
            tenant_id,
            connection_id: "c1",
            stream,
            records: vec![],
            quarantined: vec![],
            checkpoint,
        })
        .await
        .unwrap();
}

async fn exercise(store: Store) {
    // Nothing saved: an incremental read from the checkpoint, complete only from none.
    let fresh = resume(&store, "t1", "c1", "Candidate").await.unwrap();
    assert!(fresh.complete && fresh.checkpoint.is_empty() && fresh.seen.is_empty());
    commit_checkpoint(&store, "t1", "Candidate", "{\"start\":20}").await;
    let incremental = resume(&store, "t1", "c1", "Candidate").await.unwrap();
    assert!(!incremental.complete);
    assert_eq!(incremental.checkpoint, "{\"start\":20}");

    // Paused at the stored checkpoint with what it saw; JobOrder not reached yet.
    let seen: HashSet<String> = ["1", "2", "3"].into_iter().map(String::from).collect();
    commit_checkpoint(&store, "t1", "JobOrder", "{\"since\":\"2026-01-01\"}").await;
    save(
        &store,
        "t1",
        "c1",
        Some(("Candidate", "{\"start\":20}", &seen)),
        &["JobOrder"],
    )
    .await
    .unwrap();
    let resumed = resume(&store, "t1", "c1", "Candidate").await.unwrap();
    assert!(resumed.complete);
    assert_eq!(resumed.checkpoint, "{\"start\":20}");
    assert_eq!(resumed.seen, seen);
    let unreached = resume(&store, "t1", "c1", "JobOrder").await.unwrap();
    assert!(
        unreached.complete,
        "an unreached stream reads from the start"
    );
    assert!(unreached.checkpoint.is_empty() && unreached.seen.is_empty());

    // Another tenant's identical connection id sees none of it.
    let other = resume(&store, "t2", "c1", "Candidate").await.unwrap();
    assert!(other.complete && other.seen.is_empty());

    // Saved again after more pages: the later state replaces the earlier.
    let more: HashSet<String> = ["1", "2", "3", "4"].into_iter().map(String::from).collect();
    commit_checkpoint(&store, "t1", "Candidate", "{\"start\":40}").await;
    save(
        &store,
        "t1",
        "c1",
        Some(("Candidate", "{\"start\":40}", &more)),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        resume(&store, "t1", "c1", "Candidate").await.unwrap().seen,
        more
    );

    // A run that moved the checkpoint without the state leaves it stale: ignored, so the
    // read is incremental and deletes nothing.
    commit_checkpoint(&store, "t1", "Candidate", "{\"start\":60}").await;
    let stale = resume(&store, "t1", "c1", "Candidate").await.unwrap();
    assert!(!stale.complete && stale.seen.is_empty());
    assert_eq!(stale.checkpoint, "{\"start\":60}");

    // A read that ended drops its state.
    forget(&store, "t1", "c1", "JobOrder").await.unwrap();
    let after = resume(&store, "t1", "c1", "JobOrder").await.unwrap();
    assert!(!after.complete);
    assert_eq!(after.checkpoint, "{\"since\":\"2026-01-01\"}");
}

#[tokio::test]
async fn a_paused_complete_read_resumes_as_one_on_sqlite() {
    exercise(sqlite().await).await;
}

#[tokio::test]
async fn a_paused_complete_read_resumes_as_one_on_postgres() {
    exercise(postgres().await).await;
}
