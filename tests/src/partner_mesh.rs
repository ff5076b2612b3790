//! A split-mode mesh around any manifest connectors: registry, credentials, health, mapping and
//! sync as `plugboard` processes on a fresh PostgreSQL database and Redis, plus one
//! `plugboard connector serve services/connector-<name>` process per connector. The partners'
//! sandboxes are the test's to serve (in its own process, so it can read and change them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use plugboard_proto::credentials::v1::{PutCredentialRequest, Secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::{
    CreateSyncRequest, RunState, WatchChangesRequest, WatchChangesResponse,
};
use rand::RngCore;
use serde_json::Value;

use crate::flows::Mesh;
use crate::mesh::{TenantClients, wait_serving};
use crate::process::Process;
use crate::sandbox::SandboxAdmin;
use crate::{REDIS_URL, eventually, free_port, fresh_postgres_database};

pub struct PartnerMesh {
    pub mesh_key: String,
    pub log_dir: PathBuf,
    pub sync_addr: String,
    pub credentials_addr: String,
    /// Every process; they are killed when the mesh is dropped.
    _processes: Vec<Process>,
}

impl PartnerMesh {
    /// Starts the services and a connector process for each of `connectors` (folder names
    /// without `connector-`); returns once every service serves and every connector resolves.
    pub async fn start(connectors: &[&str]) -> anyhow::Result<PartnerMesh> {
        let database_url = fresh_postgres_database().await?;
        let log_dir = std::env::temp_dir().join(format!("pb-partners-{}", uuid::Uuid::new_v4()));
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        let mesh_key = format!("partner-mesh-key-{}", uuid::Uuid::new_v4().simple());
        let addr = || format!("127.0.0.1:{}", free_port());
        let (registry, credentials, health, mapping, sync) =
            (addr(), addr(), addr(), addr(), addr());
        let env: Vec<(String, String)> = [
            ("PLUGBOARD_DATABASE_URL", database_url),
            ("PLUGBOARD_MESH_KEY", mesh_key.clone()),
            ("PLUGBOARD_REDIS_URL", REDIS_URL.to_owned()),
            ("PLUGBOARD_REGISTRY_ADDR", registry.clone()),
            ("PLUGBOARD_CREDENTIALS_ADDR", credentials.clone()),
            ("PLUGBOARD_HEALTH_ADDR", health.clone()),
            ("PLUGBOARD_MAPPING_ADDR", mapping.clone()),
            (
                "PLUGBOARD_MASTER_KEY",
                base64::engine::general_purpose::STANDARD.encode(master),
            ),
            // The sandboxes listen on loopback.
            ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let mut processes = Vec::new();
        for (name, listen) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
            ("sync", &sync),
        ] {
            processes.push(start(name, &["serve", name], listen, &env, &log_dir, &[]));
        }
        for (name, listen) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
            ("sync", &sync),
        ] {
            serving(name, listen, &log_dir).await?;
        }
        let clients = TenantClients::new(&mesh_key, "partner-mesh-probe");
        let channel = plugboard_runtime::channel::lazy_channel(&registry)?;
        let registry_client = RegistryServiceClient::with_interceptor(channel, clients.credentials);
        for connector in connectors {
            let listen = addr();
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../services/connector-{connector}"))
                .to_string_lossy()
                .into_owned();
            let name = format!("connector-{connector}");
            processes.push(start(
                &name,
                &["connector", "serve", &dir],
                &listen,
                &env,
                &log_dir,
                &[("PLUGBOARD_ADVERTISE_ADDR", listen.clone())],
            ));
            serving(&name, &listen, &log_dir).await?;
            eventually(
                &format!("{name} to register"),
                Duration::from_secs(30),
                || {
                    let mut registry = registry_client.clone();
                    async move {
                        registry
                            .resolve(ResolveRequest {
                                connector: (*connector).to_owned(),
                            })
                            .await
                            .is_ok()
                    }
                },
            )
            .await?;
        }
        Ok(PartnerMesh {
            mesh_key,
            log_dir,
            sync_addr: sync,
            credentials_addr: credentials,
            _processes: processes,
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
        clients
            .credentials(&self.credentials_addr)
            .put_credential(PutCredentialRequest {
                connection_id: connection_id.into(),
                connector: connector.into(),
                secret: Some(secret),
            })
            .await?;
        clients
            .sync(&self.sync_addr)
            .create_sync(CreateSyncRequest {
                connection_id: connection_id.into(),
                connector: connector.into(),
                settings_json: settings.to_string(),
                streams: streams.iter().map(|s| (*s).to_owned()).collect(),
                interval_seconds: 0,
            })
            .await?;
        Ok(())
    }
}

fn start(
    name: &str,
    args: &[&str],
    listen: &str,
    env: &[(String, String)],
    log_dir: &Path,
    extra: &[(&str, String)],
) -> Process {
    let mut env = env.to_vec();
    env.push(("PLUGBOARD_LISTEN_ADDR".into(), listen.to_owned()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Process::start(name, args, &env, log_dir)
}

async fn serving(name: &str, addr: &str, log_dir: &Path) -> anyhow::Result<()> {
    wait_serving(addr, Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e}; logs in {}", log_dir.display()))
}

/// Serves `router` on a loopback port of this process for as long as the test's runtime lives;
/// returns its URL.
pub async fn serve_sandbox(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
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
