//! The registry on a real tonic server, on SQLite and on PostgreSQL.

// Helpers shared by the tests panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use plugboard_proto::error::reason_of;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::registry::v1::{
    ConnectorManifest, GetConnectorRequest, HeartbeatRequest, ListConnectorsRequest,
    MappingSpecFile, RegisterRequest, ResolveRequest, StreamInfo,
};
use plugboard_registry::service::Registry;
use plugboard_registry::store::Store;
use plugboard_registry::{Config, run};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use sqlx::Row;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KEY: &str = "registry-test-mesh-key-of-32-bytes-or-more";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

type Client = RegistryServiceClient<InterceptedService<Channel, MeshCredentials>>;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), plugboard_registry::Error>>,
}

impl Server {
    async fn start(database_url: &str, schema: &str, ttl: Duration) -> Server {
        let mut config = Config::new(database_url, SecretString::from(KEY.to_owned()));
        config.database_schema = schema.to_owned();
        config.liveness_ttl = ttl;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, listener, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> Client {
        let key = MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap();
        let channel = plugboard_runtime::channel::lazy_channel(&self.addr.to_string()).unwrap();
        RegistryServiceClient::with_interceptor(channel, MeshCredentials::service(key, "test"))
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn manifest(version: &str) -> ConnectorManifest {
    ConnectorManifest {
        name: "bullhorn".to_owned(),
        display_name: "Bullhorn".to_owned(),
        category: "ats".to_owned(),
        version: version.to_owned(),
        streams: vec![StreamInfo {
            name: "Candidate".to_owned(),
            entity: "candidate".to_owned(),
            cursor_field: "dateLastModified".to_owned(),
        }],
        mapping_specs: vec![MappingSpecFile {
            name: "candidate.inbound.yaml".to_owned(),
            yaml: format!("# spec of {version}\nentity: candidate\n"),
        }],
        settings_schema_json: r#"{"type":"object"}"#.to_owned(),
        credential_kind: "oauth2_client".to_owned(),
        oauth_authorization: None,
        receives_webhooks: false,
        client_secret_in_body: false,
    }
}

fn register(version: &str, instance_id: &str, address: &str) -> RegisterRequest {
    RegisterRequest {
        manifest: Some(manifest(version)),
        instance_id: instance_id.to_owned(),
        address: address.to_owned(),
    }
}

fn resolve(connector: &str) -> ResolveRequest {
    ResolveRequest {
        connector: connector.to_owned(),
    }
}

fn heartbeat(instance_id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        instance_id: instance_id.to_owned(),
    }
}

fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("pb-registry-{}", uuid::Uuid::new_v4()));
    plugboard_runtime::storage::sqlite_url(&dir, "registry")
}

