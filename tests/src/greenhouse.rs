//! A split-mode mesh around the generic connector serving the Greenhouse folder: registry,
//! credentials, health, mapping, sync and the connector as `plugboard` processes on a fresh
//! PostgreSQL database and Redis, and the Greenhouse sandbox served inside the test process so
//! the test can read and change the partner's data. Sync and the connector can be killed
//! (SIGKILL) and started again on the same address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use plugboard_proto::credentials::v1::{ApiKey, PutCredentialRequest, Secret, secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::CreateSyncRequest;
use plugboard_sandbox::greenhouse::{DEMO_API_KEY, GreenhouseOptions};
use rand::RngCore;
use serde_json::{Value, json};

use crate::flows::Mesh;
use crate::mesh::{TenantClients, wait_serving};
use crate::process::Process;
use crate::sandbox::SandboxAdmin;
use crate::{REDIS_URL, eventually, free_port, fresh_postgres_database};

pub struct GreenhouseMesh {
    pub mesh_key: String,
    pub log_dir: PathBuf,
    pub sync_addr: String,
    pub credentials_addr: String,
    pub sandbox: GreenhouseAdmin,
    env: Vec<(String, String)>,
    registry_addr: String,
    connector_addr: String,
    /// Registry, credentials, health and mapping: they live as long as the mesh.
    _services: Vec<Process>,
    sync: Option<Process>,
    connector: Option<Process>,
}

