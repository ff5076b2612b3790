//! `plugboard connector new | check | stats` as a user runs them: the real binary, in a
//! scratch services folder.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn plugboard(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn new_writes_a_connector_that_checks_and_counts_with_its_sandbox_stub() {
    let root = std::env::temp_dir().join(format!("pb-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(root.join("services")).unwrap();

    let created = plugboard(&["connector", "new", "acme-vms"], &root);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    assert!(stdout.contains("services/connector-acme-vms"), "{stdout}");
    assert!(
        stdout.contains("pub mod acme_vms;"),
        "the next steps name the module: {stdout}"
    );
    for file in [
        "services/connector-acme-vms/manifest.yaml",
        "services/connector-acme-vms/mappings/candidate.inbound.yaml",
        "services/connector-acme-vms/conformance.yaml",
        "services/sandbox/src/acme_vms.rs",
    ] {
        assert!(root.join(file).is_file(), "{file} was not written");
    }

    let checked = plugboard(
        &["connector", "check", "services/connector-acme-vms"],
        &root,
    );
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(text(&checked.stdout).starts_with("ok  services/connector-acme-vms"));

    let stats = plugboard(&["connector", "stats"], &root);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let row = text(&stats.stdout)
        .lines()
        .find(|line| line.starts_with("acme-vms"))
        .map(str::to_owned)
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    // name, category, streams, writes, webhooks, manifest, mapping, rust, total
    assert_eq!(columns[1..5], ["ats", "1", "0", "0"], "{row}");
    assert_eq!(columns[7], "0", "no Rust in the connector: {row}");

    let again = plugboard(&["connector", "new", "acme-vms"], &root);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"));
    let bad = plugboard(&["connector", "new", "Acme VMS"], &root);
    assert!(!bad.status.success());

    // A broken manifest: the file, the line and the problem, and a failing exit code.
    let manifest = root.join("services/connector-acme-vms/manifest.yaml");
    let broken = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("category: ats", "category: crm");
    std::fs::write(&manifest, broken).unwrap();
    let refused = plugboard(
        &["connector", "check", "services/connector-acme-vms"],
        &root,
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("manifest.yaml:5: unknown category \"crm\""),
        "{}",
        text(&refused.stderr)
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn check_refuses_a_hook_this_binary_does_not_register_and_stats_counts_hook_rust() {
    let root = std::env::temp_dir().join(format!("pb-cli-{}", uuid::Uuid::new_v4()));
    let dir = root.join("services/connector-hmacboard");
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-hmacboard");
    for file in [
        "manifest.yaml",
        "mappings/candidate.inbound.yaml",
        "src/sign.rs",
    ] {
        std::fs::copy(shipped.join(file), dir.join(file)).unwrap();
    }

    let checked = plugboard(
        &["connector", "check", "services/connector-hmacboard"],
        &root,
    );
    assert!(checked.status.success(), "{}", text(&checked.stderr));

    let stats = plugboard(&["connector", "stats"], &root);
    let row = text(&stats.stdout)
        .lines()
        .find(|line| line.starts_with("hmacboard"))
        .map(str::to_owned)
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[1..5], ["job_board", "1", "0", "0"], "{row}");
    let rust: usize = columns[7].parse().unwrap();
    assert!(
        (20..=60).contains(&rust),
        "the hook's Rust is counted: {row}"
    );

    // A hook name the binary does not register: its line, the name and what is registered.
    let manifest = dir.join("manifest.yaml");
    let misnamed = std::fs::read_to_string(&manifest).unwrap().replace(
        "sign_request: hmacboard.sign",
        "sign_request: hmacboard.hmac",
    );
    std::fs::write(&manifest, misnamed).unwrap();
    let refused = plugboard(
        &["connector", "check", "services/connector-hmacboard"],
        &root,
    );
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(
            "manifest.yaml:19: sign_request hook \"hmacboard.hmac\" is not registered in this \
             binary (registered: hmacboard.sign)"
        ),
        "{stderr}"
    );

    // Serving that folder is bad configuration: exit 78 with the same line, before any port
    // is bound (nothing says "listening").
    let served = Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .args(["connector", "serve", "services/connector-hmacboard"])
        .current_dir(&root)
        .env_clear()
        .env("PLUGBOARD_MESH_KEY", "k".repeat(32))
        .env("PLUGBOARD_LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(served.status.code(), Some(78), "{}", text(&served.stderr));
    let stderr = text(&served.stderr);
    assert!(
        stderr.contains("manifest.yaml:19: sign_request hook"),
        "{stderr}"
    );
    assert!(
        !text(&served.stdout).contains("listening"),
        "bound before refusing"
    );
    let _ = std::fs::remove_dir_all(root);
}
