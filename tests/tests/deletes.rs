//! Deletes from a full-refresh difference: records gone at the partner become tombstones after a
//! complete read, leave ListRecords, arrive on WatchChanges as deletions, and come back if the
//! partner has them again. An incremental read never deletes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::sync::v1::{RunState, TriggerFullRefreshRequest, WatchChangesRequest};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME, deleted_in,
};

const CONNECTION: &str = "bh-deletes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_tombstones_what_the_partner_deleted() -> anyhow::Result<()> {
    let cluster = Cluster::start(1, &[]).await?;
    let mesh = cluster.mesh("deletes-tenant", 0);
    mesh.connect_bullhorn(
        CONNECTION,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )
    .await?;
    let first = mesh.run_once(CONNECTION).await?;
    assert_eq!(first.state, RunState::Succeeded as i32, "{}", first.error);
    let before = mesh.canonical_records(CONNECTION, "candidate").await?.len();

    // Two candidates disappear at the partner.
    let gone: Vec<i64> = mesh.sandbox.records("Candidate").await?[..2]
        .iter()
        .map(|record| record["id"].as_i64().unwrap())
        .collect();
    mesh.sandbox.delete("Candidate", &gone).await?;

    // An incremental read cannot know about them and deletes nothing.
    let incremental = mesh.run_once(CONNECTION).await?;
    assert_eq!(deleted_in(&incremental, "Candidate"), 0);
    assert_eq!(
        mesh.canonical_records(CONNECTION, "candidate").await?.len(),
        before
    );

    // A complete read does.
    let mut sync = mesh.clients.sync(&mesh.sync_addr);
    let run_id = sync
        .trigger_full_refresh(TriggerFullRefreshRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;
    let refresh = mesh.wait_run(&run_id).await?;
    assert_eq!(
        refresh.state,
        RunState::Succeeded as i32,
        "{}",
        refresh.error
    );
    assert_eq!(deleted_in(&refresh, "Candidate"), 2, "{refresh:?}");
    assert_eq!(deleted_in(&refresh, "JobOrder"), 0);
    let after = mesh.canonical_records(CONNECTION, "candidate").await?;
    assert_eq!(after.len(), before - 2);
    for id in &gone {
        assert!(
            after
                .iter()
                .all(|record| record.external_id != id.to_string())
        );
    }
    mesh.assert_matches_sandbox(CONNECTION).await?;

    // The deletions are on the change feed, after the writes, with the record's last state.
    let mut changes = sync
        .watch_changes(WatchChangesRequest {
            after_position: 0,
            connection_id: CONNECTION.into(),
            entity: "candidate".into(),
        })
        .await?
        .into_inner();
    let mut deleted_ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while deleted_ids.len() < 2 {
        let change = tokio::time::timeout_at(deadline, changes.message())
            .await
            .map_err(|_| anyhow::anyhow!("deletions did not arrive on the change feed"))??
            .ok_or_else(|| anyhow::anyhow!("the change feed ended"))?;
        if change.deleted {
            assert!(
                change.record.is_some(),
                "a deletion carries the last known state"
            );
            deleted_ids.push(change.external_id);
        }
    }
    deleted_ids.sort();
    let mut expected: Vec<String> = gone.iter().map(i64::to_string).collect();
    expected.sort();
    assert_eq!(deleted_ids, expected);
    Ok(())
}
