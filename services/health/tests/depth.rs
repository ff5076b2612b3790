//! Incidents, uptime, freshness, correctness warnings and `WatchStatus` on a real tonic server
//! (SQLite, plus PostgreSQL for the incident timeline).

// Helpers shared by the tests panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use plugboard_health::rules::Targets;
use plugboard_health::service::HealthService;
use plugboard_health::store::Store;
use plugboard_health::{Config, run};
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    GetUptimeRequest, IntegrationStatus, ListIncidentsRequest, ReportRequest, RunOutcome,
    RunOutcomeKind, StreamOutcome, WatchStatusRequest,
};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KEY: &str = "health-test-mesh-key-of-32-bytes-or-more!";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

type Client = IntegrationHealthServiceClient<InterceptedService<Channel, MeshCredentials>>;

async fn start(database_url: &str, schema: &str) -> SocketAddr {
    let mut config = Config::new(database_url, SecretString::from(KEY.to_owned()));
    config.database_schema = schema.to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(config, listener, std::future::pending()));
    addr
}

fn client(addr: SocketAddr, tenant: &str) -> Client {
    let key = MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap();
    let channel = plugboard_runtime::channel::lazy_channel(&addr.to_string()).unwrap();
    IntegrationHealthServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key, "sync").for_tenant(tenant),
    )
}

fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("pb-health-{}", uuid::Uuid::new_v4()));
    plugboard_runtime::storage::sqlite_url(&dir, "health")
}

fn outcome(run_id: &str, kind: RunOutcomeKind, jobs_read: u64) -> RunOutcome {
    RunOutcome {
        connection_id: "c-1".to_owned(),
        connector: "bullhorn".to_owned(),
        run_id: run_id.to_owned(),
        kind: kind.into(),
        reason: if kind == RunOutcomeKind::Failed {
            "Bullhorn answered 500".to_owned()
        } else {
            String::new()
        },
        streams: vec![StreamOutcome {
            stream: "JobOrder".to_owned(),
            entity: "job".to_owned(),
            records_read: jobs_read,
            checkpoint_before: format!("before-{run_id}"),
            checkpoint_after: format!("after-{run_id}"),
            ..StreamOutcome::default()
        }],
        ..RunOutcome::default()
    }
}

async fn report(client: &mut Client, run: RunOutcome) {
    let request = ReportRequest {
        report: Some(Report::RunOutcome(run)),
    };
    client.report(request).await.unwrap();
}

