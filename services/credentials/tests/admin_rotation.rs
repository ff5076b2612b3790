//! Key rotation on running replicas (`CredentialsAdminService`), across two real
//! `plugboard-credentials` processes on one PostgreSQL database, with clients leasing from both
//! the whole time:
//! - master key: the key files are changed in place (as a Kubernetes secret mount is) and one
//!   replica is told to rotate; bad key files and a missing old key are refused first with
//!   nothing changed; afterwards both replicas open every secret, and a replica started with
//!   only the new key opens everything;
//! - tenant data key: one tenant's key is replaced and its secrets re-sealed while leased; the
//!   old key is gone afterwards and another tenant is untouched.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::credentials_admin_service_client::CredentialsAdminServiceClient;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, DescribeCredentialRequest, LeaseAccessRequest, PutCredentialRequest,
    RotateDataKeyRequest, RotateMasterKeyRequest, Secret, WebhookSecret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const MESH_KEY: &str = "credentials-admin-rotation-test-mesh-key-32b";

type Client = CredentialsServiceClient<InterceptedService<Channel, MeshCredentials>>;
type Admin = CredentialsAdminServiceClient<InterceptedService<Channel, MeshCredentials>>;

fn identity(subject: &str, tenant: &str, connector: Option<&str>) -> MeshCredentials {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    let caller = Caller {
        subject: subject.to_owned(),
        tenant: Some(tenant.to_owned()),
        connector: connector.map(str::to_owned),
    };
    MeshCredentials::new(key, caller)
}

fn client(addr: &str, tenant: &str, connector: Option<&str>) -> Client {
    let subject = connector.map_or("gateway".to_owned(), |name| format!("connector:{name}"));
    CredentialsServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        identity(&subject, tenant, connector),
    )
}

fn admin(addr: &str, subject: &str, tenant: &str) -> Admin {
    CredentialsAdminServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        identity(subject, tenant, None),
    )
}

