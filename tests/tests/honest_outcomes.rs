//! Honest outcomes through the real path: a full refresh that finds no candidates where the
//! previous complete read found 150 is not a success. Sync keeps the stored records (nothing is
//! deleted on an empty answer's word) and health shows the integration degraded with the
//! reason, not "the last sync succeeded".
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::health::v1::{GetStatusRequest, IntegrationStatus};
use plugboard_proto::sync::v1::{GetRunRequest, RunState, TriggerFullRefreshRequest};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};

const CONNECTION: &str = "bh-honest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_full_read_after_a_big_one_is_reported_as_suspect() -> anyhow::Result<()> {
    let cluster = Cluster::start(1, &[]).await?;
    let mesh = cluster.mesh("honest-tenant", 0);
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
    let stored = mesh.canonical_records(CONNECTION, "candidate").await?.len();
    assert!(
        stored >= 100,
        "the first complete read stored {stored} candidates"
    );

    // The partner suddenly lists no candidates at all (a broken filter, a lost permission).
    let ids: Vec<i64> = mesh
        .sandbox
        .records("Candidate")
        .await?
        .iter()
        .filter_map(|record| record["id"].as_i64())
        .collect();
    mesh.sandbox.delete("Candidate", &ids).await?;
    let mut sync = mesh.clients.sync(&mesh.sync_addr);
    let run_id = sync
        .trigger_full_refresh(TriggerFullRefreshRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let refresh = loop {
        let run = sync
            .get_run(GetRunRequest {
                run_id: run_id.clone(),
            })
            .await?
            .into_inner()
            .run
            .unwrap();
        if run.state != RunState::Running as i32 {
            break run;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "refresh did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The read itself completed; nothing was deleted on its word.
    assert_eq!(
        refresh.state,
        RunState::Succeeded as i32,
        "{}",
        refresh.error
    );
    assert_eq!(
        mesh.canonical_records(CONNECTION, "candidate").await?.len(),
        stored
    );

    // Health hears a suspect run and says why.
    let mut health = mesh.clients.health(&cluster.health.addr);
    plugboard_tests::eventually(
        "health to judge the refresh",
        Duration::from_secs(20),
        || {
            let mut health = health.clone();
            let request = GetStatusRequest {
                connection_id: CONNECTION.into(),
            };
            async move {
                health
                    .get_status(request)
                    .await
                    .ok()
                    .and_then(|response| response.into_inner().integrations.pop())
                    .is_some_and(|integration| integration.reason.contains("cannot be trusted"))
            }
        },
    )
    .await?;
    let integration = health
        .get_status(GetStatusRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .integrations
        .remove(0);
    assert_eq!(integration.status(), IntegrationStatus::Degraded);
    assert!(
        integration.reason.contains("Candidate"),
        "{}",
        integration.reason
    );
    assert!(
        integration.reason.contains("nothing was deleted"),
        "{}",
        integration.reason
    );
    Ok(())
}
