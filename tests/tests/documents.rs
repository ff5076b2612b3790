//! Documents through sync, across `plugboard` processes: a CV sent twice is parsed by the
//! partner once (the Affinda sandbox counts one upload), lands as a canonical ParsedResume and
//! Candidate that ListRecords and WatchChanges see, linked to one person, with its personal
//! data fields named; the parse's cost is recorded per tenant, and another tenant's same
//! document is its own parse.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::credentials::v1::{ApiKey, Secret, secret};
use plugboard_proto::sync::v1::{
    GetParseUsageRequest, ListRecordsRequest, ParseDocumentRequest, WatchChangesRequest,
};
use plugboard_sandbox::affinda::{AffindaOptions, DEMO_API_KEY, DEMO_COLLECTION};
use plugboard_tests::documents::{DocumentMesh, partners, sandbox_stats, serve_sandbox};
use serde_json::json;

const CONNECTION: &str = "cv-affinda";
const RESUME: &[u8] = b"Grace Hopper\ngrace.hopper@example.com\nSkills: COBOL, Compilers\n";

fn request(content: &[u8]) -> ParseDocumentRequest {
    ParseDocumentRequest {
        connection_id: CONNECTION.into(),
        document_type: String::new(),
        file_name: "grace_hopper.txt".into(),
        content: content.to_vec(),
        content_type: "text/plain".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_is_parsed_once_landed_as_canonical_records_and_costed() {
    let mut options = AffindaOptions::new(&partners().join("affinda/openapi_v3_official.yml"));
    options.polls_until_ready = 1;
    let sandbox = serve_sandbox(plugboard_sandbox::affinda::router(options).unwrap())
        .await
        .unwrap();
    let mut mesh = DocumentMesh::start().await.unwrap();
    mesh.serve_connector("affinda").await.unwrap();
    let secret = Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey {
            key: DEMO_API_KEY.into(),
        })),
    };
    let settings = json!({"base_url": sandbox, "collection": DEMO_COLLECTION});
    let acme = mesh.clients("acme");
    mesh.connect(&acme, CONNECTION, "affinda", secret.clone(), &settings)
        .await
        .unwrap();
    let mut sync = acme.sync(&mesh.sync_addr);
    let mut changes = sync
        .watch_changes(WatchChangesRequest {
            after_position: 0,
            connection_id: CONNECTION.into(),
            entity: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    let first = sync
        .parse_document(request(RESUME))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.reused, "{first:?}");
    let parse = first.parse.clone().unwrap();
    assert_eq!(parse.connector, "affinda");
    assert_eq!(parse.entities, ["parsed_resume", "candidate"]);
    let cost = parse.cost.clone().unwrap();
    assert_eq!(
        (cost.amount.as_str(), cost.currency.as_str()),
        ("0.10", "USD")
    );
    assert_eq!(first.records.len(), 2, "{first:?}");
    let candidate = first
        .records
        .iter()
        .find(|record| record.entity == "candidate")
        .unwrap();
    let Some(Body::Candidate(body)) = &candidate.body else {
        panic!("{candidate:?}")
    };
    assert_eq!(
        (body.first_name.as_str(), body.last_name.as_str()),
        ("Grace", "Hopper")
    );
    assert_eq!(body.email, "grace.hopper@example.com");
    assert_eq!(candidate.external_id, parse.document_id);
    for field in ["first_name", "last_name", "email", "work_history"] {
        assert!(
            candidate.personal_data_fields.contains(&field.to_owned()),
            "{field}: {:?}",
            candidate.personal_data_fields
        );
    }
    assert!(
        !candidate
            .personal_data_fields
            .contains(&"skills".to_owned())
    );
    // Identity linking: the resume and the candidate it describes are one person.
    let persons: Vec<&str> = first.records.iter().map(|r| r.person_id.as_str()).collect();
    assert!(
        !persons[0].is_empty() && persons[0] == persons[1],
        "{persons:?}"
    );

    // The same bytes again: the stored records, and the partner never asked.
    let second = sync
        .parse_document(request(RESUME))
        .await
        .unwrap()
        .into_inner();
    assert!(second.reused);
    assert_eq!(
        second.parse.as_ref().unwrap().document_id,
        parse.document_id
    );
    let hashes = |records: &[plugboard_proto::common::v1::CanonicalRecord]| {
        let mut hashes: Vec<String> = records.iter().map(|r| r.content_hash.clone()).collect();
        hashes.sort();
        hashes
    };
    assert_eq!(hashes(&second.records), hashes(&first.records));
    let stats = sandbox_stats(&sandbox).await.unwrap();
    assert_eq!(stats["uploads"], 1, "{stats}");

    // ListRecords and WatchChanges see what the parse landed.
    let listed = sync
        .list_records(ListRecordsRequest {
            connection_id: CONNECTION.into(),
            entity: "candidate".into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total, 1);
    assert_eq!(listed.records[0].external_id, parse.document_id);
    assert!(!listed.records[0].personal_data_fields.is_empty());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.message())
            .await
            .expect("the parse's records on WatchChanges")
            .unwrap()
            .unwrap();
        seen.push(change.entity);
    }
    seen.sort();
    assert_eq!(seen, ["candidate", "parsed_resume"]);

    // Usage: one parse paid for, one call answered from it.
    let usage = sync
        .get_parse_usage(GetParseUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((usage.documents, usage.reuses), (1, 1), "{usage:?}");
    assert_eq!(usage.totals.len(), 1);
    assert_eq!(usage.totals[0].amount, "0.10");
    assert_eq!(usage.parses[0].content_sha256, parse.content_sha256);

    // Two calls at once with a new document: one parse, the other waits for it.
    let other: &[u8] = b"Alan Turing\nalan.turing@example.com\nSkills: Cryptanalysis\n";
    let mut twin = acme.sync(&mesh.sync_addr);
    let (left, right) = tokio::join!(
        sync.parse_document(request(other)),
        twin.parse_document(request(other))
    );
    let (left, right) = (left.unwrap().into_inner(), right.unwrap().into_inner());
    assert!(left.reused != right.reused, "{left:?} {right:?}");
    assert_eq!(
        left.parse.unwrap().document_id,
        right.parse.unwrap().document_id
    );
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["uploads"], 2);

    // Another tenant's same document is its own parse, and acme's usage does not show it.
    let globex = mesh.clients("globex");
    mesh.connect(&globex, CONNECTION, "affinda", secret, &settings)
        .await
        .unwrap();
    let mut globex_sync = globex.sync(&mesh.sync_addr);
    let theirs = globex_sync
        .parse_document(request(RESUME))
        .await
        .unwrap()
        .into_inner();
    assert!(!theirs.reused);
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["uploads"], 3);
    let usage = sync
        .get_parse_usage(GetParseUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.documents, 2);

    // The gateway's REST route: the same document, answered from its first parse.
    let (gateway, api_key) = mesh.start_gateway("acme").await.unwrap();
    let http = reqwest::Client::new();
    let route = format!("{gateway}/api/v1/integrations/{CONNECTION}/documents");
    let body = json!({
        "file_name": "grace_hopper.txt",
        "content_type": "text/plain",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(RESUME),
    });
    let answer = http
        .post(&route)
        .bearer_auth(&api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(answer["reused"], true, "{answer}");
    assert_eq!(answer["document_id"], parse.document_id.as_str());
    assert_eq!(answer["records"].as_array().unwrap().len(), 2, "{answer}");
    assert!(
        answer["records"][0]["personal_data_fields"]
            .as_array()
            .unwrap()
            .len()
            > 2
    );
    let refused = http
        .post(&route)
        .bearer_auth("pb_wrong_key_0123456789")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let elsewhere = format!("{gateway}/api/v1/integrations/nobody/documents");
    let missing = http
        .post(&elsewhere)
        .bearer_auth(&api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let garbled = http
        .post(&route)
        .bearer_auth(&api_key)
        .json(&json!({"file_name": "x.txt", "content_base64": "not base64!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 400);
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["uploads"], 3);

    // Bad requests get precise statuses; an unreadable document is the partner's refusal.
    let status = sync.parse_document(request(b"")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let unknown = ParseDocumentRequest {
        connection_id: "nobody".into(),
        ..request(RESUME)
    };
    let status = sync.parse_document(unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let status = sync
        .parse_document(request(&[0xff, 0xfe, 0x00, 0x01]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // A failed parse is not kept: nothing was landed or charged for it.
    let usage = sync
        .get_parse_usage(GetParseUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.documents, 2);
}

/// A parse that does not map (here: a tenant override reading a field RChilli does not send)
/// is quarantined with its reason after the partner charged for it; once the mapping is fixed,
/// the same document maps from the kept parse and the partner is not asked again.
#[tokio::test(flavor = "multi_thread")]
async fn a_parse_that_does_not_map_is_quarantined_and_mapped_again_without_a_new_parse() {
    use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
    use plugboard_proto::mapping::v1::{Direction, PutTenantOverrideRequest};
    use plugboard_proto::sync::v1::ListQuarantineRequest;
    use plugboard_sandbox::rchilli::{DEMO_SUB_USER, DEMO_USER_KEY, RchilliOptions};

    let samples = partners().join("textkernel-sovren/sovren-v9-json");
    let sandbox =
        serve_sandbox(plugboard_sandbox::rchilli::router(RchilliOptions::new(&samples)).unwrap())
            .await
            .unwrap();
    let mut mesh = DocumentMesh::start().await.unwrap();
    mesh.serve_connector("rchilli").await.unwrap();
    let clients = mesh.clients("initech");
    let secret = Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey {
            key: DEMO_USER_KEY.into(),
        })),
    };
    let settings = json!({"base_url": sandbox, "subuserid": DEMO_SUB_USER});
    mesh.connect(&clients, CONNECTION, "rchilli", secret, &settings)
        .await
        .unwrap();
    let mut mapping = MappingServiceClient::with_interceptor(
        plugboard_runtime::channel::lazy_channel(&mesh.mapping_addr).unwrap(),
        clients.credentials.clone(),
    );
    let first_name = |expr: &str| PutTenantOverrideRequest {
        connector: "rchilli".into(),
        entity: "candidate".into(),
        direction: Direction::Inbound as i32,
        yaml: format!("fields:\n  first_name: {{expr: {expr}, required: true}}\n"),
        expected_version: 0,
    };
    mapping
        .put_tenant_override(first_name(".Name.GivenName"))
        .await
        .unwrap();
    let mut sync = clients.sync(&mesh.sync_addr);

    let status = sync.parse_document(request(RESUME)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        plugboard_proto::error::reason_of(&status).as_deref(),
        Some("DOCUMENT_QUARANTINED")
    );
    let quarantined = sync
        .list_quarantine(ListQuarantineRequest {
            connection_id: CONNECTION.into(),
            page_size: 10,
            page_token: String::new(),
            include_resolved: false,
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(
        quarantined[0].reason.contains("candidate"),
        "{quarantined:?}"
    );
    assert_eq!(quarantined[0].stream, "documents.default");
    // The partner was paid for the parse, once.
    let usage = sync
        .get_parse_usage(GetParseUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.documents, 1);
    assert!(usage.parses[0].quarantined);
    assert_eq!(usage.totals[0].amount, "0.05");
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["parses"], 1);

    // The mapping fixed, the kept parse maps; RChilli is not asked again.
    mapping
        .put_tenant_override(first_name(".Name.FirstName"))
        .await
        .unwrap();
    let landed = sync
        .parse_document(request(RESUME))
        .await
        .unwrap()
        .into_inner();
    assert!(landed.reused);
    assert_eq!(landed.records.len(), 2, "{landed:?}");
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["parses"], 1);
    let usage = sync
        .get_parse_usage(GetParseUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!usage.parses[0].quarantined);
    assert_eq!((usage.documents, usage.reuses), (1, 1));
}

/// A document over gRPC's 4 MiB default goes through sync and the connector (Textkernel).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_document_is_parsed_through_sync() {
    use plugboard_sandbox::textkernel::{DEMO_ACCOUNT_ID, DEMO_SERVICE_KEY, TextkernelOptions};

    let samples = partners().join("textkernel-sovren/sovren-v9-json");
    let sandbox = serve_sandbox(
        plugboard_sandbox::textkernel::router(TextkernelOptions::new(&samples)).unwrap(),
    )
    .await
    .unwrap();
    let mut mesh = DocumentMesh::start().await.unwrap();
    mesh.serve_connector("textkernel").await.unwrap();
    let clients = mesh.clients("umbrella");
    let secret = Secret {
        kind: Some(secret::Kind::ApiKey(ApiKey {
            key: DEMO_SERVICE_KEY.into(),
        })),
    };
    let settings = json!({"base_url": format!("{sandbox}/tx/v10"), "account_id": DEMO_ACCOUNT_ID});
    mesh.connect(&clients, CONNECTION, "textkernel", secret, &settings)
        .await
        .unwrap();
    let mut large = RESUME.to_vec();
    while large.len() < 6 * 1024 * 1024 {
        large.extend_from_slice(b"Worked on compilers and standards for a long time.\n");
    }
    let parsed = clients
        .sync(&mesh.sync_addr)
        .max_encoding_message_size(16 * 1024 * 1024)
        .parse_document(request(&large))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parsed.records.len(), 2);
    // Tx keeps no document: the id is the content's SHA-256.
    let parse = parsed.parse.unwrap();
    assert_eq!(parse.document_id, parse.content_sha256);
    assert_eq!(sandbox_stats(&sandbox).await.unwrap()["parses"], 1);
}
