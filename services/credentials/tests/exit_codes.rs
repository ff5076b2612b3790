//! A real `plugboard-credentials` process stopped by its own configuration exits 78
//! (EX_CONFIG) with a message naming what to fix, whether the problem shows before the port is
//! bound (a master key that does not parse) or only once the store is open (a master key that
//! opens none of the stored keys, a database option the driver does not know, an audit spool
//! directory that cannot be created). Other failures
//! keep exit code 1.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::service::Actor;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::{ApiKey, Secret, secret};
use secrecy::ExposeSecret;

const MESH_KEY: &str = "exit-code-test-mesh-key-of-32-bytes!!";

fn credentials(database_url: &str, master_key: &str) -> Output {
    credentials_with(database_url, master_key, &[])
}

fn credentials_with(database_url: &str, master_key: &str, extra: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugboard-credentials"))
        .env_clear()
        .envs(extra.iter().copied())
        // Port 0: the process never gets far enough to serve anyway.
        .env("PLUGBOARD_LISTEN_ADDR", "127.0.0.1:0")
        .env("PLUGBOARD_DATABASE_URL", database_url)
        .env("PLUGBOARD_MESH_KEY", MESH_KEY)
        .env("PLUGBOARD_MASTER_KEY", master_key)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn configuration_that_stops_the_service_exits_78_and_names_the_fix() {
    let dir = std::env::temp_dir().join(format!("pb-cred-exit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("credentials.db").display());

    // A secret stored under master key A.
    let key_a = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    let gateway = Actor {
        subject: "gateway".into(),
        tenant: "acme".into(),
        connector: None,
    };
    let secret = Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey { key: "k".into() })),
    };
    Credentials::new(store.clone(), key_a)
        .put(&gateway, "c1", "bullhorn", Some(secret))
        .await
        .unwrap();
    store.pool().close().await;

    // Started with key B only: fails closed, as configuration.
    let key_b = MasterKey::generate_base64().unwrap();
    let wrong_key = credentials(&url, key_b.expose_secret());
    assert_eq!(wrong_key.status.code(), Some(78), "{}", stderr(&wrong_key));
    assert!(
        stderr(&wrong_key).contains("PLUGBOARD_MASTER_KEY"),
        "{}",
        stderr(&wrong_key)
    );

    // A master key that is not a key at all is found before anything is opened.
    let garbage = credentials(&url, "not-base64-of-32-bytes");
    assert_eq!(garbage.status.code(), Some(78), "{}", stderr(&garbage));
    assert!(
        stderr(&garbage).contains("PLUGBOARD_MASTER_KEY"),
        "{}",
        stderr(&garbage)
    );

    // A PostgreSQL URL with an option the driver does not know.
    let bad_option = credentials(
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=sometimes",
        key_b.expose_secret(),
    );
    assert_eq!(
        bad_option.status.code(),
        Some(78),
        "{}",
        stderr(&bad_option)
    );
    assert!(
        stderr(&bad_option).contains("PLUGBOARD_DATABASE_URL"),
        "{}",
        stderr(&bad_option)
    );

    // A server that cannot be reached is not configuration: it may come back.
    let unreachable = credentials(
        "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2",
        key_b.expose_secret(),
    );
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        stderr(&unreachable)
    );

    // An audit spool directory that cannot be one (here: a file is in the way).
    let in_the_way = dir.join("not-a-directory");
    std::fs::write(&in_the_way, "").unwrap();
    let spool = in_the_way.join("spool").display().to_string();
    let key_a_text = MasterKey::generate_base64().unwrap();
    let other_dir = dir.join("fresh");
    let fresh_url = format!(
        "sqlite://{}?mode=rwc",
        other_dir.join("credentials.db").display()
    );
    let bad_spool = credentials_with(
        &fresh_url,
        key_a_text.expose_secret(),
        &[("PLUGBOARD_AUDIT_SPOOL_DIR", spool.as_str())],
    );
    assert_eq!(bad_spool.status.code(), Some(78), "{}", stderr(&bad_spool));
    assert!(
        stderr(&bad_spool).contains("PLUGBOARD_AUDIT_SPOOL_DIR"),
        "{}",
        stderr(&bad_spool)
    );
    let _ = std::fs::remove_dir_all(dir);
}
