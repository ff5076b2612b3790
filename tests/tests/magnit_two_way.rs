//! Two-way sync with Coupa Contingent Workforce (Magnit) end to end, every service its own
//! process: credentials fetches a token with the client's scopes at `/oauth2/token`, XML job
//! requests, JSON candidates and workers and the CSV exports of work confirmations and
//! timesheets come in, a submission pushed with `PushRecord` reaches the job request once in
//! Coupa's codes (with the tenant's outbound override applied), and the buyer's status change
//! comes back.
#![allow(clippy::unwrap_used)]

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Application, Candidate, CanonicalRecord, Money, Rate};
use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};
use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use plugboard_proto::mapping::v1::{Direction, PutTenantOverrideRequest};
use plugboard_proto::sync::v1::{PushRecordRequest, PushState};
use plugboard_sandbox::magnit;
use plugboard_tests::partner_mesh::{
    PartnerMesh, buyer_change_of_pushed, partner_record, run_ok, sandbox_admin, serve_sandbox,
};
use serde_json::{Value, json};

const CONNECTION: &str = "mg-two-way";

fn submission() -> CanonicalRecord {
    CanonicalRecord {
        entity: "application".into(),
        body: Some(Body::Application(Application {
            job_external_id: "1001".into(),
            candidate_external_id: "ats-alan".into(),
            candidate: Some(Candidate {
                first_name: "Alan".into(),
                last_name: "Turing".into(),
                email: "alan@example.com".into(),
                ..Candidate::default()
            }),
            proposed_bill: Some(Rate {
                money: Some(Money {
                    amount: "70.00".into(),
                    currency: "EUR".into(),
                }),
                period: "hour".into(),
            }),
            ..Application::default()
        })),
        ..CanonicalRecord::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnit_reads_xml_json_and_csv_and_submissions_round_trip() -> anyhow::Result<()> {
    let sandbox = serve_sandbox(magnit::router()).await?;
    let mesh = PartnerMesh::start(&["magnit"]).await?;
    let tenant = format!("magnit-{}", uuid::Uuid::new_v4().simple());
    let flows = mesh.flows(&tenant, &sandbox);
    let mut sync = flows.clients.sync(&flows.sync_addr);
    let secret = Secret {
        kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
            client_id: magnit::CLIENT_ID.into(),
            client_secret: magnit::CLIENT_SECRET.into(),
            token_url: format!("{sandbox}/oauth2/token"),
            scopes: vec!["ccw.read".into(), "ccw.write".into()],
            ..OAuth2Client::default()
        })),
    };
    mesh.connect(
        &flows.clients,
        CONNECTION,
        "magnit",
        secret,
        &json!({"base_url": sandbox}),
        &[],
    )
    .await?;

    run_ok(&flows, CONNECTION).await?;
    for (entity, count) in [
        ("job", magnit::seed::JOB_REQUESTS),
        ("application", magnit::seed::CANDIDATES),
        ("worker", magnit::seed::WORK_CONFIRMATIONS),
        ("placement", magnit::seed::WORK_CONFIRMATIONS),
        ("timesheet", magnit::seed::WORK_CONFIRMATIONS * 2),
    ] {
        assert_eq!(
            flows.canonical_records(CONNECTION, entity).await?.len(),
            count,
            "{entity}"
        );
    }

    let push = sync
        .push_record(PushRecordRequest {
            connection_id: CONNECTION.into(),
            idempotency_key: "submit-alan-1001".into(),
            record: Some(submission()),
            wait_seconds: 20,
        })
        .await?
        .into_inner()
        .push
        .unwrap();
    assert_eq!(push.state, PushState::Delivered as i32, "{push:?}");
    let alan = push.external_id.clone();
    let at_partner = partner_record(&sandbox, "candidates", &alan).await?;
    assert_eq!(at_partner["job-request-id"], 1001);
    assert_eq!(at_partner["bill-rate"]["unit"], "Hourly");
    assert_eq!(at_partner["status"], "new");

    // The echo is silent; the buyer's interview request comes back as a change.
    let seen = buyer_change_of_pushed(
        &flows,
        &sandbox,
        CONNECTION,
        "5010",
        &alan,
        json!({"status": "interview"}),
    )
    .await?;
    assert_eq!(
        seen.len(),
        1,
        "only the status change, not the echo: {seen:?}"
    );
    match seen[0]
        .record
        .as_ref()
        .and_then(|record| record.body.as_ref())
    {
        Some(Body::Application(application)) => assert_eq!(application.status, "interviewing"),
        other => panic!("not an application: {other:?}"),
    }
    // The tenant's own outbound override shapes what the submission sends: sync has mapping
    // map the record (the connector's copy of the spec knows no overrides).
    let mut mapping = MappingServiceClient::with_interceptor(
        plugboard_runtime::channel::lazy_channel(&mesh.mapping_addr)?,
        flows.clients.credentials.clone(),
    );
    mapping
        .put_tenant_override(PutTenantOverrideRequest {
            connector: "magnit".into(),
            entity: "application".into(),
            direction: Direction::Outbound as i32,
            yaml: "fields:\n  supplier-reference: '\"ours-\" + .candidate_external_id'\n".into(),
            expected_version: 0,
        })
        .await?;

    let mut grace = submission();
    if let Some(Body::Application(application)) = grace.body.as_mut() {
        application.candidate_external_id = "ats-grace".into();
        if let Some(candidate) = application.candidate.as_mut() {
            candidate.first_name = "Grace".into();
            candidate.last_name = "Hopper".into();
            candidate.email = "grace@example.com".into();
        }
    }
    let push = sync
        .push_record(PushRecordRequest {
            connection_id: CONNECTION.into(),
            idempotency_key: "submit-grace-1001".into(),
            record: Some(grace),
            wait_seconds: 20,
        })
        .await?
        .into_inner()
        .push
        .unwrap();
    assert_eq!(push.state, PushState::Delivered as i32, "{push:?}");
    let at_partner = partner_record(&sandbox, "candidates", &push.external_id).await?;
    assert_eq!(at_partner["supplier-reference"], "ours-ats-grace");
    assert_eq!(at_partner["first-name"], "Grace");

    let stats = sandbox_admin(&sandbox, "stats", Value::Null).await?;
    assert_eq!(stats["writes"], 2);
    Ok(())
}
