//! `LeaseAccess` latency under concurrent load against an empty RPC on the same server.
//!
//! A real credentials server on 127.0.0.1:0 serves both, first over SQLite (a temp file), then
//! over PostgreSQL (a fresh database on `PLUGBOARD_TEST_POSTGRES_URL`'s server, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, created for the run and dropped after; skipped
//! with a line saying so when the server cannot be reached). Pass `sqlite` or `postgres` after
//! `--` to run one only. The empty RPC
//! is `grpc.health.v1.Health/Check`, which every service carries and which does no work beyond
//! a map lookup. `LeaseAccess` leases an API key (store read, AES-GCM open with the cached
//! tenant data key, audit row spooled before the answer, see `src/audit`) the way a connector does (`connector-runtime`'s `Access`):
//! a mesh token plus the connector's Ed25519 proof, built from one mesh key and one signing key
//! held for the process, checked by a server that knows the connector's public key, as dev mode
//! and the generated deployments run it. Both run the same load:
//! CLIENTS concurrent tasks on one HTTP/2 channel each, each sending REQUESTS calls one after
//! another, after a warm-up. Run with `cargo bench -p plugboard-credentials --bench lease`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, LeaseAccessRequest, PutCredentialRequest, Secret, secret,
};
use plugboard_runtime::connector_keys::{ConnectorKeys, ConnectorSigningKey};
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use secrecy::SecretString;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const MESH_KEY: &str = "credentials-bench-mesh-key-32-bytes-or-more";
const CLIENTS: usize = 16;
const REQUESTS: usize = 3000;
const WARMUP: usize = 30;

fn mesh_key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

