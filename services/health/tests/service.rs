//! Integration health on a real tonic server, on SQLite and on PostgreSQL.

// Helpers shared by the tests panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use chrono::{SubsecRound, Utc};
use plugboard_health::rules::Targets;
use plugboard_health::service::HealthService;
use plugboard_health::store::Store;
use plugboard_health::{Config, run};
use plugboard_proto::error::reason_of;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    GetStatusRequest, Heartbeat, IntegrationHealth, IntegrationStatus, ReportRequest, RunOutcome,
    RunOutcomeKind,
};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use sqlx::Row;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KEY: &str = "health-test-mesh-key-of-32-bytes-or-more!";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

type Client = IntegrationHealthServiceClient<InterceptedService<Channel, MeshCredentials>>;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), plugboard_health::Error>>,
}

impl Server {
    async fn start(database_url: &str, schema: &str) -> Server {
        let mut config = Config::new(database_url, SecretString::from(KEY.to_owned()));
        config.database_schema = schema.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, listener, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn credentials(&self) -> MeshCredentials {
        let key = MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap();
        MeshCredentials::service(key, "sync")
    }

    fn client(&self, credentials: MeshCredentials) -> Client {
        let channel = plugboard_runtime::channel::lazy_channel(&self.addr.to_string()).unwrap();
        IntegrationHealthServiceClient::with_interceptor(channel, credentials)
    }

    fn for_tenant(&self, tenant: &str) -> Client {
        self.client(self.credentials().for_tenant(tenant))
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("pb-health-{}", uuid::Uuid::new_v4()));
    plugboard_runtime::storage::sqlite_url(&dir, "health")
}

fn outcome(connection_id: &str, run_id: &str, kind: RunOutcomeKind) -> RunOutcome {
    RunOutcome {
        connection_id: connection_id.to_owned(),
        connector: "bullhorn".to_owned(),
        run_id: run_id.to_owned(),
        kind: kind.into(),
        reason: String::new(),
        records_written: 10,
        records_quarantined: 0,
        finished_at: String::new(),
        streams: Vec::new(),
        ..RunOutcome::default()
    }
}

fn beat(connection_id: &str, paused: bool) -> Heartbeat {
    Heartbeat {
        connection_id: connection_id.to_owned(),
        connector: "bullhorn".to_owned(),
        interval_seconds: 300,
        paused,
    }
}

async fn report_run(client: &mut Client, run: RunOutcome) {
    let request = ReportRequest {
        report: Some(Report::RunOutcome(run)),
    };
    client.report(request).await.unwrap();
}

async fn report_heartbeat(client: &mut Client, heartbeat: Heartbeat) {
    let request = ReportRequest {
        report: Some(Report::Heartbeat(heartbeat)),
    };
    client.report(request).await.unwrap();
}

async fn status_of(client: &mut Client, connection_id: &str) -> IntegrationHealth {
    let request = GetStatusRequest {
        connection_id: connection_id.to_owned(),
    };
    let mut response = client.get_status(request).await.unwrap().into_inner();
    assert_eq!(response.integrations.len(), 1);
    response.integrations.remove(0)
}

/// Failures, reconnects, quarantine and pauses, in the order a customer could live them.
async fn status_sequence(database_url: &str, schema: &str) {
    use RunOutcomeKind::{AuthFailed, Failed, Partial, Succeeded};
    let server = Server::start(database_url, schema).await;
    let mut client = server.for_tenant("acme");

    report_heartbeat(&mut client, beat("c-1", false)).await;
    let health = status_of(&mut client, "c-1").await;
    assert_eq!(health.status(), IntegrationStatus::Operational);
    assert_eq!(health.reason, "waiting for the first sync");
    assert_eq!(health.last_run_at, "");

    report_run(&mut client, outcome("c-1", "r-1", Succeeded)).await;
    let healthy = status_of(&mut client, "c-1").await;
    assert_eq!(healthy.status(), IntegrationStatus::Operational);
    assert_eq!(healthy.reason, "the last sync succeeded");
    assert!(!healthy.last_success_at.is_empty());
    // Still operational: `since` stays where the status began.
    assert_eq!(healthy.since, health.since);

    let mut failed = outcome("c-1", "r-2", Failed);
    failed.reason = "Bullhorn answered 503".to_owned();
    report_run(&mut client, failed.clone()).await;
    let degraded = status_of(&mut client, "c-1").await;
    assert_eq!(degraded.status(), IntegrationStatus::Degraded);
    assert!(degraded.reason.contains("Bullhorn answered 503"));
    assert!(degraded.since >= healthy.since);

    // The same run reported again counts once.
    report_run(&mut client, failed.clone()).await;
    failed.run_id = "r-3".to_owned();
    report_run(&mut client, failed.clone()).await;
    let still = status_of(&mut client, "c-1").await;
    assert_eq!(still.status(), IntegrationStatus::Degraded);
    assert_eq!(still.since, degraded.since);

    failed.run_id = "r-4".to_owned();
    report_run(&mut client, failed).await;
    let down = status_of(&mut client, "c-1").await;
    assert_eq!(down.status(), IntegrationStatus::Down);
    assert!(
        down.reason.starts_with("the last 3 syncs failed"),
        "{}",
        down.reason
    );
    assert_eq!(down.last_success_at, healthy.last_success_at);

    report_run(&mut client, outcome("c-1", "r-5", AuthFailed)).await;
    let refused = status_of(&mut client, "c-1").await;
    assert_eq!(refused.status(), IntegrationStatus::NeedsReconnect);
    assert_eq!(refused.reason, "Bullhorn refused the saved credentials");
    assert_eq!(
        refused.action,
        "Reconnect the integration with valid credentials"
    );

    let mut partial = outcome("c-1", "r-6", Partial);
    partial.records_quarantined = 2;
    report_run(&mut client, partial).await;
    let quarantined = status_of(&mut client, "c-1").await;
    assert_eq!(quarantined.status(), IntegrationStatus::Degraded);
    assert!(
        quarantined.reason.contains("2 records"),
        "{}",
        quarantined.reason
    );
    assert!(!quarantined.action.is_empty());

    report_heartbeat(&mut client, beat("c-1", true)).await;
    let paused = status_of(&mut client, "c-1").await;
    assert_eq!(paused.status(), IntegrationStatus::Paused);
    report_heartbeat(&mut client, beat("c-1", false)).await;
    report_run(&mut client, outcome("c-1", "r-7", Succeeded)).await;
    assert_eq!(
        status_of(&mut client, "c-1").await.status(),
        IntegrationStatus::Operational
    );

    // Every distinct run is in the history, the repeated one once.
    let table = if database_url.starts_with("postgres") {
        format!("{schema}.run_outcomes")
    } else {
        "run_outcomes".to_owned()
    };
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant = 'acme'");
    let runs: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 7);

