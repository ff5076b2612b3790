//! `plugboard dev` end to end: the one-process mode a newcomer runs first syncs the demo tenant's
//! Bullhorn sandbox on start, moves exactly the changed records on the next run, and every
//! service answers a client that is not written in Rust (buf curl, through reflection).

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use plugboard_proto::sync::v1::RunState;
use plugboard_tests::flows::Mesh;
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::Process;
use plugboard_tests::sandbox::SandboxAdmin;
use plugboard_tests::{eventually, free_port};

const DEMO_API_KEY: &str = "pb_dev_mode_test_key_0123456789";

/// Addresses printed by `plugboard dev` as `  service <name> <addr>` and `  sandbox bullhorn <url>`.
fn printed_addresses(log: &str) -> HashMap<String, String> {
    log.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("service"), Some(name), Some(addr)) => {
                    Some((name.to_owned(), addr.to_owned()))
                }
                (Some("sandbox"), Some("bullhorn"), Some(url)) => {
                    Some(("sandbox".to_owned(), url.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_syncs_the_demo_tenant_and_serves_reflection() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("pb-dev-{}", uuid::Uuid::new_v4()));
    let gateway = format!("127.0.0.1:{}", free_port());
    let dev = Process::start(
        "dev",
        &[
            "dev",
            "--data-dir",
            &data_dir.display().to_string(),
            "--gateway-addr",
            &gateway,
            "--demo-api-key",
            DEMO_API_KEY,
        ],
        &[],
        &data_dir.join("logs"),
    );
    eventually(
        "plugboard dev to print its addresses",
        Duration::from_secs(60),
        || {
            let ready = dev.log_text().contains("press ctrl-c to stop");
            async move { ready }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {}", dev.log_text()))?;
    let addresses = printed_addresses(&dev.log_text());
    let address = |name: &str| -> anyhow::Result<String> {
        addresses
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("plugboard dev did not print {name}: {addresses:?}"))
    };
    for name in [
        "credentials",
        "mapping",
        "sync",
        "health",
        "registry",
        "connector-bullhorn",
    ] {
        wait_serving(&address(name)?, Duration::from_secs(30)).await?;
    }
    let mesh_key = std::fs::read_to_string(data_dir.join("keys/mesh.key"))?;
    let mesh = Mesh {
        clients: TenantClients::new(mesh_key.trim(), "demo"),
        sync_addr: address("sync")?,
        credentials_addr: address("credentials")?,
        sandbox: SandboxAdmin::new(&address("sandbox")?),
        sandbox_url: address("sandbox")?,
    };

    // The first sync started by itself at start-up.
    mesh.wait_idle("demo-bullhorn").await?;
    mesh.assert_matches_sandbox("demo-bullhorn").await?;
    mesh.assert_incremental_moves_exactly("demo-bullhorn")
        .await?;
    let again = mesh.run_once("demo-bullhorn").await?;
    assert_eq!(again.state, RunState::Succeeded as i32, "{}", again.error);

    // The dashboard API: 401 without a key, the demo integration with a key.
    let http = reqwest::Client::new();
    let unauthorized = http
        .get(format!("http://{gateway}/api/v1/integrations"))
        .send()
        .await?;
    assert_eq!(unauthorized.status(), 401);
    let body: serde_json::Value = http
        .get(format!("http://{gateway}/api/v1/integrations"))
        .bearer_auth(DEMO_API_KEY)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(body["integrations"][0]["id"], "demo-bullhorn", "{body}");
    assert_eq!(body["integrations"][0]["status"], "operational", "{body}");
    let healthz = http.get(format!("http://{gateway}/healthz")).send().await?;
    assert_eq!(healthz.status(), 200);

    // A client not written in Rust reaches every service through reflection, with a token
    // from `plugboard token` as the README shows.
    let minted = Command::new(plugboard_tests::process::plugboard_bin())
        .args(["token", "--tenant", "demo", "--mesh-key-file"])
        .arg(data_dir.join("keys/mesh.key"))
        .output()?;
    anyhow::ensure!(
        minted.status.success(),
        "plugboard token: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout)?.trim().to_owned();
    let calls = [
        (
            "credentials",
            "plugboard.credentials.v1.CredentialsService/DescribeCredential",
            r#"{"connection_id":"demo-bullhorn"}"#,
            "oauth2_client",
        ),
        (
            "mapping",
            "plugboard.mapping.v1.MappingService/ListSpecs",
            r#"{"connector":"bullhorn"}"#,
            "candidate",
        ),
        (
            "sync",
            "plugboard.sync.v1.SyncService/ListSyncs",
            "{}",
            "demo-bullhorn",
        ),
        (
            "health",
            "plugboard.health.v1.IntegrationHealthService/GetStatus",
            "{}",
            "demo-bullhorn",
        ),
        (
            "registry",
            "plugboard.registry.v1.RegistryService/ListConnectors",
            "{}",
            "bullhorn",
        ),
        (
            "connector-bullhorn",
            "plugboard.connector.v1.ConnectorService/Discover",
            "{}",
            "JobOrder",
        ),
    ];
    for (service, method, body, expected) in calls {
        let addr = address(service)?;
        let health = buf_curl(
            &addr,
            "grpc.health.v1.Health/Check",
            "{}",
            None,
            Reflection::V1,
        )?;
        assert!(health.contains("SERVING"), "{service} health: {health}");
        // Reflection lists what this server serves, not every service of the mesh.
        let listed = buf_list_services(&addr)?;
        let own = method.split('/').next().unwrap_or_default();
        assert!(listed.contains(own), "{service} lists {listed}");
        let package = own
            .rsplit_once('.')
            .map(|(package, _)| package)
            .unwrap_or(own);
        let others = listed
            .lines()
            .filter(|name| name.starts_with("plugboard.") && !name.starts_with(package))
            .count();
        assert_eq!(
            others, 0,
            "{service} lists services it does not serve: {listed}"
        );
        let answer = buf_curl(&addr, method, body, Some(&token), Reflection::V1)?;
        assert!(answer.contains(expected), "{service} {method}: {answer}");
        // Older clients only speak the v1alpha reflection protocol.
        let answer = buf_curl(&addr, method, body, Some(&token), Reflection::V1Alpha)?;
        assert!(
            answer.contains(expected),
            "{service} {method} over v1alpha reflection: {answer}"
        );
    }
    Ok(())
}

/// The services `buf curl` finds through this server's reflection, one per line.
fn buf_list_services(addr: &str) -> anyhow::Result<String> {
    let buf = std::env::var("PLUGBOARD_BUF").unwrap_or_else(|_| "buf".to_owned());
    let output = Command::new(&buf)
        .args([
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-services",
        ])
        .arg(format!("http://{addr}"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "buf curl --list-services {addr}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Which server reflection protocol `buf curl` must use.
#[derive(Clone, Copy)]
enum Reflection {
    V1,
    V1Alpha,
}

/// Calls one RPC with `buf curl`, which learns the schema through server reflection.
fn buf_curl(
    addr: &str,
    method: &str,
    body: &str,
    token: Option<&str>,
    reflection: Reflection,
) -> anyhow::Result<String> {
    let buf = std::env::var("PLUGBOARD_BUF").unwrap_or_else(|_| "buf".to_owned());
    let mut command = Command::new(&buf);
    let reflect_protocol = match reflection {
        Reflection::V1 => "grpc-v1",
        Reflection::V1Alpha => "grpc-v1alpha",
    };
    command.args([
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        reflect_protocol,
        "-d",
        body,
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    command.arg(format!("http://{addr}/{method}"));
    let output = command
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {buf} (tests/run.sh installs it): {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "buf curl {method} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
