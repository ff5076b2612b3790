//! Two real `plugboard-credentials` processes on one Redis and one PostgreSQL database, against
//! the OAuth2 sandbox: 50 concurrent leases of an expired token, spread over both processes,
//! cause exactly one token-endpoint call and all get the new token. Both processes' output is
//! then scanned for the secrets that went through them.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    DescribeCredentialRequest, LeaseAccessRequest, OAuth2Client, PutCredentialRequest, Secret,
    secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tonic::Code;

const MESH_KEY: &str = "credentials-process-test-mesh-key-32-bytes";

fn client(
    addr: &str,
    subject: &str,
    connector: Option<&str>,
) -> CredentialsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
> {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    let caller = Caller {
        subject: subject.to_owned(),
        tenant: Some("acme".to_owned()),
        connector: connector.map(str::to_owned),
    };
    CredentialsServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        MeshCredentials::new(key, caller),
    )
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Kills the child when dropped, so a failed assertion leaves no process behind.
struct Process {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    port: u16,
    database_url: &str,
    redis_url: &str,
    master_key: &SecretString,
    dir: &std::path::Path,
) -> Process {
    spawn_with(
        port,
        database_url,
        master_key,
        dir,
        &[("PLUGBOARD_REDIS_URL", redis_url)],
    )
}

