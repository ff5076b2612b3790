//! The credentials service over a real tonic server on 127.0.0.1:0, on SQLite (through `run`)
//! and on PostgreSQL (a unique schema per run, dropped afterwards).

// Helpers shared by the tests panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::{CredentialStore, StoredCredential};
use plugboard_credentials::{Config, Credentials, serve};
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, DescribeCredentialRequest, LeaseAccessRequest, OAuth2Client, PutCredentialRequest,
    RevokeRequest, Secret, secret,
};
use plugboard_proto::error::reason_of;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use secrecy::SecretString;
use sqlx::Row;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const MESH_KEY: &str = "credentials-test-mesh-key-32-bytes-or-more";
const CLIENT_SECRET: &str = "client-secret-PLAINTEXT-7f3a";
const PASSWORD: &str = "user-password-PLAINTEXT-91bc";
const API_KEY: &str = "api-key-PLAINTEXT-55d0";

type Client = CredentialsServiceClient<InterceptedService<Channel, MeshCredentials>>;

fn mesh_key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).expect("test key is long enough")
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), plugboard_credentials::Error>>,
}

impl Server {
    fn client(&self, subject: &str, tenant: &str, connector: Option<&str>) -> Client {
        let caller = Caller {
            subject: subject.to_owned(),
            tenant: Some(tenant.to_owned()),
            connector: connector.map(str::to_owned),
        };
        let channel = lazy_channel(&self.addr.to_string()).expect("valid address");
        CredentialsServiceClient::with_interceptor(
            channel,
            MeshCredentials::new(mesh_key(), caller),
        )
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("server task")
            .expect("server ran cleanly");
    }
}

async fn start_with(credentials: Credentials) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        credentials,
        RequireCaller::new(mesh_key()),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

fn oauth2_secret() -> Secret {
    Secret {
        kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
            client_id: "acme-client".into(),
            client_secret: CLIENT_SECRET.into(),
            token_url: "https://auth.bullhornstaffing.com/oauth/token".into(),
            scopes: vec!["read".into()],
            username: "acme.api".into(),
            password: PASSWORD.into(),
            token_parameters: Default::default(),
            client_secret_in_body: false,
            client_certificate: None,
        })),
    }
}

fn api_key_secret() -> Secret {
    Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey {
            key: API_KEY.into(),
        })),
    }
}

fn put(connection_id: &str, connector: &str, secret: Option<Secret>) -> PutCredentialRequest {
    PutCredentialRequest {
        connection_id: connection_id.into(),
        connector: connector.into(),
        secret,
    }
}

fn lease(connection_id: &str) -> LeaseAccessRequest {
    LeaseAccessRequest {
        connection_id: connection_id.into(),
        run_id: "run-42".into(),
        ..Default::default()
    }
}

fn assert_no_plaintext(text: &str) {
    for plaintext in [CLIENT_SECRET, PASSWORD, API_KEY] {
        assert!(
            !text.contains(plaintext),
            "plaintext {plaintext:?} found in {text:?}"
        );
    }
}

