//! A sync process killed with SIGKILL mid-run loses nothing: its lease expires, the other
//! replica's run marks the abandoned run failed and resumes from the last committed checkpoint,
//! and every partner record ends up stored exactly once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::sync::v1::{GetRunRequest, RunInfo, RunState, TriggerRunRequest};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    Mesh, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use serde_json::json;

const CONNECTION: &str = "bh-killed";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_resumes_from_the_checkpoint_with_nothing_lost() -> anyhow::Result<()> {
    // Small pages make a long run; a short lease makes the dead replica's lease expire quickly.
    let mut cluster = Cluster::start(
        2,
        &[
            ("PLUGBOARD_SYNC_PAGE_SIZE", "10"),
            ("PLUGBOARD_SYNC_LEASE_TTL_SECONDS", "3"),
        ],
    )
    .await?;
    let first = cluster.mesh("killed-tenant", 0);
    let second = cluster.mesh("killed-tenant", 1);
    first
        .connect_bullhorn(
            CONNECTION,
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            SANDBOX_USERNAME,
            SANDBOX_PASSWORD,
        )
        .await?;
    let run_id = first
        .clients
        .sync(&first.sync_addr)
        .trigger_run(TriggerRunRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;

    // Let a few pages commit, then hold the run on a long Retry-After so it is surely mid-run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = get_run(&first, &run_id).await?;
        let pages: u32 = run.streams.iter().map(|s| s.pages).sum();
        anyhow::ensure!(
            run.state == RunState::Running as i32,
            "run ended early: {run:?}"
        );
        if pages >= 3 {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no pages committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first
        .sandbox
        .faults(json!({ "rate_limit_burst": 1, "retry_after_seconds": 30 }))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.syncs[0].kill_hard()?;
    cluster.syncs[0].wait_exit(Duration::from_secs(5)).await?;
    first
        .sandbox
        .faults(json!({ "rate_limit_burst": 0, "retry_after_seconds": 1 }))
        .await?;

    // The other replica gets the connection once the dead lease expires.
    let takeover_id = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let triggered = second
                .clients
                .sync(&second.sync_addr)
                .trigger_run(TriggerRunRequest {
                    connection_id: CONNECTION.into(),
                })
                .await;
            match triggered {
                Ok(response) => break response.into_inner().run_id,
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "the dead replica's lease never expired: {status}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
    };
    let takeover = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let run = get_run(&second, &takeover_id).await?;
            if run.state != RunState::Running as i32 {
                break run;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "takeover did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(
        takeover.state,
        RunState::Succeeded as i32,
        "{}",
        takeover.error
    );

    // The killed run is failed with a reason, never left running or called a success.
    let abandoned = get_run(&second, &run_id).await?;
    assert_eq!(abandoned.state, RunState::Failed as i32, "{abandoned:?}");
    assert!(
        abandoned.error.contains("interrupted"),
        "{}",
        abandoned.error
    );

    // It resumed: the committed pages were not read again from the start.
    let reread: u64 = takeover.streams.iter().map(|s| s.records_read).sum();
    let mut partner_total = 0u64;
    for (stream, _) in plugboard_tests::flows::STREAMS {
        partner_total += second.sandbox.records(stream).await?.len() as u64;
    }
    assert!(
        reread < partner_total,
        "read {reread} of {partner_total}: did not resume"
    );

    // Nothing lost, nothing twice: the store holds exactly the partner's records.
    second.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}
