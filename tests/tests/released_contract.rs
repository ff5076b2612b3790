//! Upgrading one service at a time: a client built against the previous release of the protos
//! (the newest snapshot under deploy/contracts/) still works against the current services.
//!
//! The old client is `buf curl --schema <snapshot>`: it encodes requests and decodes answers
//! with the released descriptors only, never the servers' reflection, exactly as a platform
//! service compiled against that release would.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use serde_json::{Value, json};

/// The newest released contract, `deploy/contracts/vX.Y.Z` with the highest version.
fn released_contract() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/contracts");
    let version = |name: &str| -> Option<Vec<u64>> {
        name.strip_prefix('v')?
            .split('.')
            .map(|part| part.parse().ok())
            .collect()
    };
    std::fs::read_dir(&dir)
        .expect("deploy/contracts exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some((version(&name)?, name))
        })
        .max()
        .map(|(_, name)| dir.join(name))
        .expect("at least one released contract under deploy/contracts")
}

struct OldClient {
    schema: PathBuf,
    token: String,
}

impl OldClient {
    /// Calls `method` at `addr` with the released schema; returns the JSON answer.
    fn call(&self, addr: &str, method: &str, body: Value) -> anyhow::Result<Value> {
        let buf = std::env::var("PLUGBOARD_BUF").unwrap_or_else(|_| "buf".to_owned());
        let output = Command::new(&buf)
            .args(["curl", "--protocol", "grpc", "--http2-prior-knowledge"])
            .arg("--schema")
            .arg(&self.schema)
            .args(["-H", &format!("authorization: Bearer {}", self.token)])
            .args(["-d", &body.to_string()])
            .arg(format!("http://{addr}/{method}"))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {buf} (tests/run.sh installs it): {e}"))?;
        anyhow::ensure!(
            output.status.success(),
            "{method} with the released schema failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_released_contract_works_against_the_current_services() -> anyhow::Result<()>
{
    let cluster = Cluster::start(1, &[]).await?;
    let mesh = cluster.mesh("old-client-tenant", 0);
    let client = OldClient {
        schema: released_contract(),
        token: mesh.clients.bearer_token(),
    };
    let sync = &cluster.syncs[0].addr;
    let sandbox_url = cluster.sandbox_url();

    // A whole inbound sync driven only through the old contract.
    let put = client.call(
        &cluster.credentials.addr,
        "plugboard.credentials.v1.CredentialsService/PutCredential",
        json!({
            "connectionId": "bh-old",
            "connector": "bullhorn",
            "secret": { "oauth2Client": {
                "clientId": SANDBOX_CLIENT_ID,
                "clientSecret": SANDBOX_CLIENT_SECRET,
                "tokenUrl": format!("{sandbox_url}/oauth/token"),
                "username": SANDBOX_USERNAME,
                "password": SANDBOX_PASSWORD,
            }},
        }),
    )?;
    assert!(put.get("version").is_some(), "PutCredential: {put}");
    client.call(
        sync,
        "plugboard.sync.v1.SyncService/CreateSync",
        json!({
            "connectionId": "bh-old",
            "connector": "bullhorn",
            "settingsJson": json!({ "auth_url": sandbox_url, "login_url": sandbox_url }).to_string(),
        }),
    )?;
    let triggered = client.call(
        sync,
        "plugboard.sync.v1.SyncService/TriggerRun",
        json!({ "connectionId": "bh-old" }),
    )?;
    let run_id = triggered["runId"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let run = loop {
        let answer = client.call(
            sync,
            "plugboard.sync.v1.SyncService/GetRun",
            json!({ "runId": run_id }),
        )?;
        if answer["run"]["state"] != "RUN_STATE_RUNNING" {
            break answer["run"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "run did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(run["state"], "RUN_STATE_SUCCEEDED", "run: {run}");

    let records = client.call(
        sync,
        "plugboard.sync.v1.SyncService/ListRecords",
        json!({ "connectionId": "bh-old", "entity": "candidate", "pageSize": 5 }),
    )?;
    let candidates = records["records"].as_array().cloned().unwrap_or_default();
    assert!(!candidates.is_empty(), "ListRecords: {records}");
    assert!(
        candidates
            .iter()
            .any(|record| record["candidate"]["lastName"].is_string()),
        "no candidate decoded with the released schema has a name: {records}"
    );
    // What the new services wrote is what the current clients read, too.
    let current = mesh.canonical_records("bh-old", "candidate").await?;
    assert_eq!(
        records["total"]
            .as_str()
            .and_then(|t| t.parse::<usize>().ok()),
        Some(current.len()),
        "ListRecords total: {records}"
    );

    // The read APIs of the other services.
    let connectors = client.call(
        &cluster.registry.addr,
        "plugboard.registry.v1.RegistryService/ListConnectors",
        json!({}),
    )?;
    assert!(connectors.to_string().contains("bullhorn"), "{connectors}");
    let specs = client.call(
        &cluster.mapping.addr,
        "plugboard.mapping.v1.MappingService/ListSpecs",
        json!({ "connector": "bullhorn" }),
    )?;
    assert!(specs.to_string().contains("candidate"), "{specs}");
    let status = client.call(
        &cluster.health.addr,
        "plugboard.health.v1.IntegrationHealthService/GetStatus",
        json!({ "connectionId": "bh-old" }),
    )?;
    assert!(status.to_string().contains("bh-old"), "{status}");
    Ok(())
}
