//! Benchmark for issue #6: records per second of a full inbound sync (Bullhorn sandbox →
//! connector → mapping → sync's record store), on SQLite and on PostgreSQL, beside dlt's REST
//! API source reading the same sandbox endpoint into duckdb.
//!
//! Every Plugboard service runs as its own `plugboard serve <svc>` process (built with
//! `cargo build --release -p plugboard`); one sandbox process serves all three measurements, so
//! every reader sees the same records at the same address. Each measurement prints one JSON
//! line; a summary line with the ratios comes last.
//!
//! Knobs (environment): `BENCH_CANDIDATES` (default 100000), `BENCH_PAGE_SIZE` (default 500,
//! Bullhorn's cap), `BENCH_PEERS_DIR` (where `shared/bench/setup.sh` installed dlt; default
//! `$CARGO_TARGET_DIR/peers`), `BENCH_DLT_SCRIPT` (default `/work/shared/bench/dlt_rest.py`),
//! `BENCH_SKIP` (comma list of `sqlite`, `postgres`, `dev`, `dlt`).
//!
//! `dev` is the whole mesh in ONE `plugboard dev` process on SQLite (the "dev process"
//! memory goal), syncing the same sandbox, which stays a process of its own.
//!
//! Run: `cargo build --release -p plugboard && cargo bench -p plugboard-tests --bench full_sync`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use plugboard_proto::credentials::v1::{OAuth2Client, PutCredentialRequest, Secret, secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::{CreateSyncRequest, GetRunRequest, RunState, TriggerRunRequest};
use plugboard_tests::flows::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::plugboard_bin;
use plugboard_tests::{eventually, free_port, fresh_postgres_database};
use rand::RngCore;
use serde_json::{Value, json};

const TENANT: &str = "bench-tenant";
const CONNECTION: &str = "bh-bench";

/// One `plugboard serve <service>` process, killed on drop.
struct Served {
    name: String,
    child: Child,
}