/// Master key files, changed in place like a mounted secret.
struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    fn new() -> KeyFiles {
        let dir = std::env::temp_dir().join(format!("pb-adminrot-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        KeyFiles { dir }
    }

    fn current(&self) -> PathBuf {
        self.dir.join("master.key")
    }

    fn previous(&self) -> PathBuf {
        self.dir.join("master-previous.key")
    }

    /// Writes both files, each by an atomic rename, as the kubelet swaps a secret's files.
    fn write(&self, current: &str, previous: &str) {
        for (path, text) in [(self.current(), current), (self.previous(), previous)] {
            let staged = path.with_extension("staged");
            std::fs::write(&staged, text).unwrap();
            std::fs::rename(&staged, &path).unwrap();
        }
    }
}

impl Drop for KeyFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Replica {
    addr: String,
    child: Option<Child>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Replica {
    /// Starts a replica reading its master keys from `current` and `previous` (files).
    async fn start(database_url: &str, current: &Path, previous: Option<&Path>) -> Replica {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard-credentials"));
        command
            .env_clear()
            .env("PLUGBOARD_LISTEN_ADDR", &addr)
            .env("PLUGBOARD_DATABASE_URL", database_url)
            .env("PLUGBOARD_MESH_KEY", MESH_KEY)
            .env("PLUGBOARD_MASTER_KEY_FILE", current)
            .env("PLUGBOARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(previous) = previous {
            command.env("PLUGBOARD_MASTER_KEY_PREVIOUS_FILE", previous);
        }
        let replica = Replica {
            addr,
            child: Some(command.spawn().unwrap()),
        };
        let mut probe = client(&replica.addr, "probe", None);
        for _ in 0..300 {
            let answer = probe
                .describe_credential(DescribeCredentialRequest {
                    connection_id: "probe".into(),
                })
                .await;
            if matches!(answer, Err(ref status) if status.code() == Code::NotFound) {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("credentials at {} did not start", replica.addr);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn api_key(tenant: &str, connection_id: &str) -> String {
    format!("key-of-{tenant}-{connection_id}")
}

async fn put(addr: &str, tenant: &str, connection_id: &str) {
    put_secret(
        addr,
        tenant,
        connection_id,
        secret::Kind::ApiKey(ApiKey {
            key: api_key(tenant, connection_id),
        }),
    )
    .await;
}

async fn put_secret(addr: &str, tenant: &str, connection_id: &str, kind: secret::Kind) {
    client(addr, tenant, None)
        .put_credential(PutCredentialRequest {
            connection_id: connection_id.into(),
            connector: "partner".into(),
            secret: Some(Secret { kind: Some(kind) }),
        })
        .await
        .unwrap();
}

async fn lease(addr: &str, tenant: &str, connection_id: &str) -> Result<(), tonic::Status> {
    let response = client(addr, tenant, Some("partner"))
        .lease_access(LeaseAccessRequest {
            connection_id: connection_id.into(),
            run_id: "admin-rotation".into(),
            ..LeaseAccessRequest::default()
        })
        .await?
        .into_inner();
    match response.secret.and_then(|secret| secret.kind) {
        Some(secret::Kind::ApiKey(key)) if key.key == api_key(tenant, connection_id) => Ok(()),
        other => Err(tonic::Status::internal(format!("wrong secret: {other:?}"))),
    }
}

/// Clients leasing `targets` round robin from every replica until stopped.
struct Leasers {
    stop: Arc<AtomicBool>,
    leased: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Leasers {
    fn start(addrs: &[&str], targets: Vec<(String, String)>) -> Leasers {
        let stop = Arc::new(AtomicBool::new(false));
        let (leased, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let targets = Arc::new(targets);
        let tasks = addrs
            .iter()
            .map(|addr| {
                let addr = (*addr).to_owned();
                let (stop, leased, failed) = (stop.clone(), leased.clone(), failed.clone());
                let targets = targets.clone();
                tokio::spawn(async move {
                    let mut index = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let (tenant, connection_id) = &targets[index % targets.len()];
                        index += 1;
                        match lease(&addr, tenant, connection_id).await {
                            Ok(()) => leased.fetch_add(1, Ordering::Relaxed),
                            Err(status) => {
                                eprintln!(
                                    "lease of {tenant}/{connection_id} from {addr}: {status:?}"
                                );
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Leasers {
            stop,
            leased,
            failed,
            tasks,
        }
    }

    /// Stops the clients; (leases that succeeded, leases that failed).
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.leased.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Runs `test` on a fresh PostgreSQL database, dropped afterwards.
async fn on_fresh_database<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let base = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let server = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&server)
        .await
        .unwrap();
    let database_url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a postgres url with a database"),
    };
    let outcome = tokio::spawn(test(database_url)).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&server)
    .await
    .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The reason code of a refused call.
fn reason(status: &tonic::Status) -> String {
    plugboard_proto::error::reason_of(status).unwrap_or_default()
}

/// Every text column of every audit row, joined.
async fn audit_text(store: &CredentialStore) -> String {
    let rows = sqlx::query(
        "SELECT at, tenant, connection_id, subject, action, outcome, run_id FROM credential_audit",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|row| {
            (0..7)
                .map(|index| row.try_get::<String, _>(index).unwrap())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_replica_rotates_the_master_key_while_both_keep_leasing() {
    on_fresh_database("credadmin", master_rotation).await;
}

async fn master_rotation(database_url: String) {
    let old = MasterKey::generate_base64().unwrap();
    let new = MasterKey::generate_base64().unwrap();
    let old_id = MasterKey::from_base64(&old).unwrap().key_id().to_owned();
    let new_id = MasterKey::from_base64(&new).unwrap().key_id().to_owned();
    let files = KeyFiles::new();
    files.write(old.expose_secret(), "");
    let a = Replica::start(&database_url, &files.current(), Some(&files.previous())).await;
    let b = Replica::start(&database_url, &files.current(), Some(&files.previous())).await;
    let tenants: Vec<String> = (1..=6).map(|index| format!("t{index}")).collect();
    for (index, tenant) in tenants.iter().enumerate() {
        let addr = if index % 2 == 0 { &a.addr } else { &b.addr };
        put(addr, tenant, "c").await;
    }
    let store = CredentialStore::open(&database_url, "credentials")
        .await
        .unwrap();
    let wrapped_before: Vec<String> = store
        .data_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.wrapped)
        .collect();

    let targets = tenants
        .iter()
        .map(|t| (t.clone(), "c".to_owned()))
        .collect();
    let leasers = Leasers::start(&[&a.addr, &b.addr], targets);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Only an admin may rotate.
    let refused = admin(&a.addr, "gateway", "t1")
        .rotate_master_key(RotateMasterKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A key file that does not parse: refused, nothing changed, the replica keeps its keys.
    files.write("not a key", "");
    let refused = admin(&a.addr, "admin:ops", "t1")
        .rotate_master_key(RotateMasterKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "MASTER_KEY_INVALID");
    assert!(
        refused.message().contains("PLUGBOARD_MASTER_KEY"),
        "{refused:?}"
    );
    // The new key alone, without the old one the data keys are wrapped under: refused too.
    files.write(new.expose_secret(), "");
    let refused = admin(&a.addr, "admin:ops", "t1")
        .rotate_master_key(RotateMasterKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "MASTER_KEY_UNKNOWN");
    assert!(refused.message().contains(&old_id), "{refused:?}");
    let keys = store.data_keys().await.unwrap();
    assert!(
        keys.iter().all(|key| key.master_key_id == old_id),
        "{keys:?}"
    );

    // The real rotation: new key current, old one previous, A told in batches of two.
    files.write(new.expose_secret(), old.expose_secret());
    let rotated = admin(&a.addr, "admin:ops", "t1")
        .rotate_master_key(RotateMasterKeyRequest { batch_size: 2 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.master_key_id, new_id);
    assert_eq!((rotated.data_keys, rotated.rewrapped), (6, 6));
    // Told again, there is nothing left to do.
    let again = admin(&a.addr, "admin", "t1")
        .rotate_master_key(RotateMasterKeyRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.data_keys, again.rewrapped), (6, 0));

    // B was never told: it reads the files again when it meets a key wrapped under the new
    // one, and wraps a tenant's first key under the newest.
    put(&a.addr, "t7", "c").await;
    lease(&b.addr, "t7", "c").await.unwrap();
    put(&b.addr, "t8", "c").await;
    lease(&a.addr, "t8", "c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (leased, failed) = leasers.finish().await;
    assert_eq!(failed, 0, "{failed} leases failed ({leased} succeeded)");
    assert!(leased > 50, "the clients kept leasing: {leased}");

    let keys = store.data_keys().await.unwrap();
    assert_eq!(keys.len(), 8);
    assert!(
        keys.iter().all(|key| key.master_key_id == new_id),
        "{keys:?}"
    );
    for tenant in tenants.iter().map(String::as_str).chain(["t7", "t8"]) {
        lease(&a.addr, tenant, "c").await.unwrap();
        lease(&b.addr, tenant, "c").await.unwrap();
    }

    // Audit: a rewrap row per tenant naming the admin, and no key material anywhere.
    let rewraps = sqlx::query(
        "SELECT tenant FROM credential_audit WHERE action = 'rewrap' AND subject = 'admin:ops'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(rewraps.len(), 6);
    let audit = audit_text(&store).await;
    let wrapped_after = keys.iter().map(|key| key.wrapped.clone());
    for material in [
        old.expose_secret().to_owned(),
        new.expose_secret().to_owned(),
    ]
    .into_iter()
    .chain(wrapped_before)
    .chain(wrapped_after)
    {
        assert!(!audit.contains(&material), "key material in the audit log");
    }

    // The old key can go: a replica started with the new key only opens everything.
    drop(a);
    drop(b);
    files.write(new.expose_secret(), "");
    let fresh = Replica::start(&database_url, &files.current(), None).await;
    for tenant in tenants.iter().map(String::as_str).chain(["t7", "t8"]) {
        lease(&fresh.addr, tenant, "c").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_data_key_is_rotated_while_its_secrets_are_leased() {
    on_fresh_database("credtenant", data_key_rotation).await;
}

async fn data_key_rotation(database_url: String) {
    let master = MasterKey::generate_base64().unwrap();
    let files = KeyFiles::new();
    files.write(master.expose_secret(), "");
    let a = Replica::start(&database_url, &files.current(), None).await;
    let b = Replica::start(&database_url, &files.current(), None).await;
    let connections: Vec<String> = (0..30).map(|index| format!("c{index}")).collect();
    for connection_id in &connections {
        put(&a.addr, "acme", connection_id).await;
    }
    put_secret(
        &a.addr,
        "acme",
        "c0",
        secret::Kind::WebhookSecret(WebhookSecret {
            secret: "acme-webhook-signing-secret".into(),
        }),
    )
    .await;
    put(&b.addr, "globex", "g0").await;
    put(&b.addr, "globex", "g1").await;
    let store = CredentialStore::open(&database_url, "credentials")
        .await
        .unwrap();
    let acme_before = store.data_key("acme").await.unwrap().unwrap();
    let globex_key = store.data_key("globex").await.unwrap().unwrap();
    let globex_rows = sealed_rows(&store, "globex").await;

    let mut targets: Vec<(String, String)> = connections
        .iter()
        .map(|c| ("acme".to_owned(), c.clone()))
        .collect();
    targets.push(("globex".to_owned(), "g0".to_owned()));
    let leasers = Leasers::start(&[&a.addr, &b.addr], targets);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = admin(&b.addr, "gateway", "acme")
        .rotate_data_key(RotateDataKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = admin(&b.addr, "admin", "nobody")
        .rotate_data_key(RotateDataKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let rotated = admin(&b.addr, "admin:ops", "acme")
        .rotate_data_key(RotateDataKeyRequest { batch_size: 7 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.previous_data_key_id, acme_before.id);
    assert_ne!(rotated.data_key_id, acme_before.id);
    // 30 access secrets and one webhook secret.
    assert_eq!(rotated.resealed, 31, "{rotated:?}");
    assert_eq!((rotated.retired_deleted, rotated.retired_kept), (1, 0));

    // A still holds the old key as acme's current one: its next put finds out and seals
    // under the new key, and B opens it.
    put(&a.addr, "acme", "late").await;
    lease(&b.addr, "acme", "late").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (leased, failed) = leasers.finish().await;
    assert_eq!(failed, 0, "{failed} leases failed ({leased} succeeded)");
    assert!(leased > 50, "the clients kept leasing: {leased}");

    // The old key is gone and every acme row is under the new one.
    let acme_after = store.data_key("acme").await.unwrap().unwrap();
    assert_eq!(acme_after.id, rotated.data_key_id);
    assert!(store.retired_key_ids("acme").await.unwrap().is_empty());
    assert!(
        store
            .retired_data_key("acme", &acme_before.id)
            .await
            .unwrap()
            .is_none()
    );
    let acme_rows = sealed_rows(&store, "acme").await;
    assert_eq!(acme_rows.len(), 32);
    assert!(
        acme_rows
            .iter()
            .all(|(_, key_id, _)| *key_id == acme_after.id),
        "{acme_rows:?}"
    );
    for connection_id in connections.iter().map(String::as_str).chain(["late"]) {
        lease(&a.addr, "acme", connection_id).await.unwrap();
    }
    // Globex is untouched: same key, same ciphertexts.
    assert_eq!(store.data_key("globex").await.unwrap().unwrap(), globex_key);
    assert_eq!(sealed_rows(&store, "globex").await, globex_rows);

    // Audit: the refusal, then the rotation, the retirement and one reseal per secret, naming
    // the admin.
    // The refusal's row was spooled by the replica that refused; it ships within 100 ms.
    let mut denied = Vec::new();
    for _ in 0..100 {
        denied = sqlx::query(
            "SELECT subject FROM credential_audit WHERE tenant = 'acme' \
             AND action = 'rotate_data_key' AND outcome = 'denied'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        if !denied.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].get::<String, _>(0), "gateway");
    let actions: Vec<(String, String)> = sqlx::query(
        "SELECT action, subject FROM credential_audit WHERE tenant = 'acme' AND outcome = 'ok' \
         AND action IN ('rotate_data_key', 'retire_data_key', 'reseal')",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    let count = |action: &str| actions.iter().filter(|(a, _)| a == action).count();
    assert_eq!(
        (
            count("rotate_data_key"),
            count("retire_data_key"),
            count("reseal")
        ),
        (1, 1, 31)
    );
    assert!(actions.iter().all(|(_, subject)| subject == "admin:ops"));
    let audit = audit_text(&store).await;
    assert!(!audit.contains(&acme_before.wrapped) && !audit.contains(&acme_after.wrapped));
}

/// (connection id, key id, ciphertext) of a tenant's live rows.
async fn sealed_rows(store: &CredentialStore, tenant: &str) -> Vec<(String, String, String)> {
    sqlx::query(
        "SELECT connection_id, key_id, sealed FROM credentials WHERE tenant = $1 \
         ORDER BY connection_id",
    )
    .bind(tenant)
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}
