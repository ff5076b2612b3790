//! Leases take credential rows from memory, and still see every replica's writes: at once
//! with Redis, within the row cache's age bound without it. Two replicas here are two
//! `Credentials` on one PostgreSQL schema (unique per run, dropped afterwards).

// Helpers shared by the tests panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::row_cache::ROW_MAX_AGE;
use plugboard_credentials::service::{Actor, Lease};
use plugboard_credentials::store::CredentialStore;
use plugboard_credentials::{Credentials, Error};
use plugboard_proto::credentials::v1::{ApiKey, Secret, secret};
use secrecy::SecretString;

/// How long a replica may take to hear another one's write: Redis pub/sub delivers after the
/// writer's PUBLISH returns, so "at once" is the message's latency, far below the age bound.
const HEARD_WITHIN: Duration = Duration::from_millis(200);

fn gateway() -> Actor {
    Actor {
        subject: "gateway".into(),
        tenant: "acme".into(),
        connector: None,
    }
}

fn bullhorn() -> Actor {
    Actor {
        subject: "connector:bullhorn".into(),
        tenant: "acme".into(),
        connector: Some("bullhorn".into()),
    }
}

fn api_key(key: &str) -> Option<Secret> {
    Some(Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey { key: key.into() })),
    })
}

fn redis_url() -> String {
    std::env::var("PLUGBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn lease(replica: &Credentials, connection_id: &str) -> Result<Lease, Error> {
    replica
        .lease(&bullhorn(), connection_id, "run-1", None)
        .await
}

/// The reader's leases until one passes `check`, for at most [`HEARD_WITHIN`]; how many it took.
async fn leases_until(
    reader: &Credentials,
    connection_id: &str,
    check: impl Fn(&Result<Lease, Error>) -> bool,
) -> usize {
    let started = Instant::now();
    for attempt in 1.. {
        let leased = lease(reader, connection_id).await;
        if check(&leased) {
            return attempt;
        }
        assert!(started.elapsed() < HEARD_WITHIN, "not heard: {leased:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    unreachable!("the loop returns or panics")
}

/// A revoke or a new version written on one replica, and the very next lease on the other.
async fn with_redis(base_url: &str, schema: &str, master_key: &SecretString) {
    let replica = || async {
        let store = CredentialStore::open(base_url, schema).await.unwrap();
        let store = store.with_row_changes(&redis_url(), schema).await.unwrap();
        Credentials::new(store, MasterKey::from_base64(master_key).unwrap())
    };
    let (writer, reader) = (replica().await, replica().await);

    let gateway = gateway();
    let put = writer.put(&gateway, "bh-1", "bullhorn", api_key("one"));
    assert_eq!(put.await.unwrap(), 1);
    assert_eq!(lease(&reader, "bh-1").await.unwrap().version, 1);
    // Served from the reader's memory now.
    assert_eq!(lease(&reader, "bh-1").await.unwrap().version, 1);

    let put = writer.put(&gateway, "bh-1", "bullhorn", api_key("two"));
    assert_eq!(put.await.unwrap(), 2);
    let new_version = |leased: &Result<Lease, Error>| {
        leased.as_ref().is_ok_and(|lease| {
            lease.version == 2 && lease.secret.clone().expose() == api_key("two").unwrap()
        })
    };
    leases_until(&reader, "bh-1", new_version).await;

    writer.revoke(&gateway, "bh-1").await.unwrap();
    let not_found = |leased: &Result<Lease, Error>| matches!(leased, Err(Error::NotFound { .. }));
    leases_until(&reader, "bh-1", not_found).await;
}

/// Without Redis a replica hears nothing: the age bound alone ends a revoked row's leases.
async fn without_redis(base_url: &str, schema: &str, master_key: &SecretString) {
    let replica = || async {
        let store = CredentialStore::open(base_url, schema).await.unwrap();
        Credentials::new(store, MasterKey::from_base64(master_key).unwrap())
    };
    let (writer, reader) = (replica().await, replica().await);
    let gateway = gateway();
    let put = writer.put(&gateway, "bh-2", "bullhorn", api_key("one"));
    assert_eq!(put.await.unwrap(), 1);

    let cached_at = Instant::now();
    assert_eq!(lease(&reader, "bh-2").await.unwrap().version, 1);
    writer.revoke(&gateway, "bh-2").await.unwrap();
    let stale = lease(&reader, "bh-2").await;
    // Only checkable while the bound has not passed, which a stalled machine could exceed.
    if cached_at.elapsed() < ROW_MAX_AGE {
        assert!(
            stale.is_ok(),
            "the reader's kept row serves within the bound"
        );
    }
    tokio::time::sleep_until((cached_at + ROW_MAX_AGE).into()).await;
    let gone = lease(&reader, "bh-2").await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
}

#[tokio::test]
async fn writes_on_one_replica_reach_the_other_replicas_leases() {
    let base_url = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("credentials_t{}", uuid::Uuid::new_v4().simple());
    let store = CredentialStore::open(&base_url, &schema).await.unwrap();
    let master_key = MasterKey::generate_base64().unwrap();
    // The scenario runs as a task so that the schema is dropped even when it fails.
    let scenario = tokio::spawn({
        let (base_url, schema) = (base_url.clone(), schema.clone());
        async move {
            with_redis(&base_url, &schema, &master_key).await;
            without_redis(&base_url, &schema, &master_key).await;
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
