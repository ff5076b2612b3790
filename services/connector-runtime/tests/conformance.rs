//! Every manifest connector against its sandbox, through the one conformance suite. Every
//! `services/connector-*/conformance.yaml` is run; adding a connector adds its sandbox to
//! `sandbox()`, not a test.

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

/// The sandbox router serving `connector`; its standing rate budget is off, since the kit arms
/// its own 429s and the budget would only slow the suite down.
fn sandbox(connector: &str) -> axum::Router {
    match connector {
        "greenhouse" => {
            let mut options = plugboard_sandbox::greenhouse::GreenhouseOptions::new(
                &partners().join("greenhouse/harvest"),
            );
            options.rate_limit = None;
            plugboard_sandbox::greenhouse::router(options).unwrap()
        }
        "affinda" => {
            plugboard_sandbox::affinda::router(plugboard_sandbox::affinda::AffindaOptions::new(
                &partners().join("affinda/openapi_v3_official.yml"),
            ))
            .unwrap()
        }
        "textkernel" => plugboard_sandbox::textkernel::router(
            plugboard_sandbox::textkernel::TextkernelOptions::new(
                &partners().join("textkernel-sovren/sovren-v9-json"),
            ),
        )
        .unwrap(),
        "daxtra" => {
            plugboard_sandbox::daxtra::router(plugboard_sandbox::daxtra::DaxtraOptions::new(
                &partners().join("textkernel-sovren/sovren-v9-json"),
            ))
            .unwrap()
        }
        "rchilli" => {
            plugboard_sandbox::rchilli::router(plugboard_sandbox::rchilli::RchilliOptions::new(
                &partners().join("textkernel-sovren/sovren-v9-json"),
            ))
            .unwrap()
        }
        "bullhorn" => plugboard_sandbox::bullhorn::router(plugboard_sandbox::SandboxOptions {
            requests_per_second: None,
            ..plugboard_sandbox::SandboxOptions::default()
        }),
        "hmacboard" => plugboard_sandbox::hmacboard::router(Default::default()),
        "fieldglass" => plugboard_sandbox::fieldglass::router(),
        "beeline" => plugboard_sandbox::beeline::router(),
        "magnit" => plugboard_sandbox::magnit::router(),
        other => panic!("{other} has a conformance.yaml but no sandbox in sandbox()"),
    }
}

async fn start(connector: &str) -> String {
    let router = sandbox(connector);
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

/// Folders with a `conformance.yaml`.
fn conforming() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("services"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_prefix("connector-")?
                .to_owned();
            path.join("conformance.yaml").exists().then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_manifest_connector_passes_the_conformance_kit() {
    let connectors = conforming();
    for expected in [
        "affinda",
        "beeline",
        "bullhorn",
        "daxtra",
        "fieldglass",
        "greenhouse",
        "hmacboard",
        "magnit",
        "rchilli",
        "textkernel",
    ] {
        assert!(connectors.contains(&expected.to_owned()), "{connectors:?}");
    }
    for connector in connectors {
        suite(&connector, start(&connector).await).await;
    }
}

/// The kit's shared-cursor check is not a formality: Bullhorn's manifest without keyset
/// paging (plain `start` offsets over a fixed bound) loses a record when one changes mid-read.
#[tokio::test]
async fn offset_paging_without_keyset_fails_the_shared_cursor_check() {
    let source = repo().join("services/connector-bullhorn");
    let dir = std::env::temp_dir().join(format!("pb-no-keyset-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    for entry in std::fs::read_dir(source.join("mappings")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("mappings").join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(
        source.join("conformance.yaml"),
        dir.join("conformance.yaml"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(source.join("manifest.yaml")).unwrap();
    let without = manifest.replace("      keyset: true\n", "");
    assert_ne!(
        without, manifest,
        "the manifest has keyset paging to remove"
    );
    std::fs::write(dir.join("manifest.yaml"), without).unwrap();

    let outcomes = conformance::run(&dir, &start("bullhorn").await)
        .await
        .unwrap();
    let shared = outcomes
        .iter()
        .find(|o| o.check.starts_with("records sharing a cursor value"))
        .unwrap();
    assert!(
        matches!(&shared.verdict, Verdict::Failed(why) if why.contains("were lost")),
        "{shared}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// What `plugboard connector new` writes is a real starting point: the scaffolded manifest
/// passes the whole kit against the sandbox stub written beside it (the starter partner).
#[tokio::test]
async fn a_scaffolded_connector_passes_the_kit_against_its_sandbox_stub() {
    let services = std::env::temp_dir().join(format!("pb-scaffold-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&services).unwrap();
    let dir = plugboard_connector_runtime::tooling::scaffold(&services, "acme-ats").unwrap();
    let stub = std::fs::read_to_string(services.join("sandbox/src/acme_ats.rs")).unwrap();
    assert!(stub.contains("pub fn router("), "{stub}");
    let router =
        plugboard_sandbox::starter::router(plugboard_sandbox::starter::StarterOptions::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum_serve(listener, router).await });
    let outcomes = conformance::run(&dir, &url).await.unwrap();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let passed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Passed)
        .count();
    assert!(passed >= 9, "{outcomes:#?}");
    let _ = std::fs::remove_dir_all(services);
}

#[test]
fn manifest_connectors_have_no_rust() {
    for connector in [
        "affinda",
        "beeline",
        "bullhorn",
        "daxtra",
        "fieldglass",
        "greenhouse",
        "magnit",
        "rchilli",
        "textkernel",
    ] {
        assert_no_rust(&repo().join(format!("services/connector-{connector}")));
    }
}

fn assert_no_rust(dir: &Path) {
    assert!(dir.join("manifest.yaml").exists(), "{}", dir.display());
    let mut stack = vec![dir.to_path_buf()];
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
