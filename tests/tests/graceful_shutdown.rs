//! Rolling a sync replica mid-run loses nothing: two sync processes on one PostgreSQL and
//! Redis, a run in progress on the first, SIGTERM to it (as Kubernetes sends on a rollout), then
//! the second takes the connection over from the checkpoint.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::credentials::v1::{OAuth2Client, PutCredentialRequest, Secret, secret};
use plugboard_proto::health::v1::WatchStatusRequest;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::sync::v1::{
    CreateSyncRequest, GetRunRequest, ListSyncsRequest, RunInfo, RunState, TriggerRunRequest,
};
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    Mesh, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME, STREAMS,
};
use serde_json::json;

const CONNECTION: &str = "bh-rolling";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_stops_after_a_page_and_another_replica_takes_over() -> anyhow::Result<()> {
    // Small pages, so a run is many commits long and SIGTERM lands between two of them.
    let mut cluster = Cluster::start(2, &[("PLUGBOARD_SYNC_PAGE_SIZE", "10")]).await?;
    let first = cluster.mesh("rolling-tenant", 0);
    let second = cluster.mesh("rolling-tenant", 1);
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
    // Mid-run: a couple of pages committed, then the partner makes the connector wait out a
    // 429 so the run is surely still going when the signal arrives.
    let progress = wait_for_pages(&first, &run_id, 2).await?;
    assert_eq!(
        progress.state,
        RunState::Running as i32,
        "the run ended before it could be interrupted (too few sandbox records for page size 10): {progress:?}"
    );
    first
        .sandbox
        .faults(json!({ "rate_limit_burst": 1, "retry_after_seconds": 10 }))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let replica = &mut cluster.syncs[0];
    replica.terminate()?;
    // Well inside the 60 s grace period deploy/k8s gives sync, and far less than the Retry-After
    // wait plus the rest of the run: the replica stopped the run instead of finishing it.
    let status = replica.wait_exit(Duration::from_secs(8)).await?;
    let log = replica.log_text();
    assert!(status.success(), "sync-0 exited with {status}: {log}");
    assert!(
        log.contains("runs stopped and their leases released"),
        "sync-0 did not drain its runs: {log}"
    );

    // The interrupted run is recorded as such, never as a success, with a clear reason.
    let interrupted = get_run(&second, &run_id).await?;
    assert_eq!(
        interrupted.state,
        RunState::Failed as i32,
        "interrupted run: {interrupted:?}"
    );
    assert!(
        interrupted.error.contains("interrupted") && interrupted.error.contains("checkpoint"),
        "unclear reason: {}",
        interrupted.error
    );
    let committed_pages: u64 = interrupted.streams.iter().map(|s| u64::from(s.pages)).sum();
    assert!(committed_pages >= 2, "{interrupted:?}");

    // No half page: exactly the records of the committed pages are in the store.
    let written: u64 = interrupted.streams.iter().map(|s| s.records_written).sum();
    let stored = stored_records(&second).await?;
    assert_eq!(
        stored, written,
        "records stored after the interruption differ from the committed pages' records"
    );

    // The lease was released on shutdown, not left to expire (30 s): the other replica can
    // start a run of the connection straight away.
    let takeover_id = second
        .clients
        .sync(&second.sync_addr)
        .trigger_run(TriggerRunRequest {
            connection_id: CONNECTION.into(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("the other replica cannot take over: {status}"))?
        .into_inner()
        .run_id;
    let takeover = wait_finished(&second, &takeover_id).await?;
    assert_eq!(
        takeover.state,
        RunState::Succeeded as i32,
        "takeover run: {}",
        takeover.error
    );

    // It resumed from the checkpoint instead of starting over...
    let mut partner_total = 0u64;
    for (stream, _) in STREAMS {
        partner_total += second.sandbox.records(stream).await?.len() as u64;
    }
    let reread: u64 = takeover.streams.iter().map(|s| s.records_read).sum();
    assert!(
        reread < partner_total,
        "the takeover read {reread} records of {partner_total}: it did not resume from the checkpoint"
    );
    // ...and every sandbox record ends up stored (or quarantined) exactly once.
    second.assert_matches_sandbox(CONNECTION).await?;
    assert!(
        get_run(&second, &run_id).await?.state != RunState::Succeeded as i32,
        "the interrupted run was later reported as succeeded"
    );

    // Every other service stops as cleanly on SIGTERM, well inside its 30 s grace period.
    let Cluster {
        registry,
        credentials,
        health,
        mapping,
        connector,
        sandbox,
        syncs,
        ..
    } = &mut cluster;
    let mut nodes = vec![registry, credentials, health, mapping, connector, sandbox];
    nodes.extend(syncs.iter_mut().skip(1));
    for node in &nodes {
        node.terminate()?;
    }
    for node in &mut nodes {
        let status = node.wait_exit(Duration::from_secs(10)).await?;
        assert!(
            status.success(),
            "{} exited with {status} on SIGTERM: {}",
            node.name,
            node.log_text()
        );
    }
    Ok(())
}

/// A scheduled sync needs no trigger: when the replica running it stops, the sync is due again
/// at once and the other replica's scheduler resumes it from the checkpoint on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_interrupted_by_sigterm_is_resumed_by_the_other_replica_on_its_own()
-> anyhow::Result<()> {
    let mut cluster = Cluster::start(
        2,
        &[
            ("PLUGBOARD_SYNC_PAGE_SIZE", "10"),
            ("PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS", "1"),
        ],
    )
    .await?;
    let mesh = cluster.mesh("scheduled-tenant", 1);
    mesh.clients
        .credentials(&mesh.credentials_addr)
        .put_credential(PutCredentialRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                    client_id: SANDBOX_CLIENT_ID.into(),
                    client_secret: SANDBOX_CLIENT_SECRET.into(),
                    token_url: format!("{}/oauth/token", mesh.sandbox_url),
                    scopes: Vec::new(),
                    username: SANDBOX_USERNAME.into(),
                    password: SANDBOX_PASSWORD.into(),
                    token_parameters: Default::default(),
                    client_secret_in_body: false,
                    client_certificate: None,
                })),
            }),
        })
        .await?;
    // Hourly: due at once, then not again within the test unless the interruption makes it so.
    let settings = json!({ "auth_url": mesh.sandbox_url, "login_url": mesh.sandbox_url });
    mesh.clients
        .sync(&mesh.sync_addr)
        .create_sync(CreateSyncRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            settings_json: settings.to_string(),
            streams: Vec::new(),
            interval_seconds: 3600,
        })
        .await?;

    // Whichever replica's scheduler started it is the one to stop.
    let run_id = wait_for_last_run(&mesh, |_| true).await?.run_id;
    let progress = wait_for_pages(&mesh, &run_id, 2).await?;
    assert_eq!(
        progress.state,
        RunState::Running as i32,
        "the run ended before it could be interrupted: {progress:?}"
    );
    mesh.sandbox
        .faults(json!({ "rate_limit_burst": 1, "retry_after_seconds": 10 }))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running_on = cluster
        .syncs
        .iter()
        .position(|replica| replica.log_text().contains(&run_id))
        .expect("one replica logged the run's start");
    let other = 1 - running_on;
    let replica = &mut cluster.syncs[running_on];
    replica.terminate()?;
    let status = replica.wait_exit(Duration::from_secs(8)).await?;
    assert!(status.success(), "{} exited with {status}", replica.name);

    // No trigger: the other replica's scheduler picks the connection up and finishes it.
    let survivor = cluster.mesh("scheduled-tenant", other);
    let takeover = wait_for_last_run(&survivor, |run| {
        run.run_id != run_id && run.state != RunState::Running as i32
    })
    .await?;
    assert_eq!(
        takeover.state,
        RunState::Succeeded as i32,
        "takeover run: {}",
        takeover.error
    );
    assert!(
        cluster.syncs[other].log_text().contains(&takeover.run_id),
        "the takeover did not run on the surviving replica"
    );
    let interrupted = get_run(&survivor, &run_id).await?;
    assert_eq!(
        interrupted.state,
        RunState::Failed as i32,
        "{interrupted:?}"
    );
    assert!(
        interrupted.error.contains("interrupted"),
        "{}",
        interrupted.error
    );
    survivor.assert_matches_sandbox(CONNECTION).await?;
    Ok(())
}

