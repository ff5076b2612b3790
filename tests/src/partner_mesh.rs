//! A split-mode mesh around any manifest connectors: registry, credentials, health, mapping and
//! sync as `plugboard` processes on a fresh PostgreSQL database and Redis, plus one
//! `plugboard connector serve services/connector-<name>` process per connector. The partners'
//! sandboxes are the test's to serve (in its own process, so it can read and change them).

use std::path::PathBuf;
use std::time::Duration;

use plugboard_proto::credentials::v1::Secret;
use plugboard_proto::sync::v1::{RunState, WatchChangesRequest, WatchChangesResponse};
use serde_json::Value;

use crate::documents::DocumentMesh;
pub use crate::documents::serve_sandbox;
use crate::flows::Mesh;
use crate::mesh::TenantClients;
use crate::sandbox::SandboxAdmin;

pub struct PartnerMesh {
    pub mesh_key: String,
    pub log_dir: PathBuf,
    pub sync_addr: String,
    pub credentials_addr: String,
    pub mapping_addr: String,
    /// The services and connector processes; they are killed when the mesh is dropped.
    inner: DocumentMesh,
}

impl PartnerMesh {
    /// Starts the services and a connector process for each of `connectors` (folder names
    /// without `connector-`); returns once every service serves and every connector resolves.
    pub async fn start(connectors: &[&str]) -> anyhow::Result<PartnerMesh> {
        let mut inner = DocumentMesh::start().await?;
        for connector in connectors {
            inner.serve_connector(connector).await?;
        }
        Ok(PartnerMesh {
            mesh_key: inner.mesh_key.clone(),
            log_dir: inner.log_dir.clone(),
            sync_addr: inner.sync_addr.clone(),
            credentials_addr: inner.credentials_addr.clone(),
            mapping_addr: inner.mapping_addr.clone(),
            inner,
        })
    }

    /// The test flows of `tenant`; `sandbox_url` is the partner the flows' admin calls reach.
    pub fn flows(&self, tenant: &str, sandbox_url: &str) -> Mesh {
        Mesh {
            clients: TenantClients::new(&self.mesh_key, tenant),
            sync_addr: self.sync_addr.clone(),
            credentials_addr: self.credentials_addr.clone(),
            sandbox: SandboxAdmin::new(sandbox_url),
            sandbox_url: sandbox_url.to_owned(),
        }
    }

    /// Stores `secret` for the connection and defines a manual sync of `streams` (all when
    /// empty) with `settings`.
    pub async fn connect(
        &self,
        clients: &TenantClients,
        connection_id: &str,
        connector: &str,
        secret: Secret,
        settings: &Value,
        streams: &[&str],
    ) -> anyhow::Result<()> {
        self.inner
            .connect_streams(clients, connection_id, connector, secret, settings, streams)
            .await
    }
}

/// One call of a sandbox's `/_sandbox/` admin contract (`GET` when `body` is null).
pub async fn sandbox_admin(sandbox: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let url = format!("{sandbox}/_sandbox/{path}");
    let request = if body.is_null() {
        http.get(url)
    } else {
        http.post(url).json(&body)
    };
    Ok(request.send().await?.error_for_status()?.json().await?)
}

/// Runs the connection once and fails unless the run succeeded.
pub async fn run_ok(flows: &Mesh, connection_id: &str) -> anyhow::Result<()> {
    let run = flows.run_once(connection_id).await?;
    anyhow::ensure!(
        run.state == RunState::Succeeded as i32,
        "run failed: {}",
        run.error
    );
    Ok(())
}

/// Changes of `entity` on the connection's feed after `after`, up to and including the first
/// of `marker`.
pub async fn changes_until(
    flows: &Mesh,
    connection_id: &str,
    entity: &str,
    after: u64,
    marker: &str,
) -> anyhow::Result<Vec<WatchChangesResponse>> {
    let mut feed = flows
        .clients
        .sync(&flows.sync_addr)
        .watch_changes(WatchChangesRequest {
            after_position: after,
            connection_id: connection_id.into(),
            entity: entity.into(),
        })
        .await?
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let change = tokio::time::timeout(Duration::from_secs(10), feed.message())
            .await
            .map_err(|_| anyhow::anyhow!("{marker} did not arrive on the change feed"))??
            .ok_or_else(|| anyhow::anyhow!("the change feed ended"))?;
        let done = change.external_id == marker;
        seen.push(change);
        if done {
            return Ok(seen);
        }
    }
}

/// The sandbox's record of `stream` whose numeric `id` is `id`.
pub async fn partner_record(sandbox: &str, stream: &str, id: &str) -> anyhow::Result<Value> {
    let records = sandbox_admin(sandbox, &format!("records/{stream}"), Value::Null).await?;
    records["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|record| record["id"].as_u64().is_some_and(|n| n.to_string() == id))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the partner holds no {stream} record {id}"))
}

/// Reads our pushed application `id` back once (its echo), has the buyer make `changes` to it at
/// the partner, reads again, and returns what the change feed then says about it. `last_seeded`
/// is the feed's last application before the push, where the watching starts.
pub async fn buyer_change_of_pushed(
    flows: &Mesh,
    sandbox: &str,
    connection_id: &str,
    last_seeded: &str,
    id: &str,
    changes: Value,
) -> anyhow::Result<Vec<WatchChangesResponse>> {
    let before = changes_until(flows, connection_id, "application", 0, last_seeded).await?;
    let start = before.last().map_or(0, |change| change.position);
    run_ok(flows, connection_id).await?;
    sandbox_admin(
        sandbox,
        "touch",
        serde_json::json!({"stream": "candidates", "ids": [id.parse::<u64>()?], "changes": changes}),
    )
    .await?;
    run_ok(flows, connection_id).await?;
    changes_until(flows, connection_id, "application", start, id).await
}