impl GreenhouseMesh {
    /// Starts everything; `extra_env` goes to every process. Returns once every service
    /// answers SERVING and the connector has registered.
    pub async fn start(extra_env: &[(&str, &str)]) -> anyhow::Result<GreenhouseMesh> {
        let sandbox_url = start_sandbox().await?;
        let database_url = fresh_postgres_database().await?;
        let log_dir = std::env::temp_dir().join(format!("pb-greenhouse-{}", uuid::Uuid::new_v4()));
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        let mesh_key = format!("greenhouse-mesh-key-{}", uuid::Uuid::new_v4().simple());
        let addr = || format!("127.0.0.1:{}", free_port());
        let (registry, credentials, health, mapping, sync, connector) =
            (addr(), addr(), addr(), addr(), addr(), addr());
        let mut env: Vec<(String, String)> = [
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
            ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
            ("PLUGBOARD_ADVERTISE_ADDR", connector.clone()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        env.extend(
            extra_env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        let services = [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
        ]
        .into_iter()
        .map(|(name, listen)| start(name, &["serve", name], listen, &env, &log_dir))
        .collect();
        let mut mesh = GreenhouseMesh {
            mesh_key,
            log_dir,
            sync_addr: sync,
            credentials_addr: credentials.clone(),
            sandbox: GreenhouseAdmin::new(&sandbox_url),
            env,
            registry_addr: registry.clone(),
            connector_addr: connector,
            _services: services,
            sync: None,
            connector: None,
        };
        for (name, addr) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
        ] {
            mesh.wait_serving(name, addr).await?;
        }
        mesh.start_connector().await?;
        mesh.start_sync().await?;
        Ok(mesh)
    }

    /// Starts sync (again) on its address and waits until it serves.
    pub async fn start_sync(&mut self) -> anyhow::Result<()> {
        let process = start(
            "sync",
            &["serve", "sync"],
            &self.sync_addr,
            &self.env,
            &self.log_dir,
        );
        self.sync = Some(process);
        let addr = self.sync_addr.clone();
        self.wait_serving("sync", &addr).await
    }

    /// Kills sync with SIGKILL: no drain, no released claims.
    pub fn kill_sync(&mut self) {
        self.sync = None;
    }

    /// Starts the Greenhouse connector (again) and waits until the registry resolves it.
    pub async fn start_connector(&mut self) -> anyhow::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/connector-greenhouse");
        let dir = dir.to_string_lossy().into_owned();
        let process = start(
            "connector-greenhouse",
            &["connector", "serve", &dir],
            &self.connector_addr,
            &self.env,
            &self.log_dir,
        );
        self.connector = Some(process);
        let addr = self.connector_addr.clone();
        self.wait_serving("connector-greenhouse", &addr).await?;
        let clients = TenantClients::new(&self.mesh_key, "greenhouse-probe");
        let channel = plugboard_runtime::channel::lazy_channel(&self.registry_addr)?;
        let registry = RegistryServiceClient::with_interceptor(channel, clients.credentials);
        eventually(
            "the Greenhouse connector to register",
            Duration::from_secs(30),
            || {
                let mut registry = registry.clone();
                async move {
                    registry
                        .resolve(ResolveRequest {
                            connector: "greenhouse".into(),
                        })
                        .await
                        .is_ok()
                }
            },
        )
        .await
    }

    /// Kills the connector with SIGKILL.
    pub fn kill_connector(&mut self) {
        self.connector = None;
    }

    /// The test flows of `tenant` against this mesh.
    pub fn flows(&self, tenant: &str) -> Mesh {
        Mesh {
            clients: TenantClients::new(&self.mesh_key, tenant),
            sync_addr: self.sync_addr.clone(),
            credentials_addr: self.credentials_addr.clone(),
            sandbox: SandboxAdmin::new(&self.sandbox.base_url),
            sandbox_url: self.sandbox.base_url.clone(),
        }
    }

    /// Stores the sandbox's Harvest key for `connection_id` and defines a manual sync of its
    /// candidates.
    pub async fn connect(
        &self,
        clients: &TenantClients,
        connection_id: &str,
    ) -> anyhow::Result<()> {
        clients
            .credentials(&self.credentials_addr)
            .put_credential(PutCredentialRequest {
                connection_id: connection_id.into(),
                connector: "greenhouse".into(),
                secret: Some(Secret {
                    kind: Some(secret::Kind::ApiKey(ApiKey {
                        key: DEMO_API_KEY.into(),
                    })),
                }),
            })
            .await?;
        let settings = json!({"base_url": self.sandbox.base_url, "on_behalf_of": "4080"});
        clients
            .sync(&self.sync_addr)
            .create_sync(CreateSyncRequest {
                connection_id: connection_id.into(),
                connector: "greenhouse".into(),
                settings_json: settings.to_string(),
                streams: vec!["candidates".into()],
                interval_seconds: 0,
            })
            .await?;
        Ok(())
    }

    pub fn sync_log(&self) -> String {
        self.sync
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }

    async fn wait_serving(&self, name: &str, addr: &str) -> anyhow::Result<()> {
        wait_serving(addr, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}; logs in {}", self.log_dir.display()))
    }
}

fn start(
    name: &str,
    args: &[&str],
    listen: &str,
    env: &[(String, String)],
    log_dir: &Path,
) -> Process {
    let mut env = env.to_vec();
    env.push(("PLUGBOARD_LISTEN_ADDR".into(), listen.to_owned()));
    Process::start(name, args, &env, log_dir)
}

/// Serves the Greenhouse sandbox on a loopback port of this process, for as long as the test's
/// runtime lives; returns its URL.
async fn start_sandbox() -> anyhow::Result<String> {
    let samples =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/partners/greenhouse/harvest");
    let mut options = GreenhouseOptions::new(&samples);
    // The tests count requests, not wait for a budget.
    options.rate_limit = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(plugboard_sandbox::greenhouse::serve(
        listener,
        options,
        std::future::pending(),
    ));
    Ok(url)
}

/// The Greenhouse sandbox's `/_sandbox/` endpoints.
#[derive(Clone)]
pub struct GreenhouseAdmin {
    pub base_url: String,
    http: reqwest::Client,
}

impl GreenhouseAdmin {
    pub fn new(base_url: &str) -> GreenhouseAdmin {
        GreenhouseAdmin {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Every candidate the partner has.
    pub async fn candidates(&self) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/_sandbox/records/candidates", self.base_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        body.get("data")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("sandbox candidates are not a list: {body}"))
    }

    pub async fn candidate(&self, id: &str) -> anyhow::Result<Value> {
        self.candidates()
            .await?
            .into_iter()
            .find(|candidate| {
                candidate["id"]
                    .as_i64()
                    .is_some_and(|n| n.to_string() == id)
            })
            .ok_or_else(|| anyhow::anyhow!("the partner has no candidate {id}"))
    }

    /// An edit made at the partner: `changes` applied and `updated_at` moved to now.
    pub async fn edit(&self, id: &str, changes: Value) -> anyhow::Result<()> {
        let id: i64 = id.parse()?;
        self.http
            .post(format!("{}/_sandbox/touch", self.base_url))
            .json(&json!({"stream": "candidates", "ids": [id], "changes": changes}))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// How many creates and updates the partner has received.
    pub async fn writes(&self) -> anyhow::Result<u64> {
        let stats: Value = self
            .http
            .get(format!("{}/_sandbox/stats", self.base_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        stats["writes"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("sandbox stats have no writes: {stats}"))
    }
}
