//! `plugboard dev`: the whole mesh in one process, for a newcomer's first run.
//!
//! Every service listens on its own loopback port exactly as in split mode and talks to the
//! others over gRPC; only the storage (one SQLite file per service under `--data-dir`) and the
//! coordination (in-process instead of Redis) differ. The Bullhorn sandbox stands in for the
//! partner, and a demo tenant is seeded with a Bullhorn connection whose first sync runs at once.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{OAuth2Client, PutCredentialRequest, Secret, secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::sync_service_client::SyncServiceClient;
use plugboard_proto::sync::v1::{CreateSyncRequest, TriggerRunRequest};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::connector_keys::{ConnectorKeys, ConnectorSigningKey};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use plugboard_runtime::storage::sqlite_url;
use rand::RngCore;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

const DEMO_TENANT: &str = "demo";
const DEMO_CONNECTION: &str = "demo-bullhorn";
/// Scheduled every five minutes, so the dashboard keeps moving while someone looks at it.
const DEMO_INTERVAL_SECONDS: u32 = 300;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the SQLite files and the generated dev keys live.
    #[arg(long, default_value = ".plugboard")]
    data_dir: PathBuf,
    /// Where the gateway (dashboard and REST API) listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway_addr: SocketAddr,
    /// The demo tenant's API key, for the dashboard login and the REST API.
    #[arg(
        long,
        default_value = "pb_demo_0123456789abcdef",
        env = "PLUGBOARD_DEMO_API_KEY"
    )]
    demo_api_key: String,
    /// Where the Bullhorn sandbox listens. Unset: where it listened on the last start (kept in
    /// the data directory, so connections made on the Connect page keep working after a
    /// restart), or a free loopback port the first time.
    #[arg(long)]
    sandbox_addr: Option<SocketAddr>,
    /// Records per page a sync asks the connector for (the full-sync benchmark sets it).
    #[arg(
        long,
        default_value_t = 200,
        env = "PLUGBOARD_SYNC_PAGE_SIZE",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    sync_page_size: u32,
}

/// The loopback listeners of every service, bound before any service starts so each can be
/// told where the others are.
struct Listeners {
    credentials: TcpListener,
    mapping: TcpListener,
    sync: TcpListener,
    health: TcpListener,
    registry: TcpListener,
    connector: TcpListener,
    sandbox: TcpListener,
    gateway: TcpListener,
}