    server.stop().await;
}

#[tokio::test]
async fn status_sequence_on_sqlite() {
    status_sequence(&temp_sqlite(), "health").await;
}

#[tokio::test]
async fn status_sequence_on_postgres() {
    let schema = format!("health_t{}", uuid::Uuid::new_v4().simple());
    status_sequence(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let server = Server::start(&temp_sqlite(), "health").await;
    let mut acme = server.for_tenant("acme");
    let mut globex = server.for_tenant("globex");

    report_run(&mut acme, outcome("c-1", "r-1", RunOutcomeKind::Succeeded)).await;
    let all = globex
        .get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.integrations.is_empty());
    let status = globex
        .get_status(GetStatusRequest {
            connection_id: "c-1".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("INTEGRATION_NOT_FOUND"));

    // The same connection id under another tenant is another integration.
    report_run(
        &mut globex,
        outcome("c-1", "r-1", RunOutcomeKind::AuthFailed),
    )
    .await;
    assert_eq!(
        status_of(&mut acme, "c-1").await.status(),
        IntegrationStatus::Operational
    );
    assert_eq!(
        status_of(&mut globex, "c-1").await.status(),
        IntegrationStatus::NeedsReconnect
    );
    let all = acme
        .get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.integrations.len(), 1);

    server.stop().await;
}

