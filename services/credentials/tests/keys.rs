//! Envelope encryption and master key rotation, on SQLite and PostgreSQL: per-tenant data keys,
//! rotation that re-wraps data keys without touching secret ciphertexts, rows from before
//! envelope encryption migrated, and a wrong key failing closed having changed nothing.

#![allow(clippy::unwrap_used)]

use plugboard_credentials::crypto::{Keyring, MasterKey, RowBinding};
use plugboard_credentials::service::Actor;
use plugboard_credentials::store::CredentialStore;
use plugboard_credentials::{Config, Credentials};
use plugboard_proto::credentials::v1::{ApiKey, Secret, secret};
use plugboard_proto::error::ServiceError;
use prost::Message;
use secrecy::SecretString;
use sqlx::Row;

const MESH_KEY: &str = "credentials-test-mesh-key-32-bytes-or-more";

fn new_key() -> (SecretString, MasterKey) {
    let text = MasterKey::generate_base64().unwrap();
    let key = MasterKey::from_base64(&text).unwrap();
    (text, key)
}

fn api_key(value: &str) -> Secret {
    Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey { key: value.into() })),
    }
}

fn gateway(tenant: &str) -> Actor {
    Actor {
        subject: "gateway".into(),
        tenant: tenant.into(),
        connector: None,
    }
}

fn connector(tenant: &str) -> Actor {
    Actor {
        subject: "connector:bullhorn".into(),
        tenant: tenant.into(),
        connector: Some("bullhorn".into()),
    }
}

async fn leased_key(credentials: &Credentials, tenant: &str, connection: &str) -> String {
    let lease = credentials
        .lease(&connector(tenant), connection, "run-1", None)
        .await
        .unwrap();
    match lease.secret.expose().kind {
        Some(secret::Kind::ApiKey(key)) => key.key,
        other => panic!("unexpected secret {other:?}"),
    }
}

/// Every column of both key-bearing tables, to prove what changed and what did not.
async fn snapshot(store: &CredentialStore, table: &'static str) -> Vec<String> {
    let query = match table {
        "credentials" => {
            "SELECT tenant, connection_id, key_id, sealed_by, sealed, version FROM credentials \
             ORDER BY tenant, connection_id"
        }
        _ => "SELECT tenant, id, master_key_id, wrapped FROM data_keys ORDER BY tenant",
    };
    let rows = sqlx::query(query).fetch_all(store.pool()).await.unwrap();
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|index| {
                    row.try_get::<String, _>(index)
                        .or_else(|_| row.try_get::<i64, _>(index).map(|v| v.to_string()))
                        .unwrap()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

async fn scenario(store: &CredentialStore) {
    let (_, key_a) = new_key();
    let (_, key_b) = new_key();
    let under_a = Credentials::new(store.clone(), key_a.clone());

    // A row written before envelope encryption: sealed directly by master key A.
    let legacy = api_key("legacy-PLAINTEXT").encode_to_vec();
    let binding = RowBinding {
        tenant: "acme",
        connection_id: "old",
        version: 1,
    };
    let sealed = key_a.seal(binding, &legacy).unwrap();
    sqlx::query(
        "INSERT INTO credentials (tenant, connection_id, connector, kind, version, key_id, sealed, \
         revoked, created_at, updated_at) VALUES ('acme', 'old', 'bullhorn', 'api_key', 1, $1, $2, \
         0, 'x', 'x')",
    )
    .bind(key_a.key_id())
    .bind(sealed.as_str())
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(
        leased_key(&under_a, "acme", "old").await,
        "legacy-PLAINTEXT"
    );

    // New secrets: one data key per tenant, wrapped under A.
    for (tenant, value) in [("acme", "acme-PLAINTEXT"), ("globex", "globex-PLAINTEXT")] {
        under_a
            .put(&gateway(tenant), "new", "bullhorn", Some(api_key(value)))
            .await
            .unwrap();
    }
    let keys = snapshot(store, "data_keys").await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|row| row.contains(key_a.key_id())));
    assert!(
        keys.iter()
            .all(|row| !row.contains("PLAINTEXT") && !row.contains("acme-"))
    );

    // Start-up under A migrates the legacy row onto acme's data key; the value still leases.
    let prepared = under_a.prepare().await.unwrap();
    assert_eq!((prepared.rewrapped, prepared.migrated), (0, 1));
    let rows = snapshot(store, "credentials").await;
    assert!(
        rows.iter().all(|row| row.contains("|data_key|")),
        "{rows:?}"
    );
    assert_eq!(
        leased_key(&under_a, "acme", "old").await,
        "legacy-PLAINTEXT"
    );

    // Only B configured: start-up fails closed with a clear error and changes nothing.
    let before = (
        snapshot(store, "credentials").await,
        snapshot(store, "data_keys").await,
    );
    let only_b = Credentials::new(store.clone(), key_b.clone());
    let error = only_b.prepare().await.unwrap_err();
    assert_eq!(error.reason(), "MASTER_KEY_UNKNOWN");
    let message = error.to_string();
    assert!(
        message.contains(key_a.key_id())
            && message.contains("PLUGBOARD_MASTER_KEY_PREVIOUS")
            && message.contains("Nothing was changed"),
        "{message}"
    );
    // A lease through a service that skipped the check fails closed too.
    let status = only_b
        .lease(&connector("acme"), "new", "run-1", None)
        .await
        .unwrap_err();
    assert_eq!(status.reason(), "MASTER_KEY_MISMATCH");
    let after = (
        snapshot(store, "credentials").await,
        snapshot(store, "data_keys").await,
    );
    assert_eq!(before, after);

    // Rotation: B current, A previous. Data keys are re-wrapped; secrets are untouched.
    let rotating = Credentials::new(
        store.clone(),
        Keyring::new(key_b.clone(), vec![key_a.clone()]),
    );
    let prepared = rotating.prepare().await.unwrap();
    assert_eq!((prepared.rewrapped, prepared.migrated), (2, 0));
    let keys = snapshot(store, "data_keys").await;
    assert!(
        keys.iter().all(|row| row.contains(key_b.key_id())),
        "{keys:?}"
    );
    assert_ne!(keys, before.1);
    assert_eq!(snapshot(store, "credentials").await, before.0);
    // Idempotent: a second replica starting finds nothing to do.
    assert_eq!(rotating.prepare().await.unwrap().rewrapped, 0);

    // A replica still on A alone (mid roll-out) keeps serving from its cache; B alone serves
    // everything from the store.
    assert_eq!(
        leased_key(&under_a, "globex", "new").await,
        "globex-PLAINTEXT"
    );
    let only_b = Credentials::new(store.clone(), key_b.clone());
    only_b.prepare().await.unwrap();
    assert_eq!(leased_key(&only_b, "acme", "new").await, "acme-PLAINTEXT");
    assert_eq!(leased_key(&only_b, "acme", "old").await, "legacy-PLAINTEXT");
    assert_eq!(
        leased_key(&only_b, "globex", "new").await,
        "globex-PLAINTEXT"
    );

    // Audit: the rotation and the migration are recorded by the service itself.
    let log = store.audit_log("acme", "").await.unwrap();
    assert!(
        log.iter()
            .any(|entry| entry.action == "rewrap" && entry.subject == "credentials")
    );
    let log = store.audit_log("acme", "old").await.unwrap();
    assert!(log.iter().any(|entry| entry.action == "migrate"));

    // A damaged wrapped key under a configured key id: fails closed, nothing changed.
    sqlx::query("UPDATE data_keys SET wrapped = 'v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE tenant = 'globex'")
        .execute(store.pool())
        .await
        .unwrap();
    let before = snapshot(store, "data_keys").await;
    let fresh = Credentials::new(
        store.clone(),
        Keyring::new(key_a.clone(), vec![key_b.clone()]),
    );
    let error = fresh.prepare().await.unwrap_err();
    assert_eq!(error.reason(), "DATA_KEY_UNREADABLE");
    assert_eq!(snapshot(store, "data_keys").await, before);
}

