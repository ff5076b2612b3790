//! A partner's daily quota used up mid-backfill, across two sync replicas: the run pauses with
//! its checkpoint, says when it resumes (ListSyncs, the run's error, health's status), and a
//! scheduler resumes it after the reset from where it stopped, not from the start; a paused
//! full refresh is still a complete read when it resumes, and tombstones what the partner
//! deleted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::health::v1::{GetStatusRequest, IntegrationStatus};
use plugboard_proto::sync::v1::{
    ListRunsRequest, ListSyncsRequest, RunInfo, RunState, SyncInfo, TriggerFullRefreshRequest,
};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    Mesh, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME, STREAMS,
    deleted_in,
};
use serde_json::json;

const CONNECTION: &str = "bh-quota";

async fn sync_info(mesh: &Mesh) -> anyhow::Result<SyncInfo> {
    mesh.clients
        .sync(&mesh.sync_addr)
        .list_syncs(ListSyncsRequest::default())
        .await?
        .into_inner()
        .syncs
        .into_iter()
        .find(|sync| sync.connection_id == CONNECTION)
        .ok_or_else(|| anyhow::anyhow!("no sync {CONNECTION}"))
}

async fn runs(mesh: &Mesh) -> anyhow::Result<Vec<RunInfo>> {
    Ok(mesh
        .clients
        .sync(&mesh.sync_addr)
        .list_runs(ListRunsRequest {
            connection_id: CONNECTION.into(),
            limit: 10,
        })
        .await?
        .into_inner()
        .runs)
}