pub async fn run(args: DevArgs) -> ExitCode {
    let env = plugboard_runtime::config::Env::from_process().unwrap_or_default();
    let _telemetry = match plugboard_runtime::telemetry::init("plugboard-dev", &env) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("plugboard dev: {error}");
            return ExitCode::from(78);
        }
    };
    match start(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plugboard dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let _data_dir_lock = lock_data_dir(&args.data_dir)?;
    let mesh_secret = dev_key(&args.data_dir, "mesh.key", 48)?;
    let master_secret = dev_key(&args.data_dir, "master.key", 32)?;
    let mesh_key = MeshKey::new(&mesh_secret)?;

    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let listeners = Listeners {
        credentials: bind(loopback(0)).await?,
        mapping: bind(loopback(0)).await?,
        sync: bind(loopback(0)).await?,
        health: bind(loopback(0)).await?,
        registry: bind(loopback(0)).await?,
        connector: bind(loopback(0)).await?,
        sandbox: bind_sandbox(args.sandbox_addr, &args.data_dir).await?,
        gateway: bind(args.gateway_addr).await.with_context(
            || "is another plugboard running? pass --gateway-addr to choose another port",
        )?,
    };
    let addr = |listener: &TcpListener| -> anyhow::Result<String> {
        Ok(listener.local_addr()?.to_string())
    };
    let credentials_addr = addr(&listeners.credentials)?;
    let mapping_addr = addr(&listeners.mapping)?;
    let sync_addr = addr(&listeners.sync)?;
    let health_addr = addr(&listeners.health)?;
    let registry_addr = addr(&listeners.registry)?;
    let connector_addr = addr(&listeners.connector)?;
    let sandbox_url = format!("http://{}", addr(&listeners.sandbox)?);
    let gateway_addr = addr(&listeners.gateway)?;
    let db = |service: &str| sqlite_url(&args.data_dir, service);

    // Opened once here and shared with the gateway, so its migrations run once.
    let tenants = plugboard_gateway::TenantStore::open(&db("gateway")).await?;

    let (stop, stopped) = watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut services = JoinSet::new();

    // The connector proves itself to credentials with its own key, made fresh on every start:
    // both ends are in this process, so nothing needs to be stored.
    let (bullhorn_key, _) = ConnectorSigningKey::generate();

    spawn(&mut services, "registry", {
        let mut config = plugboard_registry::Config::new(db("registry"), mesh_secret.clone());
        config.listen_addr = listeners.registry.local_addr()?;
        plugboard_registry::run(config, listeners.registry, shutdown())
    });
    spawn(&mut services, "credentials", {
        let mut config = plugboard_credentials::Config::new(
            listeners.credentials.local_addr()?,
            db("credentials"),
            mesh_secret.clone(),
            master_secret.clone(),
        );
        config.health_addr = Some(health_addr.clone());
        config.connector_keys = Some(ConnectorKeys::of([("bullhorn", &bullhorn_key)]));
        // The sandboxes' token endpoints are on loopback.
        config.allow_private_targets = true;
        plugboard_credentials::run(config, listeners.credentials, shutdown())
    });
    spawn(&mut services, "health", {
        let mut config = plugboard_health::Config::new(db("health"), mesh_secret.clone());
        config.listen_addr = listeners.health.local_addr()?;
        plugboard_health::run(config, listeners.health, shutdown())
    });
    spawn(&mut services, "mapping", {
        let config = plugboard_mapping::Config::new(
            listeners.mapping.local_addr()?,
            mesh_secret.clone(),
            registry_addr.clone(),
            db("mapping"),
        );
        plugboard_mapping::run(config, listeners.mapping, shutdown())
    });
    spawn(&mut services, "sync", {
        let config = plugboard_sync::Config {
            listen_addr: listeners.sync.local_addr()?,
            database_url: db("sync"),
            mesh_key: mesh_secret.clone(),
            redis_url: None,
            registry_addr: registry_addr.clone(),
            mapping_addr: mapping_addr.clone(),
            health_addr: health_addr.clone(),
            scheduler_tick: Duration::from_secs(5),
            page_size: args.sync_page_size,
            lease_ttl: Duration::from_secs(30),
            push: plugboard_sync::config::PushOptions::default(),
        };
        plugboard_sync::run(config, listeners.sync, shutdown())
    });
    // TODO(#8): the CV parser and VMS sandboxes and connectors are not served here yet; the
    // tests serve them (tests/tests/documents.rs, tests/tests/cv_to_vms.rs).
    spawn(&mut services, "sandbox-bullhorn", {
        let options = plugboard_sandbox::SandboxOptions::default();
        plugboard_sandbox::serve(listeners.sandbox, options, shutdown())
    });
    spawn(&mut services, "connector-bullhorn", {
        let loaded = crate::bundled::find("connector-bullhorn")
            .context("the Bullhorn manifest is not compiled into this binary")?
            .load()?;
        let mut config = plugboard_connector_runtime::Config::new(
            "connector-bullhorn".into(),
            listeners.connector.local_addr()?,
            mesh_secret.clone(),
        );
        config.advertise_addr = Some(connector_addr.clone());
        config.registry_addr = registry_addr.clone();
        config.credentials_addr = credentials_addr.clone();
        config.signing_key = Some(bullhorn_key.clone());
        // The sandbox is on loopback; only dev mode and tests allow that.
        config.allow_private_targets = true;
        // Stable across restarts, so the new process replaces the old registration at once
        // instead of sharing Resolve with a dead address until its liveness runs out.
        config.instance_id = Some("bullhorn-dev".to_owned());
        plugboard_connector_runtime::serve_loaded(config, loaded, listeners.connector, shutdown())
    });
    spawn(&mut services, "gateway", {
        let config = plugboard_gateway::Config {
            listen_addr: listeners.gateway.local_addr()?,
            database_url: db("gateway"),
            mesh_key: mesh_secret.clone(),
            credentials_addr: credentials_addr.clone(),
            mapping_addr: mapping_addr.clone(),
            sync_addr: sync_addr.clone(),
            health_addr: health_addr.clone(),
            registry_addr: registry_addr.clone(),
            // Reached at the printed loopback address over http.
            public_url: None,
            // One process: its own count is the whole webhook budget.
            redis_url: None,
            webhook_budget: plugboard_gateway::webhook_budget::DeliveryBudget::default(),
        };
        plugboard_gateway::run_with_store(config, tenants.clone(), listeners.gateway, shutdown())
    });

    let seeded = seed_demo(
        &args,
        &mesh_key,
        &tenants,
        &credentials_addr,
        &registry_addr,
        &sync_addr,
        &sandbox_url,
    )
    .await;
    if let Err(error) = &seeded {
        eprintln!("plugboard dev: seeding the demo tenant failed: {error:#}");
    }

    println!("plugboard dev is up (data in {})", args.data_dir.display());
    println!("  dashboard  http://{gateway_addr}/  (log in with the demo API key)");
    println!("  api key    {}", args.demo_api_key);
    println!(
        "  api        curl -H 'Authorization: Bearer {}' http://{gateway_addr}/api/v1/integrations",
        args.demo_api_key
    );
    for (name, service_addr) in [
        ("credentials", &credentials_addr),
        ("mapping", &mapping_addr),
        ("sync", &sync_addr),
        ("health", &health_addr),
        ("registry", &registry_addr),
        ("connector-bullhorn", &connector_addr),
    ] {
        println!("  service {name} {service_addr}");
    }
    println!("  sandbox bullhorn {sandbox_url}");
    println!("press ctrl-c to stop");

    tokio::select! {
        () = plugboard_runtime::server::shutdown_signal() => {}
        Some(joined) = services.join_next() => {
            // A service that stops on its own takes the whole dev process down with it, loudly.
            let _ = stop.send(true);
            match joined {
                Ok((name, Err(error))) => anyhow::bail!("{name} stopped: {error}"),
                Ok((name, Ok(()))) => anyhow::bail!("{name} stopped unexpectedly"),
                Err(error) => anyhow::bail!("a service panicked: {error}"),
            }
        }
    }
    let _ = stop.send(true);
    while services.join_next().await.is_some() {}
    seeded
}

