//! Bullhorn's manifest on the generic runtime, against the Bullhorn sandbox on 127.0.0.1:0:
//! what the conformance kit does not ask of every connector (a refused user, the target
//! guard, the checkpoints a run writes).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use plugboard_connector_runtime::Error;
use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::manifest;
use plugboard_proto::connector::v1::ConnectionRef;
use plugboard_sandbox::SandboxOptions;
use plugboard_sandbox::bullhorn::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn sandbox() -> String {
    let router = plugboard_sandbox::router(SandboxOptions {
        requests_per_second: None,
        ..SandboxOptions::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn connector(password: &str, allow_private: bool) -> Connector {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-bullhorn");
    let loaded = manifest::load(&dir).unwrap();
    let secret = Secret::oauth2_client(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        "",
        DEMO_USERNAME,
        password,
    );
    Connector::new(loaded.manifest, SecretSource::Fixed(secret), allow_private).unwrap()
}

fn params(sandbox: &str, stream: &str, page_size: u32) -> ReadParams {
    ReadParams {
        tenant: "acme".to_owned(),
        connection: ConnectionRef {
            connection_id: "bh-1".to_owned(),
            settings_json: json!({"auth_url": sandbox, "login_url": sandbox}).to_string(),
        },
        stream: stream.to_owned(),
        checkpoint: String::new(),
        page_size,
        run_id: String::new(),
    }
}

#[tokio::test]
async fn a_refused_user_is_rejected_credentials_at_the_authorize_step() {
    let sandbox = sandbox().await;
    let connector = connector("wrong", true);
    let check = connector
        .check("acme", &params(&sandbox, "Candidate", 0).connection)
        .await
        .unwrap();
    assert!(!check.ok);
    assert!(check.reason.contains("credentials"), "{}", check.reason);
    let error = connector
        .read_all(params(&sandbox, "Candidate", 0))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CredentialsRejected(_)), "{error}");
    let good = demo_user_checks_ok(&sandbox).await;
    assert!(good, "the demo user logs in");
}

async fn demo_user_checks_ok(sandbox: &str) -> bool {
    connector(DEMO_PASSWORD, true)
        .check("acme", &params(sandbox, "Candidate", 0).connection)
        .await
        .unwrap()
        .ok
}

#[tokio::test]
async fn loopback_targets_are_refused_unless_allowed() {
    let sandbox = sandbox().await;
    let error = connector(DEMO_PASSWORD, false)
        .read_all(params(&sandbox, "Candidate", 0))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TargetNotAllowed { .. }), "{error}");
}

#[tokio::test]
async fn a_run_pages_by_keyset_and_ends_at_the_newest_timestamp() {
    let sandbox = sandbox().await;
    let pages = connector(DEMO_PASSWORD, true)
        .read_all(params(&sandbox, "JobOrder", 7))
        .await
        .unwrap();
    let held: Value = reqwest::get(format!("{sandbox}/_sandbox/records/JobOrder"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held = held["data"].as_array().unwrap();
    let records: usize = pages.iter().map(|page| page.records.len()).sum();
    assert_eq!(records, held.len());
    let first: Value = serde_json::from_str(&pages[0].checkpoint).unwrap();
    // Mid-run: the next page starts at the newest timestamp read, skipping what was read.
    let last_of_page: Value = serde_json::from_str(&pages[0].records[6].payload_json).unwrap();
    assert_eq!(
        first["page"]["keyset"]["at"], last_of_page["dateLastModified"],
        "{first}"
    );
    let last: Value = serde_json::from_str(&pages.last().unwrap().checkpoint).unwrap();
    let newest = held
        .iter()
        .filter_map(|r| r["dateLastModified"].as_i64())
        .max();
    assert_eq!(last["since"].as_i64(), newest, "{last}");
    assert_eq!(last["page"], "first");
}