impl Served {
    fn start(service: &str, listen: &str, env: &[(String, String)], logs: &Path) -> Served {
        let log = std::fs::File::create(logs.join(format!("{service}.log"))).expect("log file");
        let child = Command::new(plugboard_bin())
            .args(["serve", service])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Info logs per page would be part of what we measure; warnings are what matter.
            .env("PLUGBOARD_LOG", "warn")
            .env("PLUGBOARD_LISTEN_ADDR", listen)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .expect("the plugboard binary starts");
        Served {
            name: service.to_owned(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak and current resident memory (MB) and CPU seconds used so far, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    peak_mb: f64,
    rss_mb: f64,
    cpu_s: f64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let ticks: f64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|n| n.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    Usage {
        peak_mb: round1(kb("VmHWM:") / 1024.0),
        rss_mb: round1(kb("VmRSS:") / 1024.0),
        // USER_HZ is 100 on Linux.
        cpu_s: round1(ticks / 100.0),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this target has no harness and takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let candidates: usize = env_or("BENCH_CANDIDATES", "100000").parse()?;
    let page_size: u32 = env_or("BENCH_PAGE_SIZE", "500").parse()?;
    let skip = env_or("BENCH_SKIP", "");
    let skipped = |what: &str| skip.split(',').any(|s| s.trim() == what);
    let logs = std::env::temp_dir().join(format!("pb-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&logs)?;
    eprintln!("full_sync: logs in {}", logs.display());

    let sandbox_addr = format!("127.0.0.1:{}", free_port());
    let sandbox_url = format!("http://{sandbox_addr}");
    let sandbox_env: Vec<(String, String)> = [
        ("PLUGBOARD_SANDBOX_CANDIDATES", candidates.to_string()),
        ("PLUGBOARD_SANDBOX_JOB_ORDERS", "5".to_owned()),
        ("PLUGBOARD_SANDBOX_SUBMISSIONS", "5".to_owned()),
        ("PLUGBOARD_SANDBOX_PLACEMENTS", "2".to_owned()),
        ("PLUGBOARD_SANDBOX_REQUESTS_PER_SECOND", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let sandbox = Served::start("sandbox-bullhorn", &sandbox_addr, &sandbox_env, &logs);
    let http = reqwest::Client::new();
    eventually("the sandbox to answer", Duration::from_secs(120), || {
        let request = http.get(format!("{sandbox_url}/_sandbox/stats")).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await?;

    let mut results = Vec::new();
    for backend in ["sqlite", "postgres"] {
        if skipped(backend) {
            continue;
        }
        let result = plugboard_run(backend, &sandbox, &sandbox_url, page_size, &logs).await?;
        println!("{result}");
        results.push(result);
    }
    if !skipped("dev") {
        let result = dev_run(&sandbox, &sandbox_url, page_size, &logs).await?;
        println!("{result}");
        results.push(result);
    }
    if !skipped("dlt") {
        let result = dlt_run(&sandbox, &sandbox_url, page_size).await?;
        println!("{result}");
        results.push(result);
    }

    let rate = |name: &str| {
        results
            .iter()
            .find(|r| r["measurement"] == name)
            .and_then(|r| r["records_per_s"].as_f64())
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => json!(((a / b) * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let sqlite = rate("plugboard_sqlite");
    let postgres = rate("plugboard_postgres");
    let dev = rate("plugboard_dev_sqlite");
    let dev_peak = results
        .iter()
        .find(|r| r["measurement"] == "plugboard_dev_sqlite")
        .and_then(|r| r["dev_process_peak_rss_mb"].as_f64());
    let dlt = rate("dlt");
    println!(
        "{}",
        json!({
            "summary": true,
            "candidates": candidates,
            "page_size": page_size,
            "plugboard_sqlite_records_per_s": sqlite,
            "plugboard_postgres_records_per_s": postgres,
            "plugboard_dev_sqlite_records_per_s": dev,
            "dev_process_peak_rss_mb": dev_peak,
            "dlt_records_per_s": dlt,
            "ratio_sqlite_over_dlt": ratio(sqlite, dlt),
            "ratio_postgres_over_dlt": ratio(postgres, dlt),
            "ratio_dev_sqlite_over_dlt": ratio(dev, dlt),
            "goal_sqlite_50000_per_s_met": sqlite.or(dev).map(|r| r >= 50_000.0),
            "goal_dev_peak_150_mb_met": dev_peak.map(|mb| mb <= 150.0),
            "load_average_end": load_average(),
        })
    );
    Ok(())
}

/// A mesh on `backend`, a Candidate-only sync of the whole sandbox, timed from the trigger to
/// the run's end as seen by polling every 20 ms.
async fn plugboard_run(
    backend: &str,
    sandbox: &Served,
    sandbox_url: &str,
    page_size: u32,
    logs: &Path,
) -> anyhow::Result<Value> {
    let logs = logs.join(backend);
    std::fs::create_dir_all(&logs)?;
    let data_dir = logs.join("data");
    let database_url =
        |service: &str| -> String { plugboard_runtime::storage::sqlite_url(&data_dir, service) };
    let postgres_url = match backend {
        "postgres" => Some(fresh_postgres_database().await?),
        _ => None,
    };
    let db = |service: &str| {
        postgres_url
            .clone()
            .unwrap_or_else(|| database_url(service))
    };

    let mut master = [0u8; 32];
    rand::rng().fill_bytes(&mut master);
    let mesh_key = format!("bench-mesh-key-{}", uuid::Uuid::new_v4().simple());
    let addr = || format!("127.0.0.1:{}", free_port());
    let (registry, credentials, health, mapping, connector, sync) =
        (addr(), addr(), addr(), addr(), addr(), addr());
    let common: Vec<(String, String)> = [
        ("PLUGBOARD_MESH_KEY", mesh_key.clone()),
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
        ("PLUGBOARD_SYNC_PAGE_SIZE", page_size.to_string()),
        // Manual runs only: the scheduler has nothing due, so it only wakes to look.
        ("PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS", "60".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let with_db = |service: &str| {
        let mut env = common.clone();
        env.push(("PLUGBOARD_DATABASE_URL".to_owned(), db(service)));
        env
    };
    let services = [
        Served::start("registry", &registry, &with_db("registry"), &logs),
        Served::start("credentials", &credentials, &with_db("credentials"), &logs),
        Served::start("health", &health, &with_db("health"), &logs),
        Served::start("mapping", &mapping, &with_db("mapping"), &logs),
        Served::start("connector-bullhorn", &connector, &common, &logs),
        Served::start("sync", &sync, &with_db("sync"), &logs),
    ];
    for (service, service_addr) in services.iter().zip([
        &registry,
        &credentials,
        &health,
        &mapping,
        &connector,
        &sync,
    ]) {
        wait_serving(service_addr, Duration::from_secs(120))
            .await
            .with_context(|| format!("{} (logs in {})", service.name, logs.display()))?;
    }
    let processes: Vec<(&str, u32)> = services
        .iter()
        .map(|service| (service.name.as_str(), service.pid()))
        .collect();
    let addresses = MeshAddresses {
        mesh_key: &mesh_key,
        registry: &registry,
        credentials: &credentials,
        sync: &sync,
    };
    let mut result = measured_run(&addresses, &processes, sandbox, sandbox_url, &logs).await?;
    let processes = &result["processes"];
    let pipeline_peak: f64 = ["sync", "mapping", "connector-bullhorn"]
        .iter()
        .filter_map(|name| processes[*name]["peak_rss_mb"].as_f64())
        .sum();
    // What one process holding every service would need at most, had each service peaked at
    // once; the binary's shared pages are counted once per process, so this overstates it.
    // The sandbox's peak is over every measurement so far.
    let mesh_peak: f64 = processes
        .as_object()
        .into_iter()
        .flat_map(|processes| processes.values())
        .filter_map(|p| p["peak_rss_mb"].as_f64())
        .sum();
    result["measurement"] = json!(format!("plugboard_{backend}"));
    result["sync_connector_mapping_peak_rss_mb_sum"] = json!(round1(pipeline_peak));
    result["all_processes_peak_rss_mb_sum"] = json!(round1(mesh_peak));
    Ok(result)
}

/// The whole mesh in ONE process, as `plugboard dev` runs it (registry, credentials, health,
/// mapping, sync, the Bullhorn connector, the gateway and dev's own small demo sandbox), on
/// SQLite; it syncs the bench's sandbox, a process of its own, so the sandbox's seeded records
/// are not counted in the dev process's memory.
async fn dev_run(
    sandbox: &Served,
    sandbox_url: &str,
    page_size: u32,
    logs: &Path,
) -> anyhow::Result<Value> {
    let logs = logs.join("dev");
    let data_dir = logs.join("data");
    std::fs::create_dir_all(data_dir.join("keys"))?;
    // dev keeps the mesh key it finds in its data directory; the bench signs its calls with it.
    let mesh_key = format!("bench-mesh-key-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(data_dir.join("keys/mesh.key"), &mesh_key)?;
    let stdout_path = logs.join("dev.stdout");
    let stdout = std::fs::File::create(&stdout_path)?;
    let stderr = std::fs::File::create(logs.join("dev.stderr"))?;
    let gateway = format!("127.0.0.1:{}", free_port());
    let child = Command::new(plugboard_bin())
        .arg("dev")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--gateway-addr", &gateway])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PLUGBOARD_LOG", "warn")
        .env("PLUGBOARD_SYNC_PAGE_SIZE", page_size.to_string())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()?;
    let dev = Served {
        name: "plugboard-dev".to_owned(),
        child,
    };
    // dev prints each service's address once everything is up.
    let printed = |name: &str| -> Option<String> {
        let text = std::fs::read_to_string(&stdout_path).ok()?;
        let prefix = format!("  service {name} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_owned))
    };
    eventually(
        "plugboard dev to print its addresses",
        Duration::from_secs(120),
        || {
            let ready = printed("connector-bullhorn").is_some();
            async move { ready }
        },
    )
    .await
    .with_context(|| format!("plugboard dev did not start (logs in {})", logs.display()))?;
    let address = |name: &str| printed(name).with_context(|| format!("no {name} address"));
    let (registry, credentials, sync) = (
        address("registry")?,
        address("credentials")?,
        address("sync")?,
    );
    // The demo tenant's first sync (dev's own 430-record sandbox) runs at start; let it end so
    // it is not measured.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let addresses = MeshAddresses {
        mesh_key: &mesh_key,
        registry: &registry,
        credentials: &credentials,
        sync: &sync,
    };
    let processes = [(dev.name.as_str(), dev.pid())];
    let mut result = measured_run(&addresses, &processes, sandbox, sandbox_url, &logs).await?;
    result["measurement"] = json!("plugboard_dev_sqlite");
    result["dev_process_peak_rss_mb"] = result["processes"]["plugboard-dev"]["peak_rss_mb"].clone();
    result["dev_process_contains"] = json!(
        "registry, credentials, health, mapping, sync, connector-bullhorn, gateway, dev's demo \
         sandbox (150 candidates); not the bench's sandbox"
    );
    Ok(result)
}

/// Where a mesh's services listen, and the key its calls are signed with.
struct MeshAddresses<'a> {
    mesh_key: &'a str,
    registry: &'a str,
    credentials: &'a str,
    sync: &'a str,
}

/// A Candidate-only sync of the whole sandbox through `mesh`, timed from the trigger to the
/// run's end as seen by polling every 20 ms, with the CPU and memory of `processes` (name, pid)
/// and of the sandbox.
async fn measured_run(
    mesh: &MeshAddresses<'_>,
    processes: &[(&str, u32)],
    sandbox: &Served,
    sandbox_url: &str,
    logs: &Path,
) -> anyhow::Result<Value> {
    let clients = TenantClients::new(mesh.mesh_key, TENANT);
    let channel = plugboard_runtime::channel::lazy_channel(mesh.registry)?;
    let registry_client =
        RegistryServiceClient::with_interceptor(channel, clients.credentials.clone());
    eventually(
        "the Bullhorn connector to register",
        Duration::from_secs(60),
        || {
            let mut registry = registry_client.clone();
            async move {
                registry
                    .resolve(ResolveRequest {
                        connector: "bullhorn".into(),
                    })
                    .await
                    .is_ok()
            }
        },
    )
    .await?;

    clients
        .credentials(mesh.credentials)
        .put_credential(PutCredentialRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                    client_id: SANDBOX_CLIENT_ID.into(),
                    client_secret: SANDBOX_CLIENT_SECRET.into(),
                    token_url: format!("{sandbox_url}/oauth/token"),
                    scopes: Vec::new(),
                    username: SANDBOX_USERNAME.into(),
                    password: SANDBOX_PASSWORD.into(),
                    token_parameters: Default::default(),
                    client_secret_in_body: false,
                    client_certificate: None,
                })),
            }),
        })
        .await?;
    let mut sync_client = clients.sync(mesh.sync);
    sync_client
        .create_sync(CreateSyncRequest {
            connection_id: CONNECTION.into(),
            connector: "bullhorn".into(),
            settings_json: json!({ "auth_url": sandbox_url, "login_url": sandbox_url }).to_string(),
            streams: vec!["Candidate".into()],
            interval_seconds: 0,
        })
        .await?;

    let before: Vec<Usage> = processes.iter().map(|(_, pid)| usage(*pid)).collect();
    let sandbox_before = usage(sandbox.pid());
    let load_start = load_average();
    let started = Instant::now();
    let run_id = sync_client
        .trigger_run(TriggerRunRequest {
            connection_id: CONNECTION.into(),
        })
        .await?
        .into_inner()
        .run_id;
    let run = loop {
        let run = sync_client
            .get_run(GetRunRequest {
                run_id: run_id.clone(),
            })
            .await?
            .into_inner()
            .run
            .context("GetRun returned no run")?;
        if run.state != RunState::Running as i32 {
            break run;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "run {run_id} did not finish in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        run.state == RunState::Succeeded as i32,
        "run failed: {} (logs in {})",
        run.error,
        logs.display()
    );
    let read: u64 = run.streams.iter().map(|s| s.records_read).sum();
    let written: u64 = run.streams.iter().map(|s| s.records_written).sum();
    let quarantined: u64 = run.streams.iter().map(|s| s.records_quarantined).sum();
    let pages: u32 = run.streams.iter().map(|s| s.pages).sum();

    let mut usages = serde_json::Map::new();
    for ((name, pid), start) in processes.iter().zip(&before) {
        let end = usage(*pid);
        usages.insert(
            (*name).to_owned(),
            json!({
                "peak_rss_mb": end.peak_mb,
                "rss_mb": end.rss_mb,
                "cpu_s_during_run": round1(end.cpu_s - start.cpu_s),
            }),
        );
    }
    let sandbox_end = usage(sandbox.pid());
    usages.insert(
        "sandbox-bullhorn".to_owned(),
        json!({
            "peak_rss_mb": sandbox_end.peak_mb,
            "rss_mb": sandbox_end.rss_mb,
            "cpu_s_during_run": round1(sandbox_end.cpu_s - sandbox_before.cpu_s),
        }),
    );
    Ok(json!({
        "records": read,
        "records_written": written,
        "records_quarantined": quarantined,
        "pages": pages,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "records_per_s": (read as f64 / seconds).round(),
        "processes": usages,
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }))
}

/// Logs in as Bullhorn's headless OAuth flow does and runs `dlt_rest.py` on the same
/// `query/Candidate` request the connector sends.
async fn dlt_run(sandbox: &Served, sandbox_url: &str, page_size: u32) -> anyhow::Result<Value> {
    let target = PathBuf::from(env_or("CARGO_TARGET_DIR", "target"));
    let peers = std::env::var("BENCH_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target.join("peers"));
    let python = peers.join("venv/bin/python");
    let script = env_or("BENCH_DLT_SCRIPT", "/work/shared/bench/dlt_rest.py");
    anyhow::ensure!(
        python.exists(),
        "{} is missing: run shared/bench/setup.sh {}",
        python.display(),
        peers.display()
    );
    let (token, rest_url) = bullhorn_login(sandbox_url).await?;
    let path = "query/Candidate?where=dateLastModified%3E%3D0&fields=*&orderBy=dateLastModified,id";
    let sandbox_before = usage(sandbox.pid());
    let load_start = load_average();
    let started = Instant::now();
    let output = tokio::process::Command::new(&python)
        .args([
            script.as_str(),
            "--base-url",
            &rest_url,
            "--path",
            path,
            "--paginator",
            "offset",
            "--offset-param",
            "start",
            "--limit-param",
            "count",
            "--limit",
            &page_size.to_string(),
            "--total-path",
            "total",
            "--header",
            &format!("BhRestToken:{token}"),
        ])
        .stdin(Stdio::null())
        .output()
        .await?;
    let wall = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "dlt_rest.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .with_context(|| format!("dlt printed no JSON line: {stdout}"))?;
    let mut result: Value = serde_json::from_str(line)?;
    let sandbox_end = usage(sandbox.pid());
    let object = result
        .as_object_mut()
        .context("dlt's line is not an object")?;
    object.insert("measurement".into(), json!("dlt"));
    object.insert(
        "process_wall_seconds".into(),
        json!((wall * 1000.0).round() / 1000.0),
    );
    object.insert(
        "sandbox_cpu_s_during_run".into(),
        json!(round1(sandbox_end.cpu_s - sandbox_before.cpu_s)),
    );
    object.insert("load_average_start".into(), json!(load_start));
    object.insert("load_average_end".into(), json!(load_average()));
    Ok(result)
}

/// Bullhorn's headless login: authorize (redirect carries the code), token, REST login.
async fn bullhorn_login(sandbox_url: &str) -> anyhow::Result<(String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let authorize = http
        .get(format!("{sandbox_url}/oauth/authorize"))
        .query(&[
            ("client_id", SANDBOX_CLIENT_ID),
            ("response_type", "code"),
            ("action", "Login"),
            ("username", SANDBOX_USERNAME),
            ("password", SANDBOX_PASSWORD),
        ])
        .send()
        .await?;
    let location = authorize
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("authorize did not redirect")?;
    let code = reqwest::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the redirect")?;
    let token: Value = http
        .post(format!("{sandbox_url}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = token["access_token"].as_str().context("no access_token")?;
    let login: Value = http
        .get(format!("{sandbox_url}/rest-services/login"))
        .query(&[("version", "2.0"), ("access_token", access)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        login["BhRestToken"]
            .as_str()
            .context("no BhRestToken")?
            .to_owned(),
        login["restUrl"].as_str().context("no restUrl")?.to_owned(),
    ))
}
