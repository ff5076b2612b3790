//! Two-way sync with Beeline end to end, every service its own process: credentials fetches
//! the client-credentials token with the audience Beeline issued for its client API and region
//! (a `token_parameters` entry of the stored client), requisitions, assignments, workers and
//! timesheets come in under the client site, a submission pushed with `PushRecord` reaches the
//! requisition once in Beeline's codes, and the client's status change comes back.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Application, Candidate, CanonicalRecord, Money, Rate};
use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};
use plugboard_proto::sync::v1::{PushRecordRequest, PushState};
use plugboard_sandbox::beeline;
use plugboard_tests::partner_mesh::{
    PartnerMesh, buyer_change_of_pushed, partner_record, run_ok, sandbox_admin, serve_sandbox,
};
use serde_json::{Value, json};

const CONNECTION: &str = "bl-two-way";

fn submission() -> CanonicalRecord {
    CanonicalRecord {
        entity: "application".into(),
        body: Some(Body::Application(Application {
            job_external_id: "100001".into(),
            candidate_external_id: "ats-grace".into(),
            candidate: Some(Candidate {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                email: "grace@example.com".into(),
                ..Candidate::default()
            }),
            proposed_bill: Some(Rate {
                money: Some(Money {
                    amount: "38.00".into(),
                    currency: "USD".into(),
                }),
                period: "hour".into(),
            }),
            ..Application::default()
        })),
        ..CanonicalRecord::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beeline_tokens_carry_their_audience_and_submissions_round_trip() -> anyhow::Result<()> {
    let sandbox = serve_sandbox(beeline::router()).await?;
    let mesh = PartnerMesh::start(&["beeline"]).await?;
    let tenant = format!("beeline-{}", uuid::Uuid::new_v4().simple());
    let flows = mesh.flows(&tenant, &sandbox);
    let mut sync = flows.clients.sync(&flows.sync_addr);
    let secret = Secret {
        kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
            client_id: beeline::CLIENT_ID.into(),
            client_secret: beeline::CLIENT_SECRET.into(),
            token_url: format!("{sandbox}/oauth/token"),
            token_parameters: HashMap::from([("audience".into(), beeline::AUDIENCE.into())]),
            ..OAuth2Client::default()
        })),
    };
    let settings = json!({
        "base_url": sandbox, "auth_url": sandbox, "region": "us", "site_id": beeline::SITE_ID,
    });
    mesh.connect(
        &flows.clients,
        CONNECTION,
        "beeline",
        secret,
        &settings,
        &[],
    )
    .await?;

    run_ok(&flows, CONNECTION).await?;
    for (entity, count) in [
        ("job", beeline::seed::REQUISITIONS),
        ("application", beeline::seed::CANDIDATES),
        ("placement", beeline::seed::ASSIGNMENTS),
        ("worker", beeline::seed::ASSIGNMENTS),
        ("timesheet", beeline::seed::ASSIGNMENTS * 2),
    ] {
        assert_eq!(
            flows.canonical_records(CONNECTION, entity).await?.len(),
            count,
            "{entity}"
        );
    }
    let tokens = sandbox_admin(&sandbox, "stats", Value::Null).await?["tokens_issued"].clone();
    assert!(tokens.as_u64().is_some_and(|n| n >= 1), "{tokens}");

    let push = sync
        .push_record(PushRecordRequest {
            connection_id: CONNECTION.into(),
            idempotency_key: "submit-grace-100001".into(),
            record: Some(submission()),
            wait_seconds: 20,
        })
        .await?
        .into_inner()
        .push
        .unwrap();
    assert_eq!(push.state, PushState::Delivered as i32, "{push:?}");
    let grace = push.external_id.clone();
    let at_partner = partner_record(&sandbox, "candidates", &grace).await?;
    assert_eq!(at_partner["requisitionId"], 100_001);
    assert_eq!(at_partner["rateType"], "HOURLY");
    assert_eq!(at_partner["status"], "SUBMITTED");

    // The echo is silent; the client's interview request comes back as a change.
    let seen = buyer_change_of_pushed(
        &flows,
        &sandbox,
        CONNECTION,
        "200012",
        &grace,
        json!({"status": "INTERVIEW"}),
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
    let stats = sandbox_admin(&sandbox, "stats", Value::Null).await?;
    assert_eq!(stats["writes"], 1);
    Ok(())
}