/// Register two instances, keep one alive, let the other lapse, then let both lapse.
async fn lifecycle(database_url: &str, schema: &str) {
    let ttl = Duration::from_secs(1);
    let server = Server::start(database_url, schema, ttl).await;
    let mut client = server.client().await;

    let response = client
        .register(register("1.0.0", "i-1", "127.0.0.1:7001"))
        .await
        .unwrap();
    assert_eq!(response.get_ref().liveness_ttl_seconds, 1);
    client
        .register(register("1.0.0", "i-2", "127.0.0.1:7002"))
        .await
        .unwrap();

    // Both are live: successive resolutions rotate through them.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let resolved = client
            .resolve(resolve("bullhorn"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resolved.version, "1.0.0");
        seen.push(resolved.address);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["127.0.0.1:7001", "127.0.0.1:7002"]);

    // Only i-1 keeps beating; after the TTL, i-2 is never resolved.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.heartbeat(heartbeat("i-1")).await.unwrap();
    }
    for _ in 0..4 {
        let resolved = client
            .resolve(resolve("bullhorn"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resolved.instance_id, "i-1");
        assert_eq!(resolved.address, "127.0.0.1:7001");
    }
    let listed = client
        .list_connectors(ListConnectorsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.connectors.len(), 1);
    assert_eq!(listed.connectors[0].live_instances, 1);

    // i-2 lapsed, so its heartbeat is refused and it must register again.
    let status = client.heartbeat(heartbeat("i-2")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("INSTANCE_NOT_FOUND"));

    // Now i-1 stops too.
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let status = client.resolve(resolve("bullhorn")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason_of(&status).as_deref(), Some("NO_LIVE_INSTANCE"));
    assert!(
        status.message().contains("bullhorn"),
        "{}",
        status.message()
    );
    let status = client.heartbeat(heartbeat("i-1")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The manifest outlives its instances.
    let entry = client
        .get_connector(GetConnectorRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    assert_eq!(entry.manifest.unwrap(), manifest("1.0.0"));
    assert_eq!(entry.live_instances, 0);
    assert!(!entry.last_seen_at.is_empty());

    // The reaper has marked both gone in storage (it runs every third of the TTL).
    let table = if database_url.starts_with("postgres") {
        format!("{schema}.instances")
    } else {
        "instances".to_owned()
    };
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE gone = 1");
    let count: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);

    // Registering again brings the instance back.
    client
        .register(register("1.0.0", "i-1", "127.0.0.1:7001"))
        .await
        .unwrap();
    client.heartbeat(heartbeat("i-1")).await.unwrap();
    let resolved = client
        .resolve(resolve("bullhorn"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.instance_id, "i-1");

    server.stop().await;
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(&temp_sqlite(), "registry").await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    let schema = format!("registry_t{}", uuid::Uuid::new_v4().simple());
    lifecycle(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let server = Server::start(&temp_sqlite(), "registry", Duration::from_secs(15)).await;
    let mut client = server.client().await;

    let status = client.heartbeat(heartbeat("never-seen")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("INSTANCE_NOT_FOUND"));

    let mut bad = register("1.0.0", "i-1", "127.0.0.1:7001");
    bad.manifest.as_mut().unwrap().category = "crm".to_owned();
    let status = client.register(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason_of(&status).as_deref(), Some("INVALID_REGISTRATION"));
    assert!(
        status.message().contains("manifest.category"),
        "{}",
        status.message()
    );

    let status = client
        .register(register("1.0.0", "i-1", "no-port"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("address"),
        "{}",
        status.message()
    );

    let mut bad = register("1.0.0", "i-1", "127.0.0.1:7001");
    bad.manifest = None;
    let status = client.register(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let status = client
        .get_connector(GetConnectorRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("CONNECTOR_NOT_FOUND"));

    let status = client.resolve(resolve("bullhorn")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Without a service token nothing gets through.
    let channel = plugboard_runtime::channel::lazy_channel(&server.addr.to_string()).unwrap();
    let mut anonymous = RegistryServiceClient::new(channel);
    let status = anonymous
        .list_connectors(ListConnectorsRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = anonymous
        .register(register("1.0.0", "i-1", "127.0.0.1:7001"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    server.stop().await;
}

/// Version handling and the reaper, with the clock moved by hand instead of slept through.
#[tokio::test]
async fn newer_versions_replace_the_manifest_and_older_ones_do_not_while_it_runs() {
    let store = Store::open(&temp_sqlite(), "registry").await.unwrap();
    let registry = Registry::new(store, Duration::from_secs(15));
    let start = Utc::now();

    registry
        .register(manifest("1.9.0"), "old", "10.0.0.1:50061", start)
        .await
        .unwrap();
    registry
        .register(manifest("1.10.0"), "new", "10.0.0.2:50061", start)
        .await
        .unwrap();
    let entry = registry.connector("bullhorn", start).await.unwrap();
    assert_eq!(entry.manifest.version, "1.10.0");
    assert_eq!(entry.live_instances, 2);

    // The old instance re-registering while 1.10.0 runs leaves the manifest alone.
    registry
        .register(manifest("1.9.0"), "old", "10.0.0.1:50061", start)
        .await
        .unwrap();
    let entry = registry.connector("bullhorn", start).await.unwrap();
    assert_eq!(entry.manifest, manifest("1.10.0"));

    // Twenty seconds later, without heartbeats, both are gone; the reaper marks each once.
    let later = start + chrono::Duration::seconds(20);
    assert!(matches!(
        registry.resolve("bullhorn", later).await,
        Err(plugboard_registry::Error::NoLiveInstance { .. })
    ));
    assert_eq!(registry.reap(later).await.unwrap(), 2);
    assert_eq!(registry.reap(later).await.unwrap(), 0);
    assert_eq!(
        registry.connectors(later).await.unwrap()[0].live_instances,
        0
    );

    // A rollback: nothing runs 1.10.0 any more, so 1.9.0 becomes the manifest again.
    registry
        .register(manifest("1.9.0"), "old", "10.0.0.1:50061", later)
        .await
        .unwrap();
    let entry = registry.connector("bullhorn", later).await.unwrap();
    assert_eq!(entry.manifest.version, "1.9.0");
    assert_eq!(entry.live_instances, 1);
    let resolved = registry.resolve("bullhorn", later).await.unwrap();
    assert_eq!(resolved.instance_id, "old");
    assert_eq!(resolved.version, "1.9.0");
}

/// Rollouts mint new instance ids; long-gone ones are pruned, a live one never is, and each
/// connector keeps its most recent instance so "last seen" survives.
#[tokio::test]
async fn pruning_on_sqlite() {
    long_gone_instances_are_pruned_but_the_latest_and_the_live_stay(&temp_sqlite(), "registry")
        .await;
}

#[tokio::test]
async fn pruning_on_postgres() {
    let schema = format!("registry_p{}", uuid::Uuid::new_v4().simple());
    long_gone_instances_are_pruned_but_the_latest_and_the_live_stay(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

async fn long_gone_instances_are_pruned_but_the_latest_and_the_live_stay(
    database_url: &str,
    schema: &str,
) {
    let store = Store::open(database_url, schema).await.unwrap();
    let registry = Registry::new(store, Duration::from_secs(15))
        .with_gone_retention(Duration::from_secs(3600));
    let start = Utc::now();
    for (minute, instance) in ["pod-a", "pod-b", "pod-c"].into_iter().enumerate() {
        let at = start + chrono::Duration::minutes(minute as i64);
        registry
            .register(manifest("1.0.0"), instance, "10.0.0.1:50061", at)
            .await
            .unwrap();
    }
    let mut other = manifest("2.0.0");
    other.name = "greenhouse".into();
    registry
        .register(other, "gh-pod", "10.0.0.9:50061", start)
        .await
        .unwrap();

    // Within the retention nothing goes, even gone instances.
    let soon = start + chrono::Duration::minutes(10);
    assert_eq!(registry.reap(soon).await.unwrap(), 4);
    assert_eq!(registry.prune(soon).await.unwrap(), 0);

    // Two hours on: bullhorn's two older pods go; its latest and greenhouse's only one stay.
    let later = start + chrono::Duration::hours(2);
    assert_eq!(registry.prune(later).await.unwrap(), 2);
    assert_eq!(registry.prune(later).await.unwrap(), 0);
    let entries = registry.connectors(later).await.unwrap();
    let last_seen: Vec<(String, bool)> = entries
        .iter()
        .map(|e| (e.manifest.name.clone(), !e.last_seen_at.is_empty()))
        .collect();
    assert_eq!(
        last_seen,
        vec![
            ("bullhorn".to_owned(), true),
            ("greenhouse".to_owned(), true)
        ]
    );

    // A pod registering again after its row was pruned is simply new, and live.
    registry
        .register(manifest("1.0.0"), "pod-a", "10.0.0.1:50061", later)
        .await
        .unwrap();
    assert_eq!(
        registry
            .resolve("bullhorn", later)
            .await
            .unwrap()
            .instance_id,
        "pod-a"
    );
    // pod-c was kept only as the most recent; now pod-a is, so pod-c goes and pod-a stays.
    assert_eq!(registry.prune(later).await.unwrap(), 1);
    assert_eq!(
        registry
            .resolve("bullhorn", later)
            .await
            .unwrap()
            .instance_id,
        "pod-a"
    );
}
