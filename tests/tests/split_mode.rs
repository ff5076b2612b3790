//! Split mode end to end: every service its own process on PostgreSQL and Redis, with the
//! Bullhorn sandbox as the partner, a 429 storm and malformed records injected.

use std::time::Duration;

use base64::Engine;
use plugboard_proto::sync::v1::RunState;
use plugboard_tests::flows::{Mesh, SANDBOX_CLIENT_ID};
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::{Process, run_to_end};
use plugboard_tests::sandbox::SandboxAdmin;
use plugboard_tests::{REDIS_URL, eventually, free_port, fresh_postgres_database};
use rand::RngCore;
use serde_json::json;

const SERVICES: [&str; 5] = ["registry", "credentials", "health", "mapping", "sync"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_syncs_bullhorn_end_to_end() -> anyhow::Result<()> {
    let database_url = fresh_postgres_database().await?;
    let log_dir = std::env::temp_dir().join(format!("pb-split-{}", uuid::Uuid::new_v4()));
    let mut master = [0u8; 32];
    rand::rng().fill_bytes(&mut master);
    let mesh_key = format!("split-mode-mesh-key-{}", uuid::Uuid::new_v4().simple());

    let addr = |port: u16| format!("127.0.0.1:{port}");
    let registry = addr(free_port());
    let credentials = addr(free_port());
    let health = addr(free_port());
    let mapping = addr(free_port());
    let sync = addr(free_port());
    let connector = addr(free_port());
    let gateway = addr(free_port());
    let sandbox = addr(free_port());
    let sandbox_url = format!("http://{sandbox}");

    let mut common: Vec<(String, String)> = [
        ("PLUGBOARD_DATABASE_URL", database_url.clone()),
        ("PLUGBOARD_MESH_KEY", mesh_key.clone()),
        ("PLUGBOARD_REDIS_URL", REDIS_URL.to_owned()),
        ("PLUGBOARD_REGISTRY_ADDR", registry.clone()),
        ("PLUGBOARD_CREDENTIALS_ADDR", credentials.clone()),
        ("PLUGBOARD_HEALTH_ADDR", health.clone()),
        ("PLUGBOARD_MAPPING_ADDR", mapping.clone()),
        ("PLUGBOARD_SYNC_ADDR", sync.clone()),
        (
            "PLUGBOARD_MASTER_KEY",
            base64::engine::general_purpose::STANDARD.encode(master),
        ),
        ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("PLUGBOARD_ADVERTISE_ADDR", connector.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    // Leases need the connector's proof, as in a deployment.
    common.extend(plugboard_tests::connector_identity_env("bullhorn"));
    let start = |name: &str, listen: &str| {
        let mut env = common.clone();
        env.push(("PLUGBOARD_LISTEN_ADDR".into(), listen.to_owned()));
        Process::start(name, &["serve", name], &env, &log_dir)
    };

    let mut processes = vec![
        start("sandbox-bullhorn", &sandbox),
        start("registry", &registry),
        start("credentials", &credentials),
        start("health", &health),
        start("mapping", &mapping),
        start("sync", &sync),
        start("connector-bullhorn", &connector),
        start("gateway", &gateway),
    ];
    for (name, service_addr) in
        SERVICES
            .iter()
            .zip([&registry, &credentials, &health, &mapping, &sync])
    {
        wait_serving(service_addr, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}; logs in {}", log_dir.display()))?;
    }
    wait_serving(&connector, Duration::from_secs(30)).await?;
    let http = reqwest::Client::new();
    eventually("the gateway's /healthz", Duration::from_secs(30), || {
        let request = http.get(format!("http://{gateway}/healthz")).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await?;
    for process in &mut processes {
        assert!(
            process.is_running(),
            "{} exited: {}",
            process.name(),
            process.log_text()
        );
    }

    // A tenant, its key, and a Bullhorn connection, as an operator and a platform service would.
    // Unique per run: Redis (run leases) is shared with every other test run on the machine.
    let tenant_id = format!("split-{}", uuid::Uuid::new_v4().simple());
    let tenant = tenant_id.as_str();
    let api_key = format!("pb_split_{}", uuid::Uuid::new_v4().simple());
    run_to_end(
        &[
            "tenant",
            "create",
            "--id",
            tenant,
            "--name",
            "Split Staffing",
            "--api-key",
            &api_key,
        ],
        &[("PLUGBOARD_DATABASE_URL".into(), database_url.clone())],
    )?;
    let mesh = Mesh {
        clients: TenantClients::new(&mesh_key, tenant),
        sync_addr: sync.clone(),
        credentials_addr: credentials.clone(),
        sandbox: SandboxAdmin::new(&sandbox_url),
        sandbox_url: sandbox_url.clone(),
    };
    let sandbox_secret = sandbox_demo_secret();
    mesh.connect_bullhorn(
        "bh-split",
        SANDBOX_CLIENT_ID,
        &sandbox_secret.0,
        &sandbox_secret.1,
        &sandbox_secret.2,
    )
    .await?;

    // The partner rate-limits and serves malformed records; the run must wait and go on.
    mesh.sandbox
        .faults(json!({ "rate_limit_burst": 3, "retry_after_seconds": 1, "malformed": true }))
        .await?;
    let first = mesh.run_once("bh-split").await?;
    assert_eq!(
        first.state,
        RunState::Succeeded as i32,
        "first run: {}",
        first.error
    );
    let waits: u32 = first.streams.iter().map(|s| s.rate_limited_waits).sum();
    assert!(waits >= 1, "the 429 storm was not waited out: {first:?}");
    let (quarantined, without_id) = mesh.quarantined("bh-split").await?;
    let quarantined_count: usize =
        quarantined.values().map(|ids| ids.len()).sum::<usize>() + without_id;
    assert!(
        quarantined_count >= 1,
        "malformed records were not quarantined"
    );
    mesh.assert_matches_sandbox("bh-split").await?;
    mesh.assert_incremental_moves_exactly("bh-split").await?;

    // The gateway: 401 without a valid key, and the tenant's integration with its counts.
    let unauthorized = http
        .get(format!("http://{gateway}/api/v1/integrations"))
        .bearer_auth("pb_not_a_key_at_all_0000")
        .send()
        .await?;
    assert_eq!(unauthorized.status(), 401);
    let body: serde_json::Value = http
        .get(format!("http://{gateway}/api/v1/integrations"))
        .bearer_auth(&api_key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let integration = &body["integrations"][0];
    assert_eq!(integration["id"], "bh-split", "{body}");
    assert_eq!(integration["connector"], "bullhorn");
    assert!(
        integration["records"]["candidate"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );

    // One trace from the customer's click to the partner's door: the gateway's run-now, sync's
    // run, the connector's lease and reads each continue the trace the request arrived with.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    run_now_traced(&gateway, &api_key, "bh-split", &trace_id).await?;
    mesh.wait_idle("bh-split").await?;
    let traces: serde_json::Value = http
        .get(format!("{sandbox_url}/_sandbox/traces"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let reached = traces["trace_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|id| id == trace_id.as_str()));
    assert!(
        reached,
        "trace {trace_id} did not reach the partner; it saw {traces}"
    );
    Ok(())
}

/// Logs in to the dashboard with `api_key` and presses "run now" on `connection_id`, with a
/// W3C `traceparent` naming `trace_id`.
async fn run_now_traced(
    gateway: &str,
    api_key: &str,
    connection_id: &str,
    trace_id: &str,
) -> anyhow::Result<()> {
    // The session cookie comes on the login's redirect, which must not be followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = http
        .post(format!("http://{gateway}/login"))
        .form(&[("api_key", api_key)])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("login set no cookie: {}", login.status()))?
        .to_owned();
    let run = http
        .post(format!("http://{gateway}/integrations/{connection_id}/run"))
        .header(reqwest::header::COOKIE, cookie)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await?;
    // Success is a redirect back to the integration's page.
    anyhow::ensure!(
        run.status().is_redirection(),
        "run now answered {}",
        run.status()
    );
    Ok(())
}

/// The sandbox's demo client secret, username and password.
fn sandbox_demo_secret() -> (String, String, String) {
    (
        plugboard_tests::flows::SANDBOX_CLIENT_SECRET.to_owned(),
        plugboard_tests::flows::SANDBOX_USERNAME.to_owned(),
        plugboard_tests::flows::SANDBOX_PASSWORD.to_owned(),
    )
}