/// The run the scheduler starts after `paused`, once it has finished (within a minute).
async fn resumed_after(mesh: &Mesh, paused: &RunInfo) -> anyhow::Result<RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let latest = runs(mesh).await?;
        if let Some(run) = latest
            .iter()
            .find(|run| run.run_id != paused.run_id && run.started_at >= paused.started_at)
            && run.state != RunState::Running as i32
        {
            return Ok(run.clone());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no run resumed: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_pauses_the_run_until_the_reset_then_it_resumes() -> anyhow::Result<()> {
    let cluster = Cluster::start(
        2,
        &[
            // A 429 longer than this is a quota, not a rate limit to wait out.
            ("PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS", "2"),
            ("PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS", "1"),
            ("PLUGBOARD_SYNC_PAGE_SIZE", "10"),
        ],
    )
    .await?;
    let first = cluster.mesh("quota-tenant", 0);
    let second = cluster.mesh("quota-tenant", 1);
    first
        .connect_bullhorn(
            CONNECTION,
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            SANDBOX_USERNAME,
            SANDBOX_PASSWORD,
        )
        .await?;
    // Six requests a "day", the day lasting 10 seconds: the backfill needs dozens.
    first
        .sandbox
        .faults(json!({ "daily_quota": 6, "quota_reset_seconds": 10 }))
        .await?;
    let paused = first.run_once(CONNECTION).await?;
    assert_eq!(paused.state, RunState::Paused as i32, "{paused:?}");
    assert!(paused.error.contains("quota"), "{}", paused.error);
    let read_before: u64 = paused.streams.iter().map(|s| s.records_read).sum();
    assert!(
        read_before > 0,
        "pages before the quota ran out are committed: {paused:?}"
    );

    // When it resumes is on the sync, in the run's error, and in health's status.
    let info = sync_info(&second).await?;
    assert!(!info.resumes_at.is_empty(), "{info:?}");
    assert!(paused.error.contains(&info.resumes_at), "{}", paused.error);
    let health = first
        .clients
        .health(&cluster.health.addr)
        .get_status(GetStatusRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .integrations
        .remove(0);
    assert_eq!(health.status(), IntegrationStatus::Degraded, "{health:?}");
    assert!(health.reason.contains("quota"), "{}", health.reason);
    assert!(
        health.reason.contains(&info.resumes_at),
        "{}",
        health.reason
    );

    // The partner lifts the quota; sync does not know and waits for the reset it was told.
    first.sandbox.faults(json!({ "daily_quota": 0 })).await?;
    let resumes_at = chrono::DateTime::parse_from_rfc3339(&info.resumes_at)?;
    let resumed = resumed_after(&second, &paused).await?;
    assert_eq!(
        resumed.state,
        RunState::Succeeded as i32,
        "{}",
        resumed.error
    );
    let started = chrono::DateTime::parse_from_rfc3339(&resumed.started_at)?;
    assert!(
        started >= resumes_at,
        "resumed at {started}, before the reset {resumes_at}"
    );

    // From the checkpoints the paused run committed, not from the start.
    for paused_stream in paused.streams.iter().filter(|stream| stream.pages > 0) {
        let partner_total = first.sandbox.records(&paused_stream.stream).await?.len() as u64;
        let read_again = resumed
            .streams
            .iter()
            .filter(|stream| stream.stream == paused_stream.stream)
            .map(|stream| stream.records_read)
            .sum::<u64>();
        assert!(
            read_again < partner_total,
            "the resumed run read {read_again} of {partner_total} {} records again",
            paused_stream.stream
        );
    }
    assert!(sync_info(&first).await?.resumes_at.is_empty());
    first.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_refresh_paused_by_the_quota_still_tombstones_when_it_resumes() -> anyhow::Result<()>
{
    let cluster = Cluster::start(
        1,
        &[
            ("PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS", "2"),
            ("PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS", "1"),
            ("PLUGBOARD_SYNC_PAGE_SIZE", "10"),
        ],
    )
    .await?;
    let mesh = cluster.mesh("quota-refresh-tenant", 0);
    mesh.connect_bullhorn(
        CONNECTION,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )
    .await?;
    let backfill = mesh.run_once(CONNECTION).await?;
    assert_eq!(
        backfill.state,
        RunState::Succeeded as i32,
        "{}",
        backfill.error
    );

    // One record of each of the later streams disappears at the partner: only a complete read
    // can tell.
    let mut gone = Vec::new();
    for (stream, entity) in &STREAMS[1..] {
        let id = mesh.sandbox.records(stream).await?[0]["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("a {stream} without an id"))?;
        mesh.sandbox.delete(stream, &[id]).await?;
        gone.push((*stream, *entity, id.to_string()));
    }

    // The full refresh runs out of quota after a few pages, before it reaches most streams.
    mesh.sandbox
        .faults(json!({ "daily_quota": 6, "quota_reset_seconds": 10 }))
        .await?;
    let run_id = mesh
        .clients
        .sync(&mesh.sync_addr)
        .trigger_full_refresh(TriggerFullRefreshRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;
    let paused = mesh.wait_run(&run_id).await?;
    assert_eq!(paused.state, RunState::Paused as i32, "{paused:?}");
    mesh.sandbox.faults(json!({ "daily_quota": 0 })).await?;

    // Resumed after the reset by the scheduler, it is still the complete read it began as.
    let resumed = resumed_after(&mesh, &paused).await?;
    assert_eq!(
        resumed.state,
        RunState::Succeeded as i32,
        "{}",
        resumed.error
    );
    for (stream, entity, id) in &gone {
        let deleted = deleted_in(&paused, stream) + deleted_in(&resumed, stream);
        assert_eq!(deleted, 1, "{stream} {id}: {paused:?} then {resumed:?}");
        let left = mesh.canonical_records(CONNECTION, entity).await?;
        assert!(left.iter().all(|record| &record.external_id != id));
    }
    // The paused part had not finished a stream that lost a record: the resumption did.
    let resumed_deleted: u64 = gone
        .iter()
        .map(|(stream, _, _)| deleted_in(&resumed, stream))
        .sum();
    assert!(resumed_deleted > 0, "{paused:?} then {resumed:?}");
    mesh.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}
