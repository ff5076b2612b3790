//! Two-way sync with SAP Fieldglass end to end, every service its own process against the
//! Fieldglass sandbox: job postings, work orders, workers and time sheets come in (approved
//! time sheets as canonical Timesheets with pay and bill lines a payroll can use), a candidate
//! submission pushed with `PushRecord` reaches Fieldglass once with Fieldglass's own codes, its
//! echo on the next read is silent, and the buyer's status change comes back as a change with
//! nothing pushed back.
#![allow(clippy::unwrap_used)]

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Application, Candidate, CanonicalRecord, Money, Rate};
use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};
use plugboard_proto::sync::v1::{ListPushesRequest, PushRecordRequest, PushState};
use plugboard_sandbox::fieldglass;
use plugboard_tests::partner_mesh::{
    PartnerMesh, changes_until, run_ok, sandbox_admin, serve_sandbox,
};
use serde_json::{Value, json};

const CONNECTION: &str = "fg-two-way";

fn submission() -> CanonicalRecord {
    CanonicalRecord {
        entity: "application".into(),
        body: Some(Body::Application(Application {
            job_external_id: "JP0000001".into(),
            candidate_external_id: "ats-ada".into(),
            candidate: Some(Candidate {
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                email: "ada@example.com".into(),
                ..Candidate::default()
            }),
            proposed_bill: Some(Rate {
                money: Some(Money {
                    amount: "85.00".into(),
                    currency: "USD".into(),
                }),
                period: "hour".into(),
            }),
            available_from: "2027-01-04".into(),
            ..Application::default()
        })),
        ..CanonicalRecord::default()
    }
}

fn application(record: &CanonicalRecord) -> &Application {
    match &record.body {
        Some(Body::Application(application)) => application,
        other => panic!("not an application: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fieldglass_submissions_go_out_once_and_their_status_comes_back() -> anyhow::Result<()> {
    let sandbox = serve_sandbox(fieldglass::router()).await?;
    let mesh = PartnerMesh::start(&["fieldglass"]).await?;
    // Unique per run: Redis (run leases) is shared with every other test run on the machine.
    let tenant = format!("fieldglass-{}", uuid::Uuid::new_v4().simple());
    let flows = mesh.flows(&tenant, &sandbox);
    let mut sync = flows.clients.sync(&flows.sync_addr);
    // Credentials fetches and refreshes the token at Fieldglass's documented token URL.
    let secret = Secret {
        kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
            client_id: fieldglass::CLIENT_ID.into(),
            client_secret: fieldglass::CLIENT_SECRET.into(),
            token_url: format!(
                "{sandbox}/api/oauth2/v2.0/token?grant_type=client_credentials&response_type=token"
            ),
            ..OAuth2Client::default()
        })),
    };
    let settings = json!({"base_url": sandbox, "application_key": fieldglass::APPLICATION_KEY});
    mesh.connect(
        &flows.clients,
        CONNECTION,
        "fieldglass",
        secret,
        &settings,
        &[],
    )
    .await?;

    // Everything comes in; approved time sheets are ready for payroll.
    run_ok(&flows, CONNECTION).await?;
    for (entity, count) in [
        ("job", fieldglass::seed::JOB_POSTINGS),
        ("placement", fieldglass::seed::WORK_ORDERS),
        ("worker", fieldglass::seed::WORK_ORDERS),
        ("timesheet", fieldglass::seed::WORK_ORDERS * 2),
        ("application", fieldglass::seed::JOB_SEEKERS),
    ] {
        let records = flows.canonical_records(CONNECTION, entity).await?;
        assert_eq!(records.len(), count, "{entity}");
    }
    let timesheets = flows.canonical_records(CONNECTION, "timesheet").await?;
    let approved: Vec<_> = timesheets
        .iter()
        .filter_map(|record| match &record.body {
            Some(Body::Timesheet(sheet)) if sheet.status == "approved" => Some(sheet),
            _ => None,
        })
        .collect();
    assert!(!approved.is_empty());
    for sheet in &approved {
        assert!(!sheet.time_zone.is_empty() && !sheet.approved_at.is_empty());
        assert!(
            sheet
                .period
                .as_ref()
                .is_some_and(|p| !p.start_date.is_empty())
        );
        for line in sheet.pay_lines.iter().chain(&sheet.bill_lines) {
            let rate = line.rate.as_ref().unwrap();
            assert_eq!(rate.period, "hour");
            assert_eq!(rate.money.as_ref().unwrap().currency, "USD");
        }
        assert!(!sheet.pay_lines.is_empty() && sheet.pay_lines.len() == sheet.bill_lines.len());
    }

    // The submission goes out with Fieldglass's codes, once.
    let push = sync
        .push_record(PushRecordRequest {
            connection_id: CONNECTION.into(),
            idempotency_key: "submit-ada-jp1".into(),
            record: Some(submission()),
            wait_seconds: 20,
        })
        .await?
        .into_inner()
        .push
        .unwrap();
    assert_eq!(push.state, PushState::Delivered as i32, "{push:?}");
    let ada = push.external_id.clone();
    let seekers = sandbox_admin(&sandbox, "records/job_seekers", Value::Null).await?;
    let at_partner = seekers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|seeker| seeker["jobSeekerId"] == ada.as_str())
        .unwrap()
        .clone();
    assert_eq!(at_partner["status"], "Submitted");
    assert_eq!(at_partner["billRate"]["unit"], "Hr");
    assert_eq!(at_partner["supplierReference"], "ats-ada");
    let stats = sandbox_admin(&sandbox, "stats", Value::Null).await?;
    assert_eq!(stats["writes"], 1);

    // The next read brings the submission back beside another change: only that one is on
    // the feed, and nothing is pushed back.
    let before = changes_until(&flows, CONNECTION, "application", 0, "JS0000010").await?;
    let start = before.last().unwrap().position;
    sandbox_admin(
        &sandbox,
        "touch",
        json!({"stream": "job_seekers", "ids": ["JS0000001"], "changes": {"status": "Rejected"}}),
    )
    .await?;
    run_ok(&flows, CONNECTION).await?;
    let seen = changes_until(&flows, CONNECTION, "application", start, "JS0000001").await?;
    assert!(
        seen.iter().all(|change| change.external_id != ada),
        "our own submission came back as a change: {seen:?}"
    );
    let stored = flows.canonical_records(CONNECTION, "application").await?;
    let ours = stored.iter().find(|r| r.external_id == ada).unwrap();
    assert_eq!(application(ours).status, "submitted");
    assert_eq!(
        application(ours).candidate.as_ref().unwrap().first_name,
        "Ada"
    );
    let start = seen.last().unwrap().position;

    // The buyer asks for an interview: the status comes back as a change, and still nothing is
    // written to Fieldglass.
    sandbox_admin(&sandbox, "touch", json!({"stream": "job_seekers", "ids": [ada], "changes": {"status": "Interview Requested"}})).await?;
    run_ok(&flows, CONNECTION).await?;
    let seen = changes_until(&flows, CONNECTION, "application", start, &ada).await?;
    let change = seen.last().unwrap();
    assert_eq!(
        application(change.record.as_ref().unwrap()).status,
        "interviewing"
    );
    run_ok(&flows, CONNECTION).await?;
    let pushes = sync
        .list_pushes(ListPushesRequest {
            connection_id: CONNECTION.into(),
            ..ListPushesRequest::default()
        })
        .await?
        .into_inner()
        .pushes;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let stats = sandbox_admin(&sandbox, "stats", Value::Null).await?;
    assert_eq!(stats["writes"], 1);
    Ok(())
}
