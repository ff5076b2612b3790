//! One pipeline across categories (issue #8), every service its own process: a CV parsed by
//! the tenant's chosen parser lands as a canonical Candidate, which is submitted to a job
//! posting read from SAP Fieldglass with `PushRecord`, and reaches Fieldglass once as a job
//! seeker carrying the CV's person and the candidate's id. Two tenants choose different parsers
//! (Textkernel over REST, Daxtra over SOAP); the pipeline is the same for both.
#![allow(clippy::unwrap_used)]

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Application, CanonicalRecord, Money, Rate};
use plugboard_proto::credentials::v1::{ApiKey, OAuth2Client, Secret, secret};
use plugboard_proto::sync::v1::{
    CreateSyncRequest, ParseDocumentRequest, PushRecordRequest, PushState, RunState,
};
use plugboard_sandbox::{daxtra, fieldglass, textkernel};
use plugboard_tests::documents::{DocumentMesh, partners, sandbox_stats, serve_sandbox};
use plugboard_tests::flows::Mesh;
use plugboard_tests::mesh::TenantClients;
use plugboard_tests::sandbox::SandboxAdmin;
use serde_json::{Value, json};

const PARSER: &str = "cv-parser";
const VMS: &str = "fg-vms";

/// A tenant's parser choice: connector, its secret and settings, and its sandbox's URL.
struct Parser {
    connector: &'static str,
    secret: Secret,
    settings: Value,
    sandbox: String,
}

fn api_key(key: &str) -> Secret {
    Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey { key: key.into() })),
    }
}

/// Connects the tenant's Fieldglass and reads its job postings; the first posting's id.
async fn connect_fieldglass(
    mesh: &DocumentMesh,
    clients: &TenantClients,
    sandbox: &str,
) -> anyhow::Result<String> {
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
    mesh.connect(clients, VMS, "fieldglass", secret, &settings)
        .await?;
    // Only the postings are needed to submit to one.
    clients
        .sync(&mesh.sync_addr)
        .create_sync(CreateSyncRequest {
            connection_id: VMS.into(),
            connector: "fieldglass".into(),
            settings_json: settings.to_string(),
            streams: vec!["job_postings".into()],
            interval_seconds: 0,
        })
        .await?;
    let flows = Mesh {
        clients: clients.clone(),
        sync_addr: mesh.sync_addr.clone(),
        credentials_addr: mesh.credentials_addr.clone(),
        sandbox: SandboxAdmin::new(sandbox),
        sandbox_url: sandbox.to_owned(),
    };
    let run = flows.run_once(VMS).await?;
    anyhow::ensure!(run.state == RunState::Succeeded as i32, "{}", run.error);
    let jobs = flows.canonical_records(VMS, "job").await?;
    anyhow::ensure!(!jobs.is_empty(), "no job postings came from Fieldglass");
    Ok(jobs[0].external_id.clone())
}