/// A credentials process on `port`, logging into `dir`, with `extra` variables set.
fn spawn_with(
    port: u16,
    database_url: &str,
    master_key: &SecretString,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Process {
    let log = dir.join(format!("credentials-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_plugboard-credentials"))
        .env_clear()
        .env("PLUGBOARD_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("PLUGBOARD_DATABASE_URL", database_url)
        .env("PLUGBOARD_MESH_KEY", MESH_KEY)
        .env("PLUGBOARD_MASTER_KEY", master_key.expose_secret())
        .env("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true")
        .env("PLUGBOARD_LOG", "debug")
        .envs(extra.iter().copied())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    Process { child, log }
}

async fn wait_ready(addr: &str) {
    let mut gateway = client(addr, "gateway", None);
    for _ in 0..200 {
        let answer = gateway
            .describe_credential(DescribeCredentialRequest {
                connection_id: "probe".into(),
            })
            .await;
        match answer {
            Err(status) if status.code() == Code::NotFound => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("credentials at {addr} did not start");
}

/// Runs `scenario` on a fresh PostgreSQL database (its url), dropped afterwards.
async fn on_fresh_database<F, Fut>(scenario: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let base = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("credproc_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin)
        .await
        .unwrap();
    let database_url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a postgres url with a database"),
    };

    let outcome = tokio::spawn(scenario(database_url)).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn two_processes_on_one_redis_refresh_once() {
    let redis_url = std::env::var("PLUGBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    on_fresh_database(|database_url| scenario(database_url, redis_url)).await;
}

/// Leases answer while the audit table takes no rows (their rows wait in the process's spool);
/// the process is then killed with SIGKILL before any row reached the table, and the next
/// process on the same spool ships every one of them, once.
#[tokio::test]
async fn leases_audited_before_a_sigkill_reach_the_table_through_the_next_process() {
    on_fresh_database(|database_url| spooled_then_stopped(database_url, Stop::Kill)).await;
}

/// The same, stopped with SIGTERM instead: the process ships its spool before it exits.
#[tokio::test]
async fn a_process_stopped_with_sigterm_ships_its_spooled_audit_rows_before_exiting() {
    on_fresh_database(|database_url| spooled_then_stopped(database_url, Stop::Terminate)).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Terminate,
}

async fn spooled_then_stopped(database_url: String, stop: Stop) {
    let dir = std::env::temp_dir().join(format!("pb-credspool-{}", uuid::Uuid::new_v4()));
    let logs = dir.join("logs");
    let spool = dir.join("spool");
    std::fs::create_dir_all(&logs).unwrap();
    let spool_setting = spool.display().to_string();
    let extra = [("PLUGBOARD_AUDIT_SPOOL_DIR", spool_setting.as_str())];
    let master_key = MasterKey::generate_base64().unwrap();
    let mut first = spawn_with(free_port(), &database_url, &master_key, &logs, &extra);
    let first_addr = format!("127.0.0.1:{}", log_port(&first));
    wait_ready(&first_addr).await;
    client(&first_addr, "gateway", None)
        .put_credential(PutCredentialRequest {
            connection_id: "spooled".into(),
            connector: "partner".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::ApiKey(
                    plugboard_proto::credentials::v1::ApiKey {
                        key: "spool-test-key".into(),
                    },
                )),
            }),
        })
        .await
        .unwrap();

    // The table takes no new row while this transaction holds its lock.
    let store = CredentialStore::open(&database_url, "credentials")
        .await
        .unwrap();
    let mut blocker = store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE credential_audit IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let leases = futures::future::join_all((0..40).map(|index| {
        let addr = first_addr.clone();
        async move {
            client(&addr, "connector:partner", Some("partner"))
                .lease_access(LeaseAccessRequest {
                    connection_id: "spooled".into(),
                    run_id: format!("run-{index}"),
                    ..Default::default()
                })
                .await
        }
    }));
    let answered = tokio::time::timeout(Duration::from_secs(20), leases)
        .await
        .expect("leases answer without the audit table");
    assert!(answered.iter().all(Result::is_ok), "{answered:?}");

    let lease_runs = || async {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT run_id FROM credential_audit WHERE action = 'lease' AND outcome = 'ok'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut runs: Vec<String> = rows.into_iter().map(|(run,)| run).collect();
        runs.sort();
        runs
    };
    let mut expected: Vec<String> = (0..40).map(|index| format!("run-{index}")).collect();
    expected.sort();
    match stop {
        Stop::Kill => {
            drop(first);
            blocker.rollback().await.unwrap();
            assert!(
                lease_runs().await.is_empty(),
                "no row reached the table before the kill"
            );
            let second = spawn_with(free_port(), &database_url, &master_key, &logs, &extra);
            wait_ready(&format!("127.0.0.1:{}", log_port(&second))).await;
            let mut runs = Vec::new();
            for _ in 0..100 {
                runs = lease_runs().await;
                if runs.len() >= expected.len() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(runs, expected, "every lease's row, once");
        }
        Stop::Terminate => {
            // std has no signal API; `kill` is on every machine the tests run on.
            let pid = first.child.id().to_string();
            let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(sent.success());
            // The process drains, then waits to ship its rows until the table takes them.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                first.child.try_wait().unwrap().is_none(),
                "it waits to ship"
            );
            blocker.rollback().await.unwrap();
            let mut exited = None;
            for _ in 0..200 {
                exited = first.child.try_wait().unwrap();
                if exited.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let status = exited.expect("it exits once its rows are shipped");
            assert!(status.success(), "{status}");
            assert_eq!(lease_runs().await, expected, "every lease's row, once");
            // An emptied spool directory is removed at exit.
            let spooled: u64 = std::fs::read_dir(&spool)
                .into_iter()
                .flatten()
                .map(|entry| entry.unwrap().metadata().unwrap().len())
                .sum();
            assert_eq!(spooled, 0, "nothing is left in the spool");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn scenario(database_url: String, redis_url: String) {
    // The partner.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let partner = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(plugboard_sandbox::oauth::serve(
        listener,
        OAuthOptions::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let token_calls = || async {
        let stats: Value = http
            .get(format!("{partner}/_sandbox/oauth2/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["token_calls"].as_u64().unwrap()
    };

    let dir = std::env::temp_dir().join(format!("pb-credproc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let master_key = MasterKey::generate_base64().unwrap();
    let first = spawn(free_port(), &database_url, &redis_url, &master_key, &dir);
    let first_addr = format!("127.0.0.1:{}", log_port(&first));
    wait_ready(&first_addr).await;
    let second = spawn(free_port(), &database_url, &redis_url, &master_key, &dir);
    let second_addr = format!("127.0.0.1:{}", log_port(&second));
    wait_ready(&second_addr).await;

    // A unique connection id keeps concurrent runs on the same Redis apart.
    let connection_id = format!("cc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    client(&first_addr, "gateway", None)
        .put_credential(PutCredentialRequest {
            connection_id: connection_id.clone(),
            connector: "partner".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    token_url: format!("{partner}/oauth2/token"),
                    scopes: vec![],
                    username: String::new(),
                    password: String::new(),
                    token_parameters: Default::default(),
                    client_secret_in_body: false,
                    client_certificate: None,
                })),
            }),
        })
        .await
        .unwrap();
    let lease = |addr: String| {
        let connection_id = connection_id.clone();
        async move {
            client(&addr, "connector:partner", Some("partner"))
                .lease_access(LeaseAccessRequest {
                    connection_id,
                    run_id: "run-x".into(),
                    ..Default::default()
                })
                .await
                .map(|response| response.into_inner().access_token)
        }
    };
    let before = lease(second_addr.clone()).await.unwrap();

    // Expire it, slow the partner down, and lease 50 times over both processes at once.
    let store = CredentialStore::open(&database_url, "credentials")
        .await
        .unwrap();
    sqlx::query("UPDATE oauth_tokens SET access_expires_at = 0 WHERE connection_id = $1")
        .bind(connection_id.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    http.post(format!("{partner}/_sandbox/oauth2/faults"))
        .json(&json!({ "delay_ms": 300 }))
        .send()
        .await
        .unwrap();
    let calls = token_calls().await;
    let addrs = [first_addr.clone(), second_addr.clone()];
    let tokens: Vec<String> =
        futures::future::join_all((0..50).map(|index| lease(addrs[index % 2].clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(token_calls().await, calls + 1, "exactly one token call");
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    assert_ne!(tokens[0], before);

    // Both processes served leases, and neither printed a secret.
    drop((first, second));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(text.contains("lease"), "{text}");
        for secret in [
            CLIENT_SECRET,
            before.as_str(),
            tokens[0].as_str(),
            master_key.expose_secret(),
            MESH_KEY,
        ] {
            assert!(!text.contains(secret), "a process log leaks a secret");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The port a process was told to listen on (kept in its log file name).
fn log_port(process: &Process) -> u16 {
    let name = process.log.file_stem().unwrap().to_str().unwrap();
    name.trim_start_matches("credentials-").parse().unwrap()
}