/// The whole contract, against whichever database `store` uses.
async fn exercise(server: &Server, store: &CredentialStore) {
    let mut gateway = server.client("gateway", "acme", None);
    let mut bullhorn = server.client("connector:bullhorn", "acme", Some("bullhorn"));

    // Put twice: versions count up.
    let first = gateway.put_credential(put("bh-acme", "bullhorn", Some(api_key_secret())));
    assert_eq!(first.await.unwrap().into_inner().version, 1);
    let second = gateway.put_credential(put("bh-acme", "bullhorn", Some(oauth2_secret())));
    assert_eq!(second.await.unwrap().into_inner().version, 2);

    // The connection's own connector leases the latest secret.
    let leased = bullhorn
        .lease_access(lease("bh-acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leased.secret, Some(oauth2_secret()));
    assert_eq!(leased.version, 2);
    let expires_at = chrono::DateTime::parse_from_rfc3339(&leased.expires_at).unwrap();
    let ttl = expires_at.signed_duration_since(chrono::Utc::now());
    assert!(
        ttl > chrono::Duration::minutes(4) && ttl <= chrono::Duration::minutes(5),
        "{ttl}"
    );

    // Another connector, and a platform service, are refused.
    let mut broadbean = server.client("connector:broadbean", "acme", Some("broadbean"));
    let denied = broadbean.lease_access(lease("bh-acme")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason_of(&denied).as_deref(), Some("LEASE_DENIED"));
    let denied = gateway.lease_access(lease("bh-acme")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // The same connector acting for another tenant sees nothing.
    let mut other_tenant = server.client("connector:bullhorn", "globex", Some("bullhorn"));
    let missing = other_tenant
        .lease_access(lease("bh-acme"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let missing = server
        .client("gateway", "globex", None)
        .describe_credential(DescribeCredentialRequest {
            connection_id: "bh-acme".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Connectors may read their secret but not change it.
    let refused = bullhorn.put_credential(put("bh-acme", "bullhorn", Some(api_key_secret())));
    assert_eq!(refused.await.unwrap_err().code(), Code::PermissionDenied);

    // Bad input names the field.
    let bad_id = gateway.put_credential(put("bad id", "bullhorn", Some(api_key_secret())));
    let status = bad_id.await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("connection_id"),
        "{}",
        status.message()
    );
    let status = gateway
        .put_credential(put("bh-2", "bullhorn", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("secret"),
        "{}",
        status.message()
    );
    let no_connector = gateway.put_credential(put("bh-2", "", Some(api_key_secret())));
    let status = no_connector.await.unwrap_err();
    assert!(
        status.message().contains("connector"),
        "{}",
        status.message()
    );

    // Describe tells what is stored, without any secret.
    let described = gateway
        .clone()
        .describe_credential(DescribeCredentialRequest {
            connection_id: "bh-acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            described.connector.as_str(),
            described.kind.as_str(),
            described.version
        ),
        ("bullhorn", "oauth2_client", 2)
    );

    // At rest: no plaintext anywhere in the row, and the ciphertext is not just encoding.
    let rows = sqlx::query("SELECT * FROM credentials")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored = store.get("acme", "bh-acme").await.unwrap().unwrap();
    assert!(stored.sealed.starts_with("v1."));
    assert_no_plaintext(&format!("{stored:?}"));
    let raw_sealed: String = rows[0].try_get("sealed").unwrap();
    assert_no_plaintext(&raw_sealed);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&raw_sealed[3..])
        .unwrap();
    assert_no_plaintext(&String::from_utf8_lossy(&decoded));

    // A ciphertext copied into another row does not open there.
    let copy = gateway.put_credential(put("bh-copy", "bullhorn", Some(api_key_secret())));
    assert_eq!(copy.await.unwrap().into_inner().version, 1);
    copy_sealed(store, &stored, "bh-copy").await;
    let status = bullhorn.lease_access(lease("bh-copy")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status).as_deref(), Some("SECRET_UNREADABLE"));

    // Revoke: later leases and describes get NOT_FOUND; a new put continues the version count.
    gateway
        .clone()
        .revoke(RevokeRequest {
            connection_id: "bh-acme".into(),
        })
        .await
        .unwrap();
    let gone = bullhorn.lease_access(lease("bh-acme")).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(reason_of(&gone).as_deref(), Some("CREDENTIAL_NOT_FOUND"));
    let revoked = store.get("acme", "bh-acme").await.unwrap().unwrap();
    assert!(revoked.revoked && revoked.sealed.is_empty());
    let again = gateway.put_credential(put("bh-acme", "bullhorn", Some(api_key_secret())));
    assert_eq!(again.await.unwrap().into_inner().version, 3);

    // The audit log records who did what, without secrets. The server's own rows of refusals
    // and leases reach the table within SHIP_EVERY of the call (this store is not the
    // server's: it reads as another replica would).
    let mut log = Vec::new();
    for _ in 0..100 {
        log = store.audit_log("acme", "bh-acme").await.unwrap();
        if log.len() >= 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let actions: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|entry| {
            (
                entry.action.as_str(),
                entry.outcome.as_str(),
                entry.subject.as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("put", "ok", "gateway"),
            ("put", "ok", "gateway"),
            ("lease", "ok", "connector:bullhorn"),
            ("lease", "denied", "connector:broadbean"),
            ("lease", "denied", "gateway"),
            ("put", "denied", "connector:bullhorn"),
            ("revoke", "ok", "gateway"),
            ("lease", "not_found", "connector:bullhorn"),
            ("put", "ok", "gateway"),
        ]
    );
    assert_eq!(log[2].run_id, "run-42");
    assert_eq!(log[2].version, 2);
    let other_tenant_log = store.audit_log("globex", "bh-acme").await.unwrap();
    assert_eq!(other_tenant_log.len(), 1);
    assert_eq!(other_tenant_log[0].outcome, "not_found");
    store.flush_audit().await.unwrap();
    let audit_rows = sqlx::query("SELECT * FROM credential_audit").fetch_all(store.pool());
    for row in audit_rows.await.unwrap() {
        let text: Vec<String> = (0..row.len())
            .filter_map(|index| row.try_get::<String, _>(index).ok())
            .collect();
        assert_no_plaintext(&text.join("|"));
    }
}

/// Moves the sealed value of `source` into another row with the same version.
async fn copy_sealed(store: &CredentialStore, source: &StoredCredential, target: &str) {
    let changed = sqlx::query(
        "UPDATE credentials SET sealed = $1, version = $2 WHERE tenant = $3 AND connection_id = $4",
    )
    .bind(source.sealed.as_str())
    .bind(source.version as i64)
    .bind(source.tenant.as_str())
    .bind(target)
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
}

async fn wrong_master_key_fails_closed(store: &CredentialStore) {
    let other_key = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let server = start_with(Credentials::new(store.clone(), other_key)).await;
    let mut bullhorn = server.client("connector:bullhorn", "acme", Some("bullhorn"));
    let status = bullhorn.lease_access(lease("bh-acme")).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status).as_deref(), Some("MASTER_KEY_MISMATCH"));
    assert!(
        status.message().contains("PLUGBOARD_MASTER_KEY"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn sqlite_through_run() {
    let dir = std::env::temp_dir().join(format!("pb-credentials-{}", uuid::Uuid::new_v4()));
    let database_url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    let master_key = MasterKey::generate_base64().unwrap();
    let config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url.clone(),
        SecretString::from(MESH_KEY.to_owned()),
        master_key,
    );
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(plugboard_credentials::run(config, listener, async {
        let _ = stopped.await;
    }));
    let server = Server {
        addr,
        stop: Some(stop),
        task,
    };
    // `run` migrated the file; a second pool on it inspects the raw rows.
    let store = wait_for_store(&server, &database_url).await;
    exercise(&server, &store).await;

    // No token at all: refused before any handler runs.
    let channel = lazy_channel(&addr.to_string()).unwrap();
    let status = CredentialsServiceClient::new(channel)
        .lease_access(lease("bh-acme"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // A token without a tenant is refused too.
    let no_tenant = MeshCredentials::service(mesh_key(), "sync");
    let channel = lazy_channel(&addr.to_string()).unwrap();
    let status = CredentialsServiceClient::with_interceptor(channel, no_tenant)
        .lease_access(lease("bh-acme"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    server.stop().await;
    wrong_master_key_fails_closed(&store).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until `run` answers (its migrations are done), then opens a second pool on its file.
async fn wait_for_store(server: &Server, database_url: &str) -> CredentialStore {
    let mut gateway = server.client("gateway", "acme", None);
    for _ in 0..100 {
        let answer = gateway
            .describe_credential(DescribeCredentialRequest {
                connection_id: "bh-acme".into(),
            })
            .await;
        match answer {
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound);
                return CredentialStore::open(database_url, "credentials")
                    .await
                    .unwrap();
            }
            Ok(_) => panic!("a fresh store holds nothing"),
        }
    }
    panic!("the credentials service did not start");
}

#[tokio::test]
async fn postgres() {
    let base_url = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("credentials_t{}", uuid::Uuid::new_v4().simple());
    let store = CredentialStore::open(&base_url, &schema).await.unwrap();
    // The scenario runs as a task so that the schema is dropped even when it fails.
    let scenario = tokio::spawn({
        let store = store.clone();
        async move {
            let master_key =
                MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
            let server = start_with(Credentials::new(store.clone(), master_key)).await;
            exercise(&server, &store).await;
            server.stop().await;
            wrong_master_key_fails_closed(&store).await;
        }
    });
    let outcome = scenario.await;

    let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop_schema))
        .execute(store.pool())
        .await
        .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
