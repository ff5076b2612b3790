//! The partner's answers as a health input, through a real tonic server on SQLite and
//! PostgreSQL: a completed run whose partner answered many requests with errors degrades with
//! the share in the reason, named by the manifest's display name; a clean run clears it; schema
//! drift and repeated pages reported per stream come back as warnings.

// Helpers panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_health::{Config, run};
use plugboard_proto::common::v1::PartnerRequests;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    GetStatusRequest, IntegrationHealth, IntegrationStatus, ListIncidentsRequest, ReportRequest,
    RunOutcome, RunOutcomeKind, StreamOutcome,
};
use plugboard_proto::partner_requests::Answered;
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
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

fn requests(ok: u32, server_errors: u32) -> PartnerRequests {
    let mut requests = PartnerRequests::default();
    for _ in 0..ok {
        requests.record(Answered::Status(200), Duration::from_millis(60));
    }
    for _ in 0..server_errors {
        requests.record(Answered::Status(500), Duration::from_millis(60));
    }
    requests
}

fn run_outcome(
    run_id: &str,
    partner: PartnerRequests,
    fields: &[&str],
    repeated: u32,
) -> RunOutcome {
    RunOutcome {
        connection_id: "c-1".to_owned(),
        connector: "sap-fieldglass".to_owned(),
        connector_display_name: "SAP Fieldglass".to_owned(),
        run_id: run_id.to_owned(),
        kind: RunOutcomeKind::Succeeded.into(),
        streams: vec![StreamOutcome {
            stream: "WorkOrder".to_owned(),
            entity: "job".to_owned(),
            records_read: 10,
            checkpoint_before: format!("before-{run_id}"),
            checkpoint_after: format!("after-{run_id}"),
            repeated_pages: repeated,
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
            ..StreamOutcome::default()
        }],
        partner_requests: Some(partner),
        ..RunOutcome::default()
    }
}

async fn report(client: &mut Client, run: RunOutcome) {
    let request = ReportRequest {
        report: Some(Report::RunOutcome(run)),
    };
    client.report(request).await.unwrap();
}

async fn status(client: &mut Client) -> IntegrationHealth {
    let request = GetStatusRequest {
        connection_id: "c-1".to_owned(),
    };
    let mut answer = client.get_status(request).await.unwrap().into_inner();
    answer.integrations.remove(0)
}

async fn partner_errors_degrade_and_clear(database_url: &str, schema: &str) {
    let addr = start(database_url, schema).await;
    let mut acme = client(addr, "acme");

    report(
        &mut acme,
        run_outcome("r1", requests(10, 0), &["id", "title"], 0),
    )
    .await;
    assert_eq!(
        status(&mut acme).await.status(),
        IntegrationStatus::Operational
    );

    // 6 of 16 requests failed and were retried: the run completed, the partner is troubled.
    report(
        &mut acme,
        run_outcome("r2", requests(10, 6), &["id", "title", "rate"], 1),
    )
    .await;
    let troubled = status(&mut acme).await;
    assert_eq!(troubled.status(), IntegrationStatus::Degraded);
    assert_eq!(
        troubled.reason,
        "SAP Fieldglass answered 37% of requests with errors in the last run (6 of 16: 6 server \
         errors); the sync retried them"
    );
    assert!(troubled.action.contains("SAP Fieldglass's service status"));
    let mut codes: Vec<&str> = troubled.warnings.iter().map(|w| w.code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["REPEATED_PAGES", "SCHEMA_DRIFT"]);
    let drift = troubled
        .warnings
        .iter()
        .find(|w| w.code == "SCHEMA_DRIFT")
        .unwrap();
    assert!(drift.reason.contains("new fields rate"), "{}", drift.reason);
    assert!(
        drift.reason.starts_with("SAP Fieldglass"),
        "{}",
        drift.reason
    );

    // The incident is titled with the display name too.
    let incidents = acme
        .list_incidents(ListIncidentsRequest {
            connection_id: "c-1".to_owned(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(incidents.len(), 1);
    assert!(
        incidents[0].title.starts_with("SAP Fieldglass"),
        "{}",
        incidents[0].title
    );

    // Another tenant sees none of it.
    let mut globex = client(addr, "globex");
    let others = globex
        .get_status(GetStatusRequest::default())
        .await
        .unwrap();
    assert!(others.into_inner().integrations.is_empty());

    report(
        &mut acme,
        run_outcome("r3", requests(12, 0), &["id", "title", "rate"], 0),
    )
    .await;
    let clean = status(&mut acme).await;
    assert_eq!(clean.status(), IntegrationStatus::Operational, "{clean:?}");
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
}

#[tokio::test]
async fn partner_errors_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("pb-health-{}", uuid::Uuid::new_v4()));
    let url = plugboard_runtime::storage::sqlite_url(&dir, "health");
    partner_errors_degrade_and_clear(&url, "health").await;
}

#[tokio::test]
async fn partner_errors_on_postgres() {
    let schema = format!("health_t{}", uuid::Uuid::new_v4().simple());
    partner_errors_degrade_and_clear(POSTGRES, &schema).await;
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}