async fn incidents_open_and_resolve_with_a_timeline(database_url: &str, schema: &str) {
    use RunOutcomeKind::{Failed, Succeeded};
    let addr = start(database_url, schema).await;
    let mut acme = client(addr, "acme");
    report(&mut acme, outcome("r1", Succeeded, 50)).await;
    for run in ["r2", "r3", "r4"] {
        report(&mut acme, outcome(run, Failed, 0)).await;
    }
    let open = acme
        .list_incidents(ListIncidentsRequest {
            connection_id: "c-1".to_owned(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].resolved_at, "");
    assert_eq!(open[0].worst_status(), IntegrationStatus::Down);
    assert_eq!(open[0].title, "Bullhorn sync is degraded");
    let statuses: Vec<_> = open[0].timeline.iter().map(|u| u.status()).collect();
    assert_eq!(
        statuses,
        [IntegrationStatus::Degraded, IntegrationStatus::Down]
    );
    assert!(open[0].timeline[0].reason.contains("Bullhorn answered 500"));

    report(&mut acme, outcome("r5", Succeeded, 60)).await;
    let resolved = acme
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(resolved.len(), 1);
    assert!(!resolved[0].resolved_at.is_empty());
    assert_eq!(resolved[0].timeline.len(), 3);
    assert_eq!(
        resolved[0].timeline[2].status(),
        IntegrationStatus::Operational
    );

    // Another failure opens a new incident; the old one stays resolved.
    report(&mut acme, outcome("r6", Failed, 0)).await;
    let both = acme
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(both.len(), 2);
    assert_eq!(both[0].resolved_at, "", "newest first, and open");
    assert_eq!(both[1].id, resolved[0].id);

    // Uptime: six runs today, four failed.
    let uptime = acme
        .get_uptime(GetUptimeRequest {
            connection_id: "c-1".to_owned(),
            days: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uptime.days.len(), 90);
    let today = uptime.days.last().unwrap();
    assert_eq!(today.date, Utc::now().format("%Y-%m-%d").to_string());
    assert_eq!((today.runs, today.failed_runs), (6, 4));
    assert_eq!(today.uptime_permille, 333);
    assert_eq!(uptime.uptime_permille, 333);
    assert_eq!(uptime.days[0].runs, 0);

    // Another tenant sees neither the incidents nor the uptime.
    let mut globex = client(addr, "globex");
    let theirs = globex
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert!(theirs.is_empty());
    let error = globex
        .get_uptime(GetUptimeRequest {
            connection_id: "c-1".to_owned(),
            days: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn incidents_and_uptime_on_sqlite() {
    incidents_open_and_resolve_with_a_timeline(&temp_sqlite(), "health").await;
}

#[tokio::test]
async fn incidents_and_uptime_on_postgres() {
    let schema = format!("health_t{}", uuid::Uuid::new_v4().simple());
    incidents_open_and_resolve_with_a_timeline(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn watchers_get_a_snapshot_then_only_their_tenants_changes() {
    let addr = start(&temp_sqlite(), "health").await;
    let mut acme = client(addr, "acme");
    let mut globex = client(addr, "globex");
    report(&mut acme, outcome("r1", RunOutcomeKind::Succeeded, 5)).await;

    let mut stream = acme
        .watch_status(WatchStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.snapshot);
    assert_eq!(
        first.integration.unwrap().status(),
        IntegrationStatus::Operational
    );

    // globex's change must not reach acme's stream; acme's own change must.
    let mut theirs = outcome("g1", RunOutcomeKind::AuthFailed, 0);
    theirs.connection_id = "g-1".to_owned();
    report(&mut globex, theirs).await;
    report(&mut acme, outcome("r2", RunOutcomeKind::AuthFailed, 0)).await;
    let change = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!change.snapshot);
    assert_eq!(change.previous_status(), IntegrationStatus::Operational);
    let integration = change.integration.unwrap();
    assert_eq!(integration.connection_id, "c-1");
    assert_eq!(integration.status(), IntegrationStatus::NeedsReconnect);
    assert!(!integration.action.is_empty());
}

#[tokio::test]
async fn warnings_and_freshness_come_with_the_status() {
    let addr = start(&temp_sqlite(), "health").await;
    let mut acme = client(addr, "acme");
    report(&mut acme, outcome("r1", RunOutcomeKind::Succeeded, 300)).await;
    report(&mut acme, outcome("r2", RunOutcomeKind::Succeeded, 0)).await;
    let health = acme
        .get_status(plugboard_proto::health::v1::GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner()
        .integrations
        .remove(0);
    assert_eq!(health.status(), IntegrationStatus::Operational);
    assert_eq!(health.warnings.len(), 1);
    assert_eq!(health.warnings[0].code, "ZERO_RECORDS");
    assert_eq!(health.warnings[0].entity, "job");
    assert_eq!(health.freshness.len(), 1);
    assert_eq!(health.freshness[0].entity, "job");
    assert_eq!(health.freshness[0].target_seconds, 900);
    assert!(health.freshness[0].within_target);
}

#[tokio::test]
async fn the_sweep_turns_late_data_into_a_change_an_incident_and_an_event() {
    let store = Store::open(&temp_sqlite(), "health").await.unwrap();
    let service = HealthService::new(store, Targets::parse("job=600").unwrap());
    let start = Utc::now().trunc_subsecs(0);
    let mut events = service.watch();
    service
        .report_run("acme", &outcome("r1", RunOutcomeKind::Succeeded, 5), start)
        .await
        .unwrap();
    let created = events.recv().await.unwrap();
    assert_eq!(created.previous, None);

    assert_eq!(
        service
            .sweep(start + chrono::Duration::minutes(5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        service
            .sweep(start + chrono::Duration::minutes(11))
            .await
            .unwrap(),
        1
    );
    let late = events.recv().await.unwrap();
    assert_eq!(late.tenant, "acme");
    assert_eq!(late.view.assessment.status.as_str(), "degraded");
    assert_eq!(
        late.view.assessment.reason,
        "jobs were last synced 11 minutes ago; the target is 10 minutes"
    );
    let incidents = service.incidents("acme", "c-1", 0).await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].resolved_at, "");
    // Swept again, nothing changes and nothing more is published.
    assert_eq!(
        service
            .sweep(start + chrono::Duration::minutes(12))
            .await
            .unwrap(),
        0
    );
    assert!(events.try_recv().is_err());
}