#[tokio::test]
async fn bad_reports_and_callers_are_refused() {
    let server = Server::start(&temp_sqlite(), "health").await;
    let mut acme = server.for_tenant("acme");

    let request = ReportRequest {
        report: Some(Report::RunOutcome(outcome(
            "c-1",
            "r-1",
            RunOutcomeKind::Unspecified,
        ))),
    };
    let status = acme.report(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("run_outcome.kind"),
        "{}",
        status.message()
    );

    let mut late = outcome("c-1", "r-1", RunOutcomeKind::Succeeded);
    late.finished_at = "yesterday".to_owned();
    let request = ReportRequest {
        report: Some(Report::RunOutcome(late)),
    };
    let status = acme.report(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let status = acme
        .report(ReportRequest { report: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A valid token without a tenant, and no token at all.
    let mut no_tenant = server.client(server.credentials());
    let status = no_tenant
        .get_status(GetStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let channel = plugboard_runtime::channel::lazy_channel(&server.addr.to_string()).unwrap();
    let mut anonymous = IntegrationHealthServiceClient::new(channel);
    let status = anonymous
        .get_status(GetStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    server.stop().await;
}

/// Silence shows with time alone; the clock is moved by hand instead of slept through.
#[tokio::test]
async fn a_silent_scheduler_degrades_and_since_marks_the_change() {
    let store = Store::open(&temp_sqlite(), "health").await.unwrap();
    let service = HealthService::new(store, Targets::default());
    // Whole seconds, because storage keeps milliseconds.
    let start = Utc::now().trunc_subsecs(0);
    let minutes = |n: i64| start + chrono::Duration::minutes(n);
    let heartbeat = Heartbeat {
        interval_seconds: 60,
        ..beat("c-1", false)
    };
    service
        .report_heartbeat("acme", &heartbeat, start)
        .await
        .unwrap();
    let run = outcome("c-1", "r-1", RunOutcomeKind::Succeeded);
    service.report_run("acme", &run, start).await.unwrap();

    let fine = service.status("acme", "c-1", minutes(3)).await.unwrap();
    assert_eq!(fine[0].assessment.status.as_str(), "operational");

    let silent = service.status("acme", "", minutes(4)).await.unwrap();
    assert_eq!(silent[0].assessment.status.as_str(), "degraded");
    assert_eq!(silent[0].assessment.reason, "no sync has run for 4 minutes");
    assert_eq!(
        silent[0].since,
        plugboard_runtime::storage::format_time(minutes(4))
    );

    let later = service.status("acme", "", minutes(9)).await.unwrap();
    assert_eq!(later[0].assessment.reason, "no sync has run for 9 minutes");
    assert_eq!(later[0].since, silent[0].since);

    // The scheduler comes back.
    service
        .report_heartbeat("acme", &heartbeat, minutes(10))
        .await
        .unwrap();
    let back = service.status("acme", "c-1", minutes(10)).await.unwrap();
    assert_eq!(back[0].assessment.status.as_str(), "operational");
    assert_eq!(
        back[0].since,
        plugboard_runtime::storage::format_time(minutes(10))
    );
}

/// Concurrent reports for one connection queue on its row: none is lost or double counted.
async fn concurrent_failures_all_count(database_url: &str, schema: &str) {
    let store = Store::open(database_url, schema).await.unwrap();
    let service = HealthService::new(store, Targets::default());
    // One finish time for all, so arrival order cannot make any of them a late report.
    let finished_at = plugboard_runtime::storage::now_text();
    // The first report creates the row; the rest race for it.
    let mut first = outcome("c-1", "r-0", RunOutcomeKind::Failed);
    first.finished_at.clone_from(&finished_at);
    service
        .report_run("acme", &first, Utc::now())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 1..12 {
        let reporter = service.clone();
        let finished_at = finished_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = outcome("c-1", &format!("r-{n}"), RunOutcomeKind::Failed);
            run.finished_at = finished_at;
            reporter.report_run("acme", &run, Utc::now()).await
        }));
        let reporter = service.clone();
        tasks.push(tokio::spawn(async move {
            reporter
                .report_heartbeat("acme", &beat("c-1", false), Utc::now())
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let views = service.status("acme", "c-1", Utc::now()).await.unwrap();
    assert_eq!(views[0].assessment.reason, "the last 12 syncs failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_on_sqlite() {
    concurrent_failures_all_count(&temp_sqlite(), "health").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_on_postgres() {
    let schema = format!("health_t{}", uuid::Uuid::new_v4().simple());
    concurrent_failures_all_count(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

/// Sync's honest outcomes: a suspect run (an empty full read after a big one) shows as degraded
/// with sync's reason, keeps the last success where it was, and is stored so that a restart or
/// another replica answers the same.
async fn a_suspect_run_shows_degraded_with_its_reason(database_url: &str, schema: &str) {
    let server = Server::start(database_url, schema).await;
    let mut client = server.for_tenant("acme");
    report_run(
        &mut client,
        outcome("c-s", "r-1", RunOutcomeKind::Succeeded),
    )
    .await;
    let healthy = status_of(&mut client, "c-s").await;
    let mut suspect = outcome("c-s", "r-2", RunOutcomeKind::Suspect);
    suspect.reason = "Bullhorn answered, but a full read of JobOrder returned no records where \
                      the previous full read returned 2500; nothing was deleted"
        .to_owned();
    report_run(&mut client, suspect).await;
    let health = status_of(&mut client, "c-s").await;
    assert_eq!(health.status(), IntegrationStatus::Degraded);
    assert!(
        health.reason.contains("cannot be trusted"),
        "{}",
        health.reason
    );
    assert!(health.reason.contains("JobOrder"), "{}", health.reason);
    assert!(!health.action.is_empty());
    assert_eq!(health.last_success_at, healthy.last_success_at);
    server.stop().await;
}

#[tokio::test]
async fn a_suspect_run_shows_degraded_on_sqlite() {
    a_suspect_run_shows_degraded_with_its_reason(&temp_sqlite(), "health").await;
}

#[tokio::test]
async fn a_suspect_run_shows_degraded_on_postgres() {
    let schema = format!("health_t{}", uuid::Uuid::new_v4().simple());
    a_suspect_run_shows_degraded_with_its_reason(POSTGRES, &schema).await;
}