/// SIGTERM drains instead of cutting: a connector stopped while its Read is waiting out a 429
/// finishes that Read (the run succeeds with every record), and a health replica with a
/// dashboard's `WatchStatus` stream open ends the stream and exits at once rather than holding
/// on until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_calls_finish_and_open_streams_end_on_sigterm() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(
        1,
        &[
            ("PLUGBOARD_SYNC_PAGE_SIZE", "10"),
            ("PLUGBOARD_SHUTDOWN_GRACE_SECONDS", "20"),
        ],
    )
    .await?;
    let mesh = cluster.mesh("draining-tenant", 0);
    mesh.clients
        .credentials(&mesh.credentials_addr)
        .put_credential(PutCredentialRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                    client_id: SANDBOX_CLIENT_ID.into(),
                    client_secret: SANDBOX_CLIENT_SECRET.into(),
                    token_url: format!("{}/oauth/token", mesh.sandbox_url),
                    scopes: Vec::new(),
                    username: SANDBOX_USERNAME.into(),
                    password: SANDBOX_PASSWORD.into(),
                    token_parameters: Default::default(),
                    client_secret_in_body: false,
                    client_certificate: None,
                })),
            }),
        })
        .await?;
    // One stream, so the whole run is one Read call on the connector.
    let settings = json!({ "auth_url": mesh.sandbox_url, "login_url": mesh.sandbox_url });
    mesh.clients
        .sync(&mesh.sync_addr)
        .create_sync(CreateSyncRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            settings_json: settings.to_string(),
            streams: vec!["Candidate".into()],
            interval_seconds: 0,
        })
        .await?;
    // The partner's first answer will be a 429 with a three-second Retry-After, so the
    // connector's Read is surely in flight, waiting, when the signal arrives.
    mesh.sandbox
        .faults(json!({ "rate_limit_burst": 1, "retry_after_seconds": 3 }))
        .await?;
    let run_id = mesh
        .clients
        .sync(&mesh.sync_addr)
        .trigger_run(TriggerRunRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let signalled = tokio::time::Instant::now();
    cluster.connector.terminate()?;

    let run = wait_finished(&mesh, &run_id).await?;
    assert_eq!(
        run.state,
        RunState::Succeeded as i32,
        "the connector cut its in-flight Read short: {}",
        run.error
    );
    let waits: u32 = run.streams.iter().map(|s| s.rate_limited_waits).sum();
    assert!(waits >= 1, "the partner's 429 never came: {run:?}");
    let status = cluster.connector.wait_exit(Duration::from_secs(20)).await?;
    assert!(
        status.success(),
        "connector exited with {status}: {}",
        cluster.connector.log_text()
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "the connector exited before it could have waited out the 429: {run:?}"
    );
    let partner = mesh.sandbox.records("Candidate").await?.len() as u64;
    let (quarantined, without_id) = mesh.quarantined(CONNECTION).await?;
    let quarantined = quarantined
        .values()
        .map(|ids| ids.len() as u64)
        .sum::<u64>()
        + without_id as u64;
    let stored = mesh.canonical_records(CONNECTION, "candidate").await?.len() as u64;
    assert_eq!(stored + quarantined, partner, "records lost in the drain");

    // A dashboard watching health: the stream ends on SIGTERM and the process exits cleanly,
    // well before the 20 s grace would cut it off.
    let channel = plugboard_runtime::channel::lazy_channel(&cluster.health.addr)?;
    let mut health =
        IntegrationHealthServiceClient::with_interceptor(channel, mesh.clients.credentials.clone());
    let mut watching = health
        .watch_status(WatchStatusRequest::default())
        .await?
        .into_inner();
    let snapshot = watching.message().await?;
    assert!(snapshot.is_some_and(|message| message.snapshot));
    let signalled = tokio::time::Instant::now();
    cluster.health.terminate()?;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watching.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the WatchStatus stream stayed open after SIGTERM"
    );
    let status = cluster.health.wait_exit(Duration::from_secs(10)).await?;
    assert!(
        status.success(),
        "health exited with {status}: {}",
        cluster.health.log_text()
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "health held on to its stream until the grace ran out"
    );
    Ok(())
}