async fn seed_demo(
    args: &DevArgs,
    mesh_key: &MeshKey,
    tenants: &plugboard_gateway::TenantStore,
    credentials_addr: &str,
    registry_addr: &str,
    sync_addr: &str,
    sandbox_url: &str,
) -> anyhow::Result<()> {
    tenants.ensure_tenant(DEMO_TENANT, "Demo Staffing").await?;
    tenants
        .add_api_key(DEMO_TENANT, &args.demo_api_key, "demo")
        .await?;

    let identity = MeshCredentials::service(mesh_key.clone(), "plugboard-dev");
    let demo = identity.for_tenant(DEMO_TENANT);
    let mut credentials =
        CredentialsServiceClient::with_interceptor(lazy_channel(credentials_addr)?, demo.clone());
    credentials
        .put_credential(PutCredentialRequest {
            connection_id: DEMO_CONNECTION.into(),
            connector: "bullhorn".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                    client_id: plugboard_sandbox::bullhorn::DEMO_CLIENT_ID.into(),
                    client_secret: plugboard_sandbox::bullhorn::DEMO_CLIENT_SECRET.into(),
                    token_url: format!("{sandbox_url}/oauth/token"),
                    scopes: Vec::new(),
                    username: plugboard_sandbox::bullhorn::DEMO_USERNAME.into(),
                    password: plugboard_sandbox::bullhorn::DEMO_PASSWORD.into(),
                    token_parameters: Default::default(),
                    client_secret_in_body: false,
                    client_certificate: None,
                })),
            }),
        })
        .await
        .context("storing the demo Bullhorn credential")?;

    // The first run needs the connector registered; it registers right after it starts.
    let mut registry =
        RegistryServiceClient::with_interceptor(lazy_channel(registry_addr)?, identity.clone());
    let mut registered = false;
    for _ in 0..50 {
        let resolve = registry.resolve(ResolveRequest {
            connector: "bullhorn".into(),
        });
        if resolve.await.is_ok() {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        registered,
        "the Bullhorn connector did not register within 5 s"
    );

    let mut sync = SyncServiceClient::with_interceptor(lazy_channel(sync_addr)?, demo);
    let settings = serde_json::json!({ "auth_url": sandbox_url, "login_url": sandbox_url });
    sync.create_sync(CreateSyncRequest {
        connection_id: DEMO_CONNECTION.into(),
        connector: "bullhorn".into(),
        settings_json: settings.to_string(),
        streams: Vec::new(),
        interval_seconds: DEMO_INTERVAL_SECONDS,
    })
    .await
    .context("defining the demo sync")?;
    match sync
        .trigger_run(TriggerRunRequest {
            connection_id: DEMO_CONNECTION.into(),
        })
        .await
    {
        Ok(_) => Ok(()),
        // The scheduler got there first: the first sync is running either way.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
        Err(status) => Err(anyhow::anyhow!("starting the first demo sync: {status}")),
    }
}

