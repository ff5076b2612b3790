//! One run per connection across sync replicas, with real processes: a replica frozen mid-run
//! (SIGSTOP) past its lease is superseded by the other and, woken up, commits nothing more; and
//! a Redis restart mid-run (the test's own Redis, never the shared one) loses no record, lets no
//! second run start, and leaves tokens that keep fencing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::sync::v1::{GetRunRequest, RunInfo, RunState, TriggerRunRequest};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    Mesh, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use plugboard_tests::redis_server::OwnRedis;
use serde_json::json;

const CONNECTION: &str = "bh-replicas";

/// Short leases so a takeover happens within the test; small pages so a run has many.
const ENV: [(&str, &str); 2] = [
    ("PLUGBOARD_SYNC_LEASE_TTL_SECONDS", "3"),
    ("PLUGBOARD_SYNC_PAGE_SIZE", "5"),
];

async fn connect(mesh: &Mesh) -> anyhow::Result<()> {
    mesh.connect_bullhorn(
        CONNECTION,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )
    .await
}

async fn trigger(mesh: &Mesh) -> Result<String, tonic::Status> {
    Ok(mesh
        .clients
        .sync(&mesh.sync_addr)
        .trigger_run(TriggerRunRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id)
}

async fn get_run(mesh: &Mesh, run_id: &str) -> anyhow::Result<RunInfo> {
    mesh.clients
        .sync(&mesh.sync_addr)
        .get_run(GetRunRequest {
            run_id: run_id.into(),
        })
        .await?
        .into_inner()
        .run
        .ok_or_else(|| anyhow::anyhow!("run {run_id} has no body"))
}

async fn wait_until(
    mesh: &Mesh,
    run_id: &str,
    what: &str,
    done: impl Fn(&RunInfo) -> bool,
) -> anyhow::Result<RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let run = get_run(mesh, run_id).await?;
        if done(&run) {
            return Ok(run);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "run {run_id}: {what}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`trigger`], retried while the replica answers UNAVAILABLE: after a Redis restart its first
/// command fails on the broken connection and the next ones go through the new one.
async fn trigger_through_reconnect(mesh: &Mesh) -> Result<String, tonic::Status> {
    let mut attempts = 0;
    loop {
        match trigger(mesh).await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            answer => return answer,
        }
    }
}

fn pages(run: &RunInfo) -> u32 {
    run.streams.iter().map(|stream| stream.pages).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replica_is_superseded_and_commits_nothing_after() -> anyhow::Result<()> {
    let cluster = Cluster::start(2, &ENV).await?;
    let first = cluster.mesh("fenced-tenant", 0);
    let second = cluster.mesh("fenced-tenant", 1);
    connect(&first).await?;
    // A slow partner, so the run is mid-read when its replica freezes.
    first.sandbox.faults(json!({ "delay_ms": 150 })).await?;
    let stalled_run = trigger(&first).await?;
    wait_until(&first, &stalled_run, "commit some pages", |run| {
        pages(run) >= 3
    })
    .await?;

    cluster.syncs[0].suspend()?;
    // The frozen replica cannot renew: its lease expires and the other replica takes over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.sandbox.faults(json!({ "delay_ms": 0 })).await?;
    let takeover = trigger(&second).await?;
    let finished = wait_until(&second, &takeover, "finish", |run| {
        run.state != RunState::Running as i32
    })
    .await?;
    assert_eq!(
        finished.state,
        RunState::Succeeded as i32,
        "{}",
        finished.error
    );

    // Woken up mid-run, the first replica finds its lease gone and its token stale.
    cluster.syncs[0].resume()?;
    let superseded = wait_until(
        &second,
        &stalled_run,
        "record that it was superseded",
        |run| run.error.contains("superseded"),
    )
    .await?;
    assert_eq!(superseded.state, RunState::Failed as i32);
    second.assert_matches_sandbox(CONNECTION).await?;
    // And a run after all that still goes through (the fence moved on, not backwards).
    let again = second.run_once(CONNECTION).await?;
    assert_eq!(again.state, RunState::Succeeded as i32, "{}", again.error);
    second.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_nothing_and_starts_no_second_run() -> anyhow::Result<()> {
    let mut redis = OwnRedis::start().await?;
    let url = redis.url();
    let mut env = ENV.to_vec();
    env.push(("PLUGBOARD_REDIS_URL", &url));
    let cluster = Cluster::start(2, &env).await?;
    let first = cluster.mesh("redis-restart-tenant", 0);
    let second = cluster.mesh("redis-restart-tenant", 1);
    connect(&first).await?;
    first.sandbox.faults(json!({ "delay_ms": 100 })).await?;
    let run_id = trigger(&first).await?;
    wait_until(&first, &run_id, "commit some pages", |run| pages(run) >= 3).await?;

    // Redis comes back empty: no lease, no fencing counter.
    redis.restart().await?;
    let keys = || redis.cli(&["--scan", "--pattern", "plugboard:lease:run:*"]);
    plugboard_tests::eventually(
        "the running replica to seed its lease again",
        Duration::from_secs(15),
        || {
            let seeded = keys().is_ok_and(|keys| keys.contains(CONNECTION));
            async move { seeded }
        },
    )
    .await?;
    // The other replica cannot start a second run of the connection (once its own Redis
    // connection, broken by the restart, is made again).
    let refused = trigger_through_reconnect(&second).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("in progress"),
        "{}",
        refused.message()
    );

    first.sandbox.faults(json!({ "delay_ms": 0 })).await?;
    let finished = wait_until(&first, &run_id, "finish", |run| {
        run.state != RunState::Running as i32
    })
    .await?;
    assert_eq!(
        finished.state,
        RunState::Succeeded as i32,
        "{}",
        finished.error
    );
    first.assert_matches_sandbox(CONNECTION).await?;

    // After one more restart the next run takes a token above the database's, so it commits.
    redis.restart().await?;
    let again = trigger_through_reconnect(&second).await?;
    let done = wait_until(&second, &again, "finish", |run| {
        run.state != RunState::Running as i32
    })
    .await?;
    assert_eq!(done.state, RunState::Succeeded as i32, "{}", done.error);
    second.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}