/// The CV through the tenant's parser to a canonical Candidate, then to the posting at
/// Fieldglass; returns the candidate and the job seeker Fieldglass holds.
async fn cv_to_submission(
    mesh: &DocumentMesh,
    clients: &TenantClients,
    parser: &Parser,
    fieldglass_url: &str,
    cv: &[u8],
) -> anyhow::Result<(CanonicalRecord, Value)> {
    mesh.connect(
        clients,
        PARSER,
        parser.connector,
        parser.secret.clone(),
        &parser.settings,
    )
    .await?;
    let job = connect_fieldglass(mesh, clients, fieldglass_url).await?;
    let mut sync = clients.sync(&mesh.sync_addr);
    let parsed = sync
        .parse_document(ParseDocumentRequest {
            connection_id: PARSER.into(),
            document_type: String::new(),
            file_name: "cv.txt".into(),
            content: cv.to_vec(),
            content_type: "text/plain".into(),
        })
        .await?
        .into_inner();
    let candidate = parsed
        .records
        .into_iter()
        .find(|record| record.entity == "candidate")
        .ok_or_else(|| anyhow::anyhow!("{} landed no candidate", parser.connector))?;
    let Some(Body::Candidate(person)) = candidate.body.clone() else {
        anyhow::bail!("not a candidate: {candidate:?}");
    };
    let submission = CanonicalRecord {
        entity: "application".into(),
        body: Some(Body::Application(Application {
            job_external_id: job,
            candidate_external_id: candidate.external_id.clone(),
            candidate: Some(person),
            proposed_bill: Some(Rate {
                money: Some(Money {
                    amount: "72.50".into(),
                    currency: "USD".into(),
                }),
                period: "hour".into(),
            }),
            available_from: "2027-02-01".into(),
            ..Application::default()
        })),
        ..CanonicalRecord::default()
    };
    let push = sync
        .push_record(PushRecordRequest {
            connection_id: VMS.into(),
            idempotency_key: format!("submit-{}", candidate.external_id),
            record: Some(submission),
            wait_seconds: 20,
        })
        .await?
        .into_inner()
        .push
        .unwrap();
    anyhow::ensure!(push.state == PushState::Delivered as i32, "{push:?}");
    let seekers: Value = reqwest::get(format!("{fieldglass_url}/_sandbox/records/job_seekers"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let seeker = seekers["data"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|seeker| seeker["jobSeekerId"] == push.external_id.as_str())
        })
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("Fieldglass has no job seeker {}", push.external_id))?;
    Ok((candidate, seeker))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parsed_cv_becomes_a_candidate_submitted_to_a_fieldglass_posting() {
    let samples = partners().join("textkernel-sovren/sovren-v9-json");
    let textkernel_url =
        serve_sandbox(textkernel::router(textkernel::TextkernelOptions::new(&samples)).unwrap())
            .await
            .unwrap();
    let daxtra_url = serve_sandbox(daxtra::router(daxtra::DaxtraOptions::new(&samples)).unwrap())
        .await
        .unwrap();
    let mut mesh = DocumentMesh::start().await.unwrap();
    for connector in ["textkernel", "daxtra", "fieldglass"] {
        mesh.serve_connector(connector).await.unwrap();
    }
    let choices = [
        (
            "staffing-a",
            Parser {
                connector: "textkernel",
                secret: api_key(textkernel::DEMO_SERVICE_KEY),
                settings: json!({
                    "base_url": format!("{textkernel_url}/tx/v10"),
                    "account_id": textkernel::DEMO_ACCOUNT_ID,
                }),
                sandbox: textkernel_url.clone(),
            },
            &b"Katherine Johnson\nkatherine.johnson@example.com\nSkills: Orbital Mechanics, FORTRAN\n"[..],
        ),
        (
            "staffing-b",
            Parser {
                connector: "daxtra",
                secret: api_key(daxtra::DEMO_ACCOUNT),
                settings: json!({"base_url": daxtra_url}),
                sandbox: daxtra_url.clone(),
            },
            &b"Dorothy Vaughan\ndorothy.vaughan@example.com\nSkills: FORTRAN, Numerical Analysis\n"[..],
        ),
    ];
    for (tenant, parser, cv) in choices {
        // Each tenant its own Fieldglass, so the job seekers are only its own.
        let fieldglass_url = serve_sandbox(fieldglass::router()).await.unwrap();
        let clients = mesh.clients(tenant);
        let (candidate, seeker) = cv_to_submission(&mesh, &clients, &parser, &fieldglass_url, cv)
            .await
            .unwrap_or_else(|e| panic!("{tenant} with {}: {e:#}", parser.connector));
        let Some(Body::Candidate(person)) = &candidate.body else {
            unreachable!("checked in cv_to_submission")
        };
        let first_line = std::str::from_utf8(cv).unwrap().lines().next().unwrap();
        assert_eq!(
            format!("{} {}", person.first_name, person.last_name),
            first_line,
            "{}",
            parser.connector
        );
        // The candidate is the CV's person, with its personal data named.
        assert!(candidate.personal_data_fields.contains(&"email".to_owned()));
        assert!(!candidate.person_id.is_empty());
        // Fieldglass holds the CV's person, against the candidate the parse landed as.
        assert_eq!(seeker["firstName"], person.first_name.as_str());
        assert_eq!(seeker["lastName"], person.last_name.as_str());
        assert_eq!(seeker["email"], person.email.as_str());
        assert_eq!(seeker["supplierReference"], candidate.external_id.as_str());
        assert_eq!(seeker["status"], "Submitted");
        let parses = sandbox_stats(&parser.sandbox).await.unwrap();
        assert_eq!(parses["parses"], 1, "{}: {parses}", parser.connector);
        let writes = sandbox_stats(&fieldglass_url).await.unwrap();
        assert_eq!(writes["writes"], 1, "{writes}");
    }
}