#[tokio::test]
async fn sqlite_envelope_and_rotation() {
    let dir = std::env::temp_dir().join(format!("pb-credkeys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    scenario(&store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_envelope_and_rotation() {
    let base_url = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("credentials_k{}", uuid::Uuid::new_v4().simple());
    let store = CredentialStore::open(&base_url, &schema).await.unwrap();
    let outcome = tokio::spawn({
        let store = store.clone();
        async move { scenario(&store).await }
    })
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(store.pool())
        .await
        .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Through `run` and its configuration: a wrong master key stops the service before it serves,
/// with the reason; previous keys from the config rotate.
#[tokio::test]
async fn run_fails_closed_with_a_wrong_key_and_rotates_with_previous_keys() {
    let dir = std::env::temp_dir().join(format!("pb-credrun-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    let (text_a, key_a) = new_key();
    let (text_b, key_b) = new_key();
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    Credentials::new(store.clone(), key_a.clone())
        .put(&gateway("acme"), "c1", "bullhorn", Some(api_key("v")))
        .await
        .unwrap();

    let config = |current: &SecretString, previous: Option<&SecretString>| {
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            url.clone(),
            SecretString::from(MESH_KEY.to_owned()),
            current.clone(),
        );
        config.previous_master_keys = previous.cloned();
        config
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = plugboard_credentials::run(config(&text_b, None), listener, async {})
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MASTER_KEY_UNKNOWN");
    assert!(
        snapshot(&store, "data_keys").await[0].contains(key_a.key_id()),
        "untouched"
    );

    // With A as a previous key, run re-wraps under B and then serves until shut down.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    plugboard_credentials::run(config(&text_b, Some(&text_a)), listener, async {})
        .await
        .unwrap();
    assert!(snapshot(&store, "data_keys").await[0].contains(key_b.key_id()));
    let _ = std::fs::remove_dir_all(dir);
}
