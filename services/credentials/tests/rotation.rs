//! Master key rotation with no downtime, across two real `plugboard-credentials` processes on
//! one PostgreSQL database: the three rolling steps of `src/keys.rs`, one replica restarted at a
//! time while the other keeps serving leases, with a client leasing the whole time. Every lease
//! sent to a serving replica succeeds, tenants created mid-rotation on either replica are leased
//! from the other, and at the end every data key is wrapped under the new key only.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, DescribeCredentialRequest, LeaseAccessRequest, PutCredentialRequest, Secret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;
use tonic::Code;

const MESH_KEY: &str = "credentials-rotation-test-mesh-key-32-bytes";

type Client = CredentialsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
>;

fn client(addr: &str, tenant: &str, connector: Option<&str>) -> Client {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    let caller = Caller {
        subject: connector.map_or("gateway".to_owned(), |name| format!("connector:{name}")),
        tenant: Some(tenant.to_owned()),
        connector: connector.map(str::to_owned),
    };
    CredentialsServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        MeshCredentials::new(key, caller),
    )
}

struct Replica {
    addr: String,
    child: Option<Child>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Replica {
    /// Starts (or restarts) the replica with `current` and `previous` master keys and waits
    /// until it serves.
    async fn start(
        &mut self,
        database_url: &str,
        current: &SecretString,
        previous: &[&SecretString],
    ) {
        self.stop();
        let previous: Vec<&str> = previous.iter().map(|key| key.expose_secret()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard-credentials"));
        command
            .env_clear()
            .env("PLUGBOARD_LISTEN_ADDR", &self.addr)
            .env("PLUGBOARD_DATABASE_URL", database_url)
            .env("PLUGBOARD_MESH_KEY", MESH_KEY)
            .env("PLUGBOARD_MASTER_KEY", current.expose_secret())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !previous.is_empty() {
            command.env("PLUGBOARD_MASTER_KEY_PREVIOUS", previous.join(","));
        }
        self.child = Some(command.spawn().unwrap());
        let mut probe = client(&self.addr, "acme", None);
        for _ in 0..200 {
            let answer = probe
                .describe_credential(DescribeCredentialRequest {
                    connection_id: "probe".into(),
                })
                .await;
            if matches!(answer, Err(ref status) if status.code() == Code::NotFound) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("credentials at {} did not start", self.addr);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn put(addr: &str, tenant: &str, connection_id: &str) {
    client(addr, tenant, None)
        .put_credential(PutCredentialRequest {
            connection_id: connection_id.into(),
            connector: "partner".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::ApiKey(ApiKey {
                    key: format!("key-of-{tenant}"),
                })),
            }),
        })
        .await
        .unwrap();
}

async fn lease(addr: &str, tenant: &str, connection_id: &str) -> Result<(), tonic::Status> {
    let response = client(addr, tenant, Some("partner"))
        .lease_access(LeaseAccessRequest {
            connection_id: connection_id.into(),
            run_id: "rotation".into(),
            ..LeaseAccessRequest::default()
        })
        .await?
        .into_inner();
    match response.secret.and_then(|secret| secret.kind) {
        Some(secret::Kind::ApiKey(key)) if key.key == format!("key-of-{tenant}") => Ok(()),
        other => Err(tonic::Status::internal(format!("wrong secret: {other:?}"))),
    }
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_rotation_keeps_every_lease_succeeding() {
    let base = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("credrot_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin)
        .await
        .unwrap();
    let database_url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a postgres url with a database"),
    };
    let outcome = tokio::spawn(rotation(database_url)).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn rotation(database_url: String) {
    let old = MasterKey::generate_base64().unwrap();
    let new = MasterKey::generate_base64().unwrap();
    let new_id = MasterKey::from_base64(&new).unwrap().key_id().to_owned();
    let mut a = Replica {
        addr: free_addr(),
        child: None,
    };
    let mut b = Replica {
        addr: free_addr(),
        child: None,
    };
    a.start(&database_url, &old, &[]).await;
    b.start(&database_url, &old, &[]).await;
    for tenant in ["t1", "t2", "t3"] {
        put(&a.addr, tenant, "c").await;
    }

    // A client leasing all the time from whichever replica is serving.
    let serving = Arc::new(RwLock::new(a.addr.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let (leased, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let leaser = tokio::spawn({
        let (serving, stop) = (serving.clone(), stop.clone());
        let (leased, failed) = (leased.clone(), failed.clone());
        async move {
            let mut index = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let addr = serving.read().await.clone();
                let tenant = ["t1", "t2", "t3"][index % 3];
                index += 1;
                match lease(&addr, tenant, "c").await {
                    Ok(()) => leased.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        eprintln!("lease from {addr} failed: {status:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    });
    // Restarts `replica` while the client leases from `other`.
    async fn roll(
        serving: &RwLock<String>,
        replica: &mut Replica,
        other: &Replica,
        database_url: &str,
        current: &SecretString,
        previous: &[&SecretString],
    ) {
        *serving.write().await = other.addr.clone();
        tokio::time::sleep(Duration::from_millis(200)).await;
        replica.start(database_url, current, previous).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Step 1: every replica learns the new key as a previous one (it only unwraps).
    roll(&serving, &mut b, &a, &database_url, &old, &[&new]).await;
    roll(&serving, &mut a, &b, &database_url, &old, &[&new]).await;
    // Step 2: swap. B starts first and re-wraps every data key under the new key, while A,
    // still on step 1, keeps serving and reads keys B re-wrapped.
    roll(&serving, &mut b, &a, &database_url, &new, &[&old]).await;
    put(&b.addr, "t4", "c").await;
    lease(&a.addr, "t4", "c").await.unwrap();
    put(&a.addr, "t5", "c").await;
    lease(&b.addr, "t5", "c").await.unwrap();
    roll(&serving, &mut a, &b, &database_url, &new, &[&old]).await;
    // Step 3: the old key goes.
    roll(&serving, &mut b, &a, &database_url, &new, &[]).await;
    roll(&serving, &mut a, &b, &database_url, &new, &[]).await;
    for tenant in ["t1", "t4", "t5"] {
        lease(&a.addr, tenant, "c").await.unwrap();
        lease(&b.addr, tenant, "c").await.unwrap();
    }

    stop.store(true, Ordering::Relaxed);
    leaser.await.unwrap();
    let (leased, failed) = (
        leased.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed, 0,
        "{failed} leases failed during the rotation ({leased} succeeded)"
    );
    assert!(leased > 20, "the client kept leasing: {leased}");

    let store = CredentialStore::open(&database_url, "credentials")
        .await
        .unwrap();
    let keys = store.data_keys().await.unwrap();
    assert_eq!(keys.len(), 5);
    assert!(
        keys.iter().all(|key| key.master_key_id == new_id),
        "every data key under the new master key: {keys:?}"
    );
}
