//! Two health replicas on one PostgreSQL database and one Redis, as split mode runs them: a
//! dashboard watching one replica sees the change the other committed, and the tenant's webhook
//! hears of it once, not once per replica.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_health::{Config, run};
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    IntegrationStatus, ReportRequest, RunOutcome, RunOutcomeKind, SetWebhookRequest,
    WatchStatusRequest,
};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KEY: &str = "health-replicas-mesh-key-of-32-bytes-or-more";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS: &str = "redis://127.0.0.1:6379";

type Client = IntegrationHealthServiceClient<InterceptedService<Channel, MeshCredentials>>;

async fn replica(schema: &str) -> SocketAddr {
    let mut config = Config::new(POSTGRES, SecretString::from(KEY.to_owned()));
    config.database_schema = schema.to_owned();
    config.redis_url = Some(REDIS.to_owned());
    config.allow_private_webhooks = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(config, listener, std::future::pending()));
    wait_listening(addr).await;
    addr
}

/// Waits until the replica answers, so its Redis subscription is in place before the test acts.
async fn wait_listening(addr: SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health replica on {addr} did not start");
}

fn client(addr: SocketAddr, tenant: &str) -> Client {
    let key = MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap();
    let channel = plugboard_runtime::channel::lazy_channel(&addr.to_string()).unwrap();
    IntegrationHealthServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key, "sync").for_tenant(tenant),
    )
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (sender, deliveries) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sender = sender.clone();
            async move {
                sender.send(body).unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), deliveries)
}

fn outcome(run_id: &str, kind: RunOutcomeKind) -> ReportRequest {
    ReportRequest {
        report: Some(Report::RunOutcome(RunOutcome {
            connection_id: "bh-1".to_owned(),
            connector: "bullhorn".to_owned(),
            run_id: run_id.to_owned(),
            kind: kind.into(),
            records_written: 10,
            ..RunOutcome::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_on_one_replica_reaches_the_watchers_of_the_other_once() {
    let schema = format!("health_r{}", uuid::Uuid::new_v4().simple());
    let first = replica(&schema).await;
    let second = replica(&schema).await;
    let mut on_first = client(first, "acme");
    let mut on_second = client(second, "acme");

    let (url, mut deliveries) = receiver().await;
    on_first
        .set_webhook(SetWebhookRequest { url })
        .await
        .unwrap();
    on_first
        .report(outcome("r1", RunOutcomeKind::Succeeded))
        .await
        .unwrap();
    // The new integration's first status is a change too; one delivery for it.
    let created = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(created.contains("operational"), "{created}");

    let mut stream = on_second
        .watch_status(WatchStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let snapshot = stream.message().await.unwrap().unwrap();
    assert!(snapshot.snapshot);
    assert_eq!(
        snapshot.integration.unwrap().status(),
        IntegrationStatus::Operational
    );

    // Reported to the first replica; the second one's watcher must hear of it.
    on_first
        .report(outcome("r2", RunOutcomeKind::AuthFailed))
        .await
        .unwrap();
    // The relayed creation of the integration may still be on its way; the change follows it.
    let change = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = stream.message().await.unwrap().unwrap();
            let reconnect = message
                .integration
                .as_ref()
                .is_some_and(|i| i.status() == IntegrationStatus::NeedsReconnect);
            if reconnect {
                return message;
            }
        }
    })
    .await
    .expect("the other replica's change never reached this watcher");
    assert!(!change.snapshot);
    assert_eq!(change.previous_status(), IntegrationStatus::Operational);
    let integration = change.integration.unwrap();
    assert_eq!(integration.connection_id, "bh-1");
    assert_eq!(integration.status(), IntegrationStatus::NeedsReconnect);

    // The webhook hears of the change once, from the replica that committed it.
    let delivered = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(delivered.contains("needs_reconnect"), "{delivered}");
    let again = tokio::time::timeout(Duration::from_secs(1), deliveries.recv()).await;
    assert!(again.is_err(), "a second delivery of one change: {again:?}");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(POSTGRES).await.unwrap();
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}
