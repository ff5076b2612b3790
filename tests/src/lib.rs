//! Support for the end-to-end tests: starting Plugboard processes, a fresh PostgreSQL database
//! per test, the Bullhorn sandbox's admin API, signed gRPC clients, axe-core accessibility
//! audits of dashboard pages, and a mesh for document parsing pipelines ([`documents`]).
//!
//! The tests start the real `plugboard` binary, built by the test command before the tests run
//! (`cargo build -p plugboard`), as separate processes.

pub mod accessibility;
pub mod browser;
pub mod cluster;
pub mod documents;
pub mod flows;
pub mod greenhouse;
pub mod mesh;
pub mod partner_mesh;
pub mod process;
pub mod redis_server;
pub mod sandbox;

use std::time::Duration;

use anyhow::Context;
use sqlx::Executor;

pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A new, empty PostgreSQL database for one test, so runs never see each other's data.
pub async fn fresh_postgres_database() -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("pb_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(POSTGRES_ADMIN_URL)
        .await
        .context("PostgreSQL must run on 127.0.0.1:5432 (tests/run.sh starts it)")?;
    connection
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    Ok(format!("postgres://postgres@127.0.0.1:5432/{name}"))
}

/// A loopback port for a service a test starts, handed out once per machine at a time.
///
/// The service binds it later, after the probe below is closed, so the port must not be handed
/// to anyone else in between: ports come from below the kernel's ephemeral range (which
/// `127.0.0.1:0` listeners and outgoing connections draw from), each is reserved for this test
/// process's lifetime by a lock on a file in `$TMPDIR/plugboard-test-ports`, and a port this
/// process already holds is never returned twice. The lock goes when the process exits.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static HELD: Mutex<Vec<(u16, std::fs::File)>> = Mutex::new(Vec::new());
    const PORTS: std::ops::Range<u16> = 20_000..32_000;

    let dir = std::env::temp_dir().join("plugboard-test-ports");
    std::fs::create_dir_all(&dir).expect("the temp directory must be writable");
    let mut held = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..1_000 {
        let port = rand::random_range(PORTS);
        if held.iter().any(|(taken, _)| *taken == port) {
            continue;
        }
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // another test process holds it
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // in use by something that is not a test
        }
        held.push((port, lock));
        return port;
    }
    panic!("no free loopback port in {PORTS:?} after 1,000 tries");
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out after {timeout:?} waiting for {what}")
}

/// The environment that gives a split-mode connector process its own identity key and tells
/// credentials its public half, as a deployment does; every process may get both (only the
/// connector and credentials read them).
pub fn connector_identity_env(connector: &str) -> [(String, String); 2] {
    let (key, private) = plugboard_runtime::connector_keys::ConnectorSigningKey::generate();
    [
        (
            "PLUGBOARD_CONNECTOR_SIGNING_KEY".to_owned(),
            secrecy::ExposeSecret::expose_secret(&private).to_owned(),
        ),
        (
            "PLUGBOARD_CONNECTOR_PUBLIC_KEYS".to_owned(),
            format!("{connector}={}", key.public_key()),
        ),
    ]
}