fn spawn<E: std::fmt::Display + Send + 'static>(
    services: &mut JoinSet<(&'static str, Result<(), String>)>,
    name: &'static str,
    service: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    services.spawn(async move { (name, service.await.map_err(|e| e.to_string())) });
}

/// Holds an exclusive lock on the data directory for the life of the process: two dev processes
/// on one directory would each believe they are the only replica.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("plugboard.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another plugboard dev is using {}: stop it, or pass another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// The sandbox's listener: at `given`, else at the address the last start used (the partner
/// URL every dev connection's settings hold), else on a free port, which is then remembered.
async fn bind_sandbox(given: Option<SocketAddr>, data_dir: &Path) -> anyhow::Result<TcpListener> {
    if let Some(addr) = given {
        return bind(addr).await;
    }
    let remembered_at = data_dir.join("sandbox-addr");
    let remembered = std::fs::read_to_string(&remembered_at)
        .ok()
        .and_then(|text| text.trim().parse::<SocketAddr>().ok());
    let listener = match remembered {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%addr, error = %error, "the sandbox's last address is taken; \
                    connections made before this start point at the old one");
                bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?
            }
        },
        None => bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
    };
    std::fs::write(&remembered_at, listener.local_addr()?.to_string())
        .with_context(|| format!("cannot write {}", remembered_at.display()))?;
    Ok(listener)
}

/// A random key kept in the data directory, so credentials encrypted by one dev run can be
/// read by the next. Created readable by the owner only.
fn dev_key(data_dir: &Path, name: &str, bytes: usize) -> anyhow::Result<SecretString> {
    let dir = data_dir.join("keys");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    let mut key = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut key);
    let encoded = base64::engine::general_purpose::STANDARD.encode(key);
    write_private(&path, &encoded)
        .with_context(|| format!("cannot write the dev key {}", path.display()))?;
    Ok(SecretString::from(encoded))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sandbox_listens_where_it_did_on_the_last_start() {
        let data_dir = std::env::temp_dir().join(format!("pb-dev-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data_dir).unwrap();
        let first = bind_sandbox(None, &data_dir).await.unwrap();
        let addr = first.local_addr().unwrap();
        drop(first);
        let second = bind_sandbox(None, &data_dir).await.unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        // Taken by something else: another free port, remembered from then on.
        let third = bind_sandbox(None, &data_dir).await.unwrap();
        assert_ne!(third.local_addr().unwrap(), addr);
        let remembered = std::fs::read_to_string(data_dir.join("sandbox-addr")).unwrap();
        assert_eq!(remembered, third.local_addr().unwrap().to_string());
        let _ = std::fs::remove_dir_all(data_dir);
    }
}