/// A caller acting for the bench tenant; a connector when `connector` is given.
fn caller(subject: &str, connector: Option<&str>) -> Caller {
    Caller {
        subject: subject.to_owned(),
        tenant: Some("acme".to_owned()),
        connector: connector.map(str::to_owned),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `call` from CLIENTS concurrent tasks; returns (p50, p99, calls per second).
async fn load<F, Fut>(channels: &[Channel], call: F) -> (Duration, Duration, f64)
where
    F: Fn(Channel) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = channels
        .iter()
        .cloned()
        .map(|channel| {
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..WARMUP {
                    call(channel.clone()).await;
                }
                let mut latencies = Vec::with_capacity(REQUESTS);
                for _ in 0..REQUESTS {
                    let begun = Instant::now();
                    call(channel.clone()).await;
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CLIENTS * REQUESTS);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let rate = (CLIENTS * (REQUESTS + WARMUP)) as f64 / elapsed;
    (percentile(&all, 50.0), percentile(&all, 99.0), rate)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wants = |store: &str| only.as_deref().is_none_or(|only| only == store);
    if wants("sqlite") {
        let dir = std::env::temp_dir().join(format!("pb-credbench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        bench("SQLite", &url).await;
        let _ = std::fs::remove_dir_all(dir);
    }
    if wants("postgres") {
        postgres().await;
    }
}

/// The same bench on a fresh PostgreSQL database, dropped afterwards.
async fn postgres() {
    let base = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let server = match sqlx::PgPool::connect(&base).await {
        Ok(server) => server,
        Err(error) => {
            println!("PostgreSQL skipped: cannot reach the server ({error})");
            return;
        }
    };
    let database = format!("credbench_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&server)
        .await
        .unwrap();
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a postgres url with a database"),
    };
    bench("PostgreSQL", &url).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&server)
    .await
    .unwrap();
}

async fn bench(store_name: &str, url: &str) {
    let store = CredentialStore::open(url, "credentials").await.unwrap();
    let key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (signing_key, _) = ConnectorSigningKey::generate();
    let require = RequireCaller::new(mesh_key())
        .with_connector_keys(ConnectorKeys::of([("bench", &signing_key)]));
    let audit_store = store.clone();
    let server = tokio::spawn(plugboard_credentials::serve(
        Credentials::new(store, key),
        require,
        listener,
        std::future::pending(),
    ));

    let connect = || async { Endpoint::from_shared(addr.clone()).unwrap().connect().await };
    let mut channels = Vec::new();
    for _ in 0..CLIENTS {
        let channel = loop {
            match connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        channels.push(channel);
    }
    let gateway_identity = MeshCredentials::new(mesh_key(), caller("gateway", None));
    let mut gateway =
        CredentialsServiceClient::with_interceptor(channels[0].clone(), gateway_identity);
    gateway
        .put_credential(PutCredentialRequest {
            connection_id: "bench".into(),
            connector: "bench".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::ApiKey(ApiKey {
                    key: "bench-api-key".into(),
                })),
            }),
        })
        .await
        .unwrap();

    let empty = |channel: Channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
    };
    // What the connector process holds once: its mesh key and its signing key. Like
    // `Access::lease`, each call builds its identity and client from them.
    let connector_mesh_key = mesh_key();
    let lease = move |channel: Channel| {
        let identity = MeshCredentials::new(
            connector_mesh_key.clone(),
            caller("connector:bench", Some("bench")),
        )
        .with_connector_key(Some(signing_key.clone()));
        async move {
            CredentialsServiceClient::with_interceptor(channel, identity)
                .lease_access(LeaseAccessRequest {
                    connection_id: "bench".into(),
                    run_id: "bench-run".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    };

    println!(
        "LeaseAccess vs empty RPC: {CLIENTS} concurrent clients x {REQUESTS} calls (+{WARMUP} warm-up), {store_name}, one process"
    );
    // Interleaved rounds so drift on a shared machine hits both alike.
    let mut rows = Vec::new();
    for round in 1..=3 {
        let (e50, e99, erate) = load(&channels, empty).await;
        let (l50, l99, lrate) = load(&channels, lease.clone()).await;
        // The round's audit rows still spooled go to the table outside any timing, so that
        // the next empty round does not pay for them; a round's shipping runs inside it
        // (every 100 ms), so only its last 100 ms of rows are shipped here.
        let flushed = Instant::now();
        audit_store.flush_audit().await.unwrap();
        let flush_ms = ms(flushed.elapsed());
        println!(
            "round {round}: empty p50 {:.3} ms p99 {:.3} ms ({erate:.0}/s) | lease p50 {:.3} ms p99 {:.3} ms ({lrate:.0}/s) | p99 ratio {:.2} | audit rows left to ship after the round: {flush_ms:.1} ms",
            ms(e50),
            ms(e99),
            ms(l50),
            ms(l99),
            ms(l99) / ms(e99)
        );
        rows.push((e50, e99, l50, l99));
    }
    let median = |pick: fn(&(Duration, Duration, Duration, Duration)) -> Duration| {
        let mut values: Vec<Duration> = rows.iter().map(pick).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let (e50, e99) = (median(|r| r.0), median(|r| r.1));
    let (l50, l99) = (median(|r| r.2), median(|r| r.3));
    println!(
        "median of rounds: empty p50 {:.3} ms p99 {:.3} ms | lease p50 {:.3} ms p99 {:.3} ms | p50 ratio {:.2} | p99 ratio {:.2} (goal <= 1.5)",
        ms(e50),
        ms(e99),
        ms(l50),
        ms(l99),
        ms(l50) / ms(e50),
        ms(l99) / ms(e99)
    );
    // Every lease answered is in the audit table: the spool is no way around the audit.
    let leases = 3 * CLIENTS * (REQUESTS + WARMUP);
    let audited = audit_store.audit_log("acme", "bench").await.unwrap();
    let audited = audited
        .iter()
        .filter(|entry| entry.action == "lease" && entry.outcome == "ok")
        .count();
    println!("audit rows of leases in the table: {audited} of {leases} leases answered");
    assert_eq!(audited, leases);
    server.abort();
}
