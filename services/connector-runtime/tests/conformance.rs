//! Every manifest connector against its sandbox, through the one conformance suite. Adding a
//! connector adds a line to `SANDBOXES`, not a test.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use plugboard_connector_runtime::conformance::{self, Verdict};
use tokio::net::TcpListener;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared partner material: beside the checkout, as in CI.
fn partners() -> PathBuf {
    repo().join("../shared/partners")
}

async fn greenhouse_sandbox() -> String {
    let mut options = plugboard_sandbox::greenhouse::GreenhouseOptions::new(
        &partners().join("greenhouse/harvest"),
    );
    // The kit arms its own 429s; the standing budget would only slow the suite down.
    options.rate_limit = None;
    let router = plugboard_sandbox::greenhouse::router(options).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum_serve(listener, router).await });
    url
}

async fn axum_serve(listener: TcpListener, router: axum::Router) {
    axum::serve(listener, router).await.unwrap();
}

async fn suite(connector: &str, sandbox: String) {
    let dir = repo()
        .join("services")
        .join(format!("connector-{connector}"));
    let outcomes = conformance::run(&dir, &sandbox).await.unwrap();
    for outcome in &outcomes {
        println!("{connector}: {outcome}");
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
        .map(ToString::to_string)
        .collect();
    assert!(
        failed.is_empty(),
        "{connector} fails conformance:\n{}",
        failed.join("\n")
    );
}

#[tokio::test]
async fn greenhouse_passes_the_conformance_kit() {
    suite("greenhouse", greenhouse_sandbox().await).await;
}

#[test]
fn greenhouse_has_no_rust() {
    let dir = repo().join("services/connector-greenhouse");
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert!(
                path.extension().is_none_or(|ext| ext != "rs"),
                "{}",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}
