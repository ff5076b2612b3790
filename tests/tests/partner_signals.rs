//! Partner error rates and correctness signals through the whole mesh: `plugboard dev` with
//! the Bullhorn sandbox. The sandbox fails a burst of requests that the connector retries, so
//! the run succeeds; the connector counts the failed answers, sync sums them into the run
//! report, and health degrades the integration naming Bullhorn by its manifest display name.
//! A field the partner starts sending shows as schema drift on the next run.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use plugboard_proto::health::v1::{GetStatusRequest, IntegrationHealth, IntegrationStatus};
use plugboard_proto::sync::v1::{CreateSyncRequest, RunState};
use plugboard_tests::flows::{
    Mesh, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::Process;
use plugboard_tests::sandbox::SandboxAdmin;
use plugboard_tests::{eventually, free_port};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn printed_addresses(log: &str) -> HashMap<String, String> {
    log.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("service"), Some(name), Some(addr)) => {
                    Some((name.to_owned(), addr.to_owned()))
                }
                (Some("sandbox"), Some("bullhorn"), Some(url)) => {
                    Some(("sandbox".to_owned(), url.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

async fn status(clients: &TenantClients, health_addr: &str, id: &str) -> IntegrationHealth {
    let answer = clients
        .health(health_addr)
        .get_status(GetStatusRequest {
            connection_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    answer.integrations.into_iter().next().unwrap()
}

/// The status once it is `expected`, or as it is after ten seconds: sync stores a run's end
/// before it reports the outcome to health, so a run seen ended may not be reported yet.
async fn status_once(
    clients: &TenantClients,
    health_addr: &str,
    id: &str,
    expected: IntegrationStatus,
) -> IntegrationHealth {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health = status(clients, health_addr, id).await;
        if health.status() == expected || tokio::time::Instant::now() >= deadline {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_erring_through_retries_degrades_and_drift_warns() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("pb-signals-{}", uuid::Uuid::new_v4()));
    let gateway = format!("127.0.0.1:{}", free_port());
    let dev = Process::start(
        "dev",
        &[
            "dev",
            "--data-dir",
            &data_dir.display().to_string(),
            "--gateway-addr",
            &gateway,
        ],
        &[],
        &data_dir.join("logs"),
    );
    eventually("plugboard dev to start", WAIT, || {
        let ready = dev.log_text().contains("press ctrl-c to stop");
        async move { ready }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {}", dev.log_text()))?;
    let addresses = printed_addresses(&dev.log_text());
    for name in ["credentials", "sync", "health", "registry"] {
        wait_serving(&addresses[name], Duration::from_secs(30)).await?;
    }
    let sandbox_url = addresses["sandbox"].clone();
    let mesh_key = std::fs::read_to_string(data_dir.join("keys/mesh.key"))?;
    // A tenant of its own, so the demo tenant's scheduled syncs do not touch the counts.
    let tenant = format!("signals-{}", uuid::Uuid::new_v4().simple());
    let mesh = Mesh {
        clients: TenantClients::new(mesh_key.trim(), &tenant),
        sync_addr: addresses["sync"].clone(),
        credentials_addr: addresses["credentials"].clone(),
        sandbox: SandboxAdmin::new(&sandbox_url),
        sandbox_url: sandbox_url.clone(),
    };
    // The demo tenant's first sync shares the sandbox: let it finish before faults are armed.
    let demo = Mesh {
        clients: TenantClients::new(mesh_key.trim(), "demo"),
        sync_addr: addresses["sync"].clone(),
        credentials_addr: addresses["credentials"].clone(),
        sandbox: SandboxAdmin::new(&sandbox_url),
        sandbox_url: sandbox_url.clone(),
    };
    demo.wait_idle("demo-bullhorn").await?;
    let health_addr = addresses["health"].clone();
    let id = "signals-bullhorn";
    mesh.connect_bullhorn(
        id,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_USERNAME,
        SANDBOX_PASSWORD,
    )
    .await?;
    // Only the jobs stream: few requests, so a burst of errors is a large share of them.
    let settings = json!({ "auth_url": sandbox_url, "login_url": sandbox_url });
    mesh.clients
        .sync(&mesh.sync_addr)
        .create_sync(CreateSyncRequest {
            connection_id: id.into(),
            connector: "bullhorn".into(),
            settings_json: settings.to_string(),
            streams: vec!["JobOrder".into()],
            interval_seconds: 0,
        })
        .await?;

    let first = mesh.run_once(id).await?;
    assert_eq!(first.state(), RunState::Succeeded, "{first:?}");
    let clean = status_once(
        &mesh.clients,
        &health_addr,
        id,
        IntegrationStatus::Operational,
    )
    .await;
    assert_eq!(clean.status(), IntegrationStatus::Operational, "{clean:?}");

    // Four 500s in a row: the connector's retries (five attempts) outlast them.
    mesh.sandbox
        .faults(json!({ "server_error_burst": 4 }))
        .await?;
    let jobs = mesh.sandbox.records("JobOrder").await?;
    let touched = jobs[0]["id"].as_i64().unwrap();
    mesh.sandbox
        .touch_with(
            "JobOrder",
            &[touched],
            json!({ "payTransparency": "drift" }),
        )
        .await?;
    let second = mesh.run_once(id).await?;
    assert_eq!(second.state(), RunState::Succeeded, "{second:?}");
    let troubled = status_once(&mesh.clients, &health_addr, id, IntegrationStatus::Degraded).await;
    assert_eq!(
        troubled.status(),
        IntegrationStatus::Degraded,
        "{troubled:?}"
    );
    assert!(
        troubled.reason.starts_with("Bullhorn answered ")
            && troubled
                .reason
                .contains("% of requests with errors in the last run")
            && troubled.reason.contains("4 server errors"),
        "{}",
        troubled.reason
    );
    assert!(
        troubled.action.contains("Bullhorn's service status"),
        "{}",
        troubled.action
    );
    let drift = troubled
        .warnings
        .iter()
        .find(|warning| warning.code == "SCHEMA_DRIFT")
        .unwrap_or_else(|| panic!("no drift warning in {:?}", troubled.warnings));
    assert_eq!(drift.entity, "job");
    assert!(
        drift.reason == "Bullhorn jobs now have new fields payTransparency",
        "{}",
        drift.reason
    );

    // The partner works again: the next run clears the status.
    let third = mesh.run_once(id).await?;
    assert_eq!(third.state(), RunState::Succeeded, "{third:?}");
    let recovered = status_once(
        &mesh.clients,
        &health_addr,
        id,
        IntegrationStatus::Operational,
    )
    .await;
    assert_eq!(
        recovered.status(),
        IntegrationStatus::Operational,
        "{recovered:?}"
    );
    drop(dev);
    Ok(())
}