/// Polls the connection's last run until `done` accepts it (60 s at most).
async fn wait_for_last_run(
    mesh: &Mesh,
    done: impl Fn(&RunInfo) -> bool,
) -> anyhow::Result<RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let syncs = mesh
            .clients
            .sync(&mesh.sync_addr)
            .list_syncs(ListSyncsRequest::default())
            .await?
            .into_inner()
            .syncs;
        let last = syncs
            .into_iter()
            .find(|sync| sync.connection_id == CONNECTION)
            .and_then(|sync| sync.last_run);
        if let Some(run) = last.filter(|run| done(run)) {
            return Ok(run);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no matching run of {CONNECTION} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Polls until the run has committed `pages` pages or has ended.
async fn wait_for_pages(mesh: &Mesh, run_id: &str, pages: u64) -> anyhow::Result<RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = get_run(mesh, run_id).await?;
        let committed: u64 = run.streams.iter().map(|s| u64::from(s.pages)).sum();
        if committed >= pages || run.state != RunState::Running as i32 {
            return Ok(run);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} committed {committed} pages in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_finished(mesh: &Mesh, run_id: &str) -> anyhow::Result<RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let run = get_run(mesh, run_id).await?;
        if run.state != RunState::Running as i32 {
            return Ok(run);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stored_records(mesh: &Mesh) -> anyhow::Result<u64> {
    let mut total = 0;
    for (_, entity) in STREAMS {
        total += mesh.canonical_records(CONNECTION, entity).await?.len() as u64;
    }
    Ok(total)
}
