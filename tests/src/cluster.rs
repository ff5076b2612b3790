//! A split-mode cluster for the deployment tests: every service its own `plugboard serve`
//! process on a fresh PostgreSQL database and Redis, any number of sync replicas, and processes
//! that are stopped the way an orchestrator stops them (SIGTERM, then a grace period).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use base64::Engine;
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use rand::RngCore;

use crate::flows::Mesh;
use crate::mesh::{TenantClients, wait_serving};
use crate::process::plugboard_bin;
use crate::sandbox::SandboxAdmin;
use crate::{REDIS_URL, free_port, fresh_postgres_database};

/// One `plugboard serve <service>` process; killed on drop if still running.
pub struct Node {
    pub name: String,
    pub addr: String,
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(name: &str, service: &str, addr: &str, env: &[(String, String)], logs: &Path) -> Node {
        std::fs::create_dir_all(logs).expect("log directory");
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(plugboard_bin());
        command
            .args(["serve", service])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PLUGBOARD_LOG", "info")
            .env("PLUGBOARD_LISTEN_ADDR", addr)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file);
        let child = command.spawn().expect("the plugboard binary starts");
        Node {
            name: name.to_owned(),
            addr: addr.to_owned(),
            child,
            log,
        }
    }

    /// Sends SIGTERM, as Kubernetes and `docker stop` do. std has no signal API and the tests
    /// use no unsafe code, so this goes through the `kill` command.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Sends SIGKILL: the process dies at once, with no chance to release anything.
    pub fn kill_hard(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -KILL {} failed", self.child.id());
        Ok(())
    }

    /// Sends SIGSTOP: the process freezes mid-work, as a stalled VM or a long pause would
    /// make it, holding whatever it held; [`Node::resume`] lets it go on.
    pub fn suspend(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Sends SIGCONT to a suspended process.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The services of one split-mode cluster (no gateway: these tests speak gRPC only).
pub struct Cluster {
    pub mesh_key: String,
    /// Appended to every tenant this cluster's meshes act for: Redis is shared by every test
    /// run on the machine and run leases are keyed by tenant and connection, so two runs of one
    /// test must not share a tenant.
    tenant_suffix: String,
    pub log_dir: PathBuf,
    pub registry: Node,
    pub credentials: Node,
    pub health: Node,
    pub mapping: Node,
    pub connector: Node,
    pub sandbox: Node,
    pub syncs: Vec<Node>,
}

impl Cluster {
    /// Starts the cluster with `sync_replicas` sync processes sharing PostgreSQL and Redis;
    /// `extra_env` goes to every process. Returns once every service answers SERVING.
    pub async fn start(
        sync_replicas: usize,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Cluster> {
        let database_url = fresh_postgres_database().await?;
        let log_dir = std::env::temp_dir().join(format!("pb-cluster-{}", uuid::Uuid::new_v4()));
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        let mesh_key = format!("cluster-mesh-key-{}", uuid::Uuid::new_v4().simple());
        let addr = || format!("127.0.0.1:{}", free_port());
        let (registry, credentials, health, mapping, connector, sandbox) =
            (addr(), addr(), addr(), addr(), addr(), addr());
        let sync_addrs: Vec<String> = (0..sync_replicas).map(|_| addr()).collect();

        let mut env: Vec<(String, String)> = [
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
            ("PLUGBOARD_ADVERTISE_ADDR", connector.clone()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        // Leases need the connector's proof, as in a deployment.
        env.extend(crate::connector_identity_env("bullhorn"));
        env.extend(
            extra_env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        let node = |name: &str, service: &str, listen: &str| {
            Node::start(name, service, listen, &env, &log_dir)
        };
        let cluster = Cluster {
            sandbox: node("sandbox-bullhorn", "sandbox-bullhorn", &sandbox),
            registry: node("registry", "registry", &registry),
            credentials: node("credentials", "credentials", &credentials),
            health: node("health", "health", &health),
            mapping: node("mapping", "mapping", &mapping),
            connector: node("connector-bullhorn", "connector-bullhorn", &connector),
            syncs: sync_addrs
                .iter()
                .enumerate()
                .map(|(index, listen)| node(&format!("sync-{index}"), "sync", listen))
                .collect(),
            mesh_key,
            tenant_suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            log_dir,
        };
        let grpc_nodes = [
            &cluster.registry,
            &cluster.credentials,
            &cluster.health,
            &cluster.mapping,
            &cluster.connector,
        ];
        for node in grpc_nodes.into_iter().chain(cluster.syncs.iter()) {
            wait_serving(&node.addr, Duration::from_secs(60))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("{}: {e}; logs in {}", node.name, cluster.log_dir.display())
                })?;
        }
        // Runs resolve the connector through the registry: wait until it has registered.
        let clients = TenantClients::new(&cluster.mesh_key, "cluster-probe");
        let channel = plugboard_runtime::channel::lazy_channel(&cluster.registry.addr)?;
        let registry = RegistryServiceClient::with_interceptor(channel, clients.credentials);
        crate::eventually(
            "the Bullhorn connector to register",
            Duration::from_secs(30),
            || {
                let mut registry = registry.clone();
                async move {
                    registry
                        .resolve(ResolveRequest {
                            connector: "bullhorn".into(),
                        })
                        .await
                        .is_ok()
                }
            },
        )
        .await?;
        Ok(cluster)
    }

    pub fn sandbox_url(&self) -> String {
        format!("http://{}", self.sandbox.addr)
    }

    /// The test flows for `tenant` (made unique to this cluster), talking to sync replica
    /// `sync_index`.
    pub fn mesh(&self, tenant: &str, sync_index: usize) -> Mesh {
        let tenant = format!("{tenant}-{}", self.tenant_suffix);
        Mesh {
            clients: TenantClients::new(&self.mesh_key, &tenant),
            sync_addr: self.syncs[sync_index].addr.clone(),
            credentials_addr: self.credentials.addr.clone(),
            sandbox: SandboxAdmin::new(&self.sandbox_url()),
            sandbox_url: self.sandbox_url(),
        }
    }
}
