//! Webhook notifications end to end: a local receiver (private targets allowed, as in tests)
//! gets a signed POST for each status change of its own tenant, and nothing of another's.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use plugboard_health::webhooks::sign;
use plugboard_health::{Config, run};
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{ReportRequest, RunOutcome, RunOutcomeKind, SetWebhookRequest};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const KEY: &str = "health-test-mesh-key-of-32-bytes-or-more!";

type Client = IntegrationHealthServiceClient<InterceptedService<Channel, MeshCredentials>>;

async fn start(allow_private: bool) -> SocketAddr {
    let dir = std::env::temp_dir().join(format!("pb-health-{}", uuid::Uuid::new_v4()));
    let mut config = Config::new(
        plugboard_runtime::storage::sqlite_url(&dir, "health"),
        SecretString::from(KEY.to_owned()),
    );
    config.allow_private_webhooks = allow_private;
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

/// A receiver on loopback that hands every delivery (headers, body) to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, String)>) {
    let (sender, deliveries) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let sender = sender.clone();
            async move {
                sender.send((headers, body)).unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), deliveries)
}

fn failed(connection_id: &str, run_id: &str) -> ReportRequest {
    ReportRequest {
        report: Some(Report::RunOutcome(RunOutcome {
            connection_id: connection_id.to_owned(),
            connector: "bullhorn".to_owned(),
            run_id: run_id.to_owned(),
            kind: RunOutcomeKind::AuthFailed.into(),
            ..RunOutcome::default()
        })),
    }
}

#[tokio::test]
async fn each_status_change_reaches_the_tenants_webhook_signed() {
    let addr = start(true).await;
    let (url, mut deliveries) = receiver().await;
    let mut acme = client(addr, "acme");
    let registered = acme
        .set_webhook(SetWebhookRequest { url: url.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(registered.signing_secret.starts_with("whsec_"));

    // Another tenant's change is not acme's business.
    client(addr, "globex")
        .report(failed("g-1", "g-r1"))
        .await
        .unwrap();
    acme.report(failed("c-1", "r1")).await.unwrap();

    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "integration.status_changed");
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["connection_id"], "c-1");
    assert_eq!(event["status"], "needs_reconnect");
    assert!(!event["action"].as_str().unwrap().is_empty());
    let timestamp = headers["plugboard-timestamp"].to_str().unwrap();
    let signature = headers["plugboard-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        format!("v1={}", sign(&registered.signing_secret, timestamp, &body))
    );
    // Nothing else arrives: globex's change went nowhere near acme's hook.
    let more = tokio::time::timeout(Duration::from_millis(500), deliveries.recv()).await;
    assert!(more.is_err(), "unexpected delivery {more:?}");

    // Removing the webhook stops deliveries.
    acme.set_webhook(SetWebhookRequest { url: String::new() })
        .await
        .unwrap();
    let mut recovered = failed("c-1", "r2");
    if let Some(Report::RunOutcome(run)) = &mut recovered.report {
        run.kind = RunOutcomeKind::Succeeded.into();
    }
    acme.report(recovered).await.unwrap();
    let after = tokio::time::timeout(Duration::from_millis(500), deliveries.recv()).await;
    assert!(after.is_err(), "delivered after removal: {after:?}");
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let addr = start(false).await;
    let mut acme = client(addr, "acme");
    for url in [
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
    ] {
        let error = acme
            .set_webhook(SetWebhookRequest {
                url: url.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{url}");
        assert_eq!(
            plugboard_proto::error::reason_of(&error).as_deref(),
            Some("INVALID_WEBHOOK")
        );
    }
}
