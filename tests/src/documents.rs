//! A split-mode mesh for document parsing and cross-category pipelines: registry,
//! credentials, health, mapping and sync as `plugboard serve` processes on a fresh PostgreSQL
//! database and Redis, any number of generic-runtime connectors (`plugboard connector serve
//! services/connector-<name>`), and partner sandboxes served inside the test process so the
//! test can read their counters.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use plugboard_proto::credentials::v1::{PutCredentialRequest, Secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::CreateSyncRequest;
use rand::RngCore;
use serde_json::Value;

use crate::mesh::{TenantClients, wait_serving};
use crate::process::Process;
use crate::{REDIS_URL, eventually, free_port, fresh_postgres_database};

pub struct DocumentMesh {
    pub mesh_key: String,
    pub log_dir: PathBuf,
    pub sync_addr: String,
    pub credentials_addr: String,
    pub mapping_addr: String,
    registry_addr: String,
    database_url: String,
    env: Vec<(String, String)>,
    processes: Vec<Process>,
    /// Appended to tenants: Redis is shared by every test run on the machine.
    tenant_suffix: String,
}

impl DocumentMesh {
    /// Starts registry, credentials, health, mapping and sync; returns once each serves.
    pub async fn start() -> anyhow::Result<DocumentMesh> {
        let database_url = fresh_postgres_database().await?;
        let log_dir = std::env::temp_dir().join(format!("pb-documents-{}", uuid::Uuid::new_v4()));
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        let mesh_key = format!("documents-mesh-key-{}", uuid::Uuid::new_v4().simple());
        let addr = || format!("127.0.0.1:{}", free_port());
        let (registry, credentials, health, mapping, sync) =
            (addr(), addr(), addr(), addr(), addr());
        let env: Vec<(String, String)> = [
            ("PLUGBOARD_DATABASE_URL", database_url.clone()),
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
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let mut mesh = DocumentMesh {
            mesh_key,
            log_dir,
            sync_addr: sync.clone(),
            credentials_addr: credentials.clone(),
            mapping_addr: mapping.clone(),
            registry_addr: registry.clone(),
            database_url,
            env,
            processes: Vec::new(),
            tenant_suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        };
        for (name, listen) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
            ("sync", &sync),
        ] {
            mesh.start_process(name, &["serve", name], listen, &[]);
        }
        for (name, listen) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
            ("sync", &sync),
        ] {
            mesh.wait_serving(name, listen).await?;
        }
        Ok(mesh)
    }

    fn start_process(&mut self, name: &str, args: &[&str], listen: &str, extra: &[(&str, &str)]) {
        let mut env = self.env.clone();
        env.push(("PLUGBOARD_LISTEN_ADDR".into(), listen.to_owned()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.processes
            .push(Process::start(name, args, &env, &self.log_dir));
    }

    /// Serves `services/connector-<connector>` and waits until the registry resolves it.
    pub async fn serve_connector(&mut self, connector: &str) -> anyhow::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../services/connector-{connector}"));
        let dir = dir.to_string_lossy().into_owned();
        let listen = format!("127.0.0.1:{}", free_port());
        let name = format!("connector-{connector}");
        self.start_process(
            &name,
            &["connector", "serve", &dir],
            &listen,
            &[("PLUGBOARD_ADVERTISE_ADDR", &listen)],
        );
        self.wait_serving(&name, &listen).await?;
        let clients = TenantClients::new(&self.mesh_key, "documents-probe");
        let channel = plugboard_runtime::channel::lazy_channel(&self.registry_addr)?;
        let registry = RegistryServiceClient::with_interceptor(channel, clients.credentials);
        eventually(
            &format!("the {connector} connector to register"),
            Duration::from_secs(30),
            || {
                let mut registry = registry.clone();
                let connector = connector.to_owned();
                async move { registry.resolve(ResolveRequest { connector }).await.is_ok() }
            },
        )
        .await
    }

    /// The clients of `tenant`, made unique to this mesh.
    pub fn clients(&self, tenant: &str) -> TenantClients {
        TenantClients::new(&self.mesh_key, &self.tenant_id(tenant))
    }

    /// `tenant` as this mesh names it.
    pub fn tenant_id(&self, tenant: &str) -> String {
        format!("{tenant}-{}", self.tenant_suffix)
    }

    /// Starts the gateway; its URL and an API key of `tenant` (`plugboard tenant create`).
    pub async fn start_gateway(&mut self, tenant: &str) -> anyhow::Result<(String, String)> {
        let listen = format!("127.0.0.1:{}", free_port());
        let sync = self.sync_addr.clone();
        let registry = self.registry_addr.clone();
        self.start_process(
            "gateway",
            &["serve", "gateway"],
            &listen,
            &[
                ("PLUGBOARD_SYNC_ADDR", &sync),
                ("PLUGBOARD_REGISTRY_ADDR", &registry),
            ],
        );
        let api_key = crate::process::run_to_end(
            &[
                "tenant",
                "create",
                "--id",
                &self.tenant_id(tenant),
                "--name",
                tenant,
            ],
            &[(
                "PLUGBOARD_DATABASE_URL".to_owned(),
                self.database_url.clone(),
            )],
        )?
        .trim()
        .to_owned();
        let url = format!("http://{listen}");
        let healthz = format!("{url}/healthz");
        eventually("the gateway to answer", Duration::from_secs(30), || {
            let healthz = healthz.clone();
            async move { reqwest::get(healthz).await.is_ok() }
        })
        .await?;
        Ok((url, api_key))
    }

    /// Stores `secret` for the connection and defines its (manual, stream-less) sync.
    pub async fn connect(
        &self,
        clients: &TenantClients,
        connection_id: &str,
        connector: &str,
        secret: Secret,
        settings: &Value,
    ) -> anyhow::Result<()> {
        self.connect_streams(clients, connection_id, connector, secret, settings, &[])
            .await
    }

    /// As [`DocumentMesh::connect`], syncing `streams` (all when empty).
    pub async fn connect_streams(
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

    async fn wait_serving(&self, name: &str, addr: &str) -> anyhow::Result<()> {
        wait_serving(addr, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}; logs in {}", self.log_dir.display()))
    }
}

/// Serves `router` on a loopback port of this process for the test's lifetime; its URL.
pub async fn serve_sandbox(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

/// A sandbox's `/_sandbox/stats` counters.
pub async fn sandbox_stats(base_url: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The shared partner material, beside the checkout.
pub fn partners() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/partners")
}
