//! The mapping service over gRPC, fetching its specs from a registry stand-in.
//!
//! The stand-in is a small in-test `RegistryService` serving `GetConnector` with the real
//! Bullhorn spec files; both servers run on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use plugboard_mapping::Config;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Candidate, CanonicalRecord};
use plugboard_proto::error::reason_of;
use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use plugboard_proto::mapping::v1::transform_result::Outcome;
use plugboard_proto::mapping::v1::{
    Direction, ListBrokenOverridesRequest, ListSpecsRequest, ListTenantOverridesRequest,
    LookupPersonsRequest, PutTenantOverrideRequest, RecordRef, TransformInput, TransformRequest,
    ValidateSpecRequest,
};
use plugboard_proto::registry::v1::registry_service_server::{
    RegistryService, RegistryServiceServer,
};
use plugboard_proto::registry::v1::*;
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};

const KEY: &str = "a-test-mesh-key-of-at-least-32-bytes!!";

fn spec_files() -> Vec<MappingSpecFile> {
    [
        (
            "job.inbound.yaml",
            include_str!("../../connector-bullhorn/mappings/job.inbound.yaml"),
        ),
        (
            "candidate.inbound.yaml",
            include_str!("../../connector-bullhorn/mappings/candidate.inbound.yaml"),
        ),
        (
            "application.inbound.yaml",
            include_str!("../../connector-bullhorn/mappings/application.inbound.yaml"),
        ),
        (
            "placement.inbound.yaml",
            include_str!("../../connector-bullhorn/mappings/placement.inbound.yaml"),
        ),
        (
            "candidate.outbound.yaml",
            include_str!("fixtures/bullhorn/candidate.outbound.yaml"),
        ),
    ]
    .into_iter()
    .map(|(name, yaml)| MappingSpecFile {
        name: name.to_owned(),
        yaml: yaml.to_owned(),
    })
    .collect()
}

struct Registry {
    manifest: Mutex<ConnectorManifest>,
    calls: AtomicUsize,
}

struct RegistryStandIn(Arc<Registry>);

#[tonic::async_trait]
impl RegistryService for RegistryStandIn {
    async fn register(
        &self,
        _: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn list_connectors(
        &self,
        _: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn resolve(
        &self,
        _: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn get_connector(
        &self,
        request: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        // The mapping service must call as itself, signed with the mesh key.
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("no token"))?;
        let caller = key()
            .verify(token)
            .map_err(|_| Status::unauthenticated("bad token"))?;
        assert_eq!(caller.subject, "mapping");
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let manifest = self.0.manifest.lock().unwrap().clone();
        if request.get_ref().connector != manifest.name {
            return Err(Status::not_found("never registered"));
        }
        Ok(Response::new(GetConnectorResponse {
            connector: Some(ConnectorEntry {
                manifest: Some(manifest),
                live_instances: 1,
                last_seen_at: String::new(),
            }),
        }))
    }
}

fn key() -> MeshKey {
    MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap()
}

struct Mesh {
    registry: Arc<Registry>,
    client: MappingServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
    >,
    mapping_addr: String,
}

/// A fresh SQLite file for one test.
fn sqlite_url() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "plugboard-mapping-test-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    plugboard_runtime::storage::sqlite_url(&dir, "mapping")
}

async fn start() -> Mesh {
    start_on(sqlite_url(), None).await
}

async fn start_on(database_url: String, schema: Option<String>) -> Mesh {
    let registry = Arc::new(Registry {
        manifest: Mutex::new(ConnectorManifest {
            name: "bullhorn".to_owned(),
            version: "1.0.0".to_owned(),
            mapping_specs: spec_files(),
            ..Default::default()
        }),
        calls: AtomicUsize::new(0),
    });
    let registry_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_addr = registry_listener.local_addr().unwrap().to_string();
    let service = RegistryServiceServer::new(RegistryStandIn(registry.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(registry_listener)),
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mapping_addr = listener.local_addr().unwrap().to_string();
    let mut config = Config::new(
        listener.local_addr().unwrap(),
        SecretString::from(KEY.to_owned()),
        registry_addr,
        database_url,
    );
    if let Some(schema) = schema {
        config.database_schema = schema;
    }
    // Quick, so tests see new connector versions noticed without waiting long.
    config.spec_poll_interval = std::time::Duration::from_millis(100);
    tokio::spawn(plugboard_mapping::run(
        config,
        listener,
        std::future::pending(),
    ));

    let channel = plugboard_runtime::channel::lazy_channel(&mapping_addr).unwrap();
    let client = MappingServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key(), "sync").for_tenant("acme"),
    );
    Mesh {
        registry,
        client,
        mapping_addr,
    }
}

fn input(external_id: &str, payload: &str) -> TransformInput {
    TransformInput {
        external_id: external_id.to_owned(),
        payload_json: payload.to_owned(),
        record: None,
    }
}

fn jobs(version: &str, inputs: Vec<TransformInput>) -> TransformRequest {
    TransformRequest {
        connector: "bullhorn".to_owned(),
        connector_version: version.to_owned(),
        entity: "job".to_owned(),
        direction: Direction::Inbound as i32,
        inputs,
        connection_id: "conn-1".to_owned(),
        resolve_persons: false,
        omit_raw_payloads: false,
    }
}

const GOOD: &str = r#"{"id": 4521, "title": "Welder", "status": "Covered", "employmentType": "Contract",
  "payRate": 31.5, "clientBillRate": 48, "dateLastModified": 1709290861000}"#;

#[tokio::test]
async fn batch_maps_good_records_and_reports_bad_ones_one_by_one() {
    let mut mesh = start().await;
    let bad_rate =
        r#"{"id": 2, "title": "X", "payRate": "a lot", "dateLastModified": 1709290861000}"#;
    let no_modified = r#"{"id": 3, "title": "Y"}"#;
    let response = mesh
        .client
        .transform(jobs(
            "1.0.0",
            vec![
                input("4521", GOOD),
                input("2", bad_rate),
                input("x", "{oops"),
                input("3", no_modified),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results.len(), 4);

    let first = &response.results[0];
    assert_eq!(first.external_id, "4521");
    let Some(Outcome::Record(record)) = &first.outcome else {
        panic!("{first:?}")
    };
    assert_eq!(record.entity, "job");
    assert_eq!(record.external_id, "4521");
    assert_eq!(record.connection_id, "conn-1");
    assert_eq!(record.raw_payload_json, GOOD);
    assert_eq!(record.updated_at, "2024-03-01T11:01:01Z");
    assert!(
        record.content_hash.starts_with("pb:"),
        "{}",
        record.content_hash
    );
    assert_eq!(record.content_hash.len(), 67);
    let Some(Body::Job(job)) = &record.body else {
        panic!("no job body")
    };
    assert_eq!(job.status, "filled");
    assert_eq!(job.employment_type, "contract");
    assert_eq!(
        job.pay_rate
            .as_ref()
            .unwrap()
            .money
            .as_ref()
            .unwrap()
            .amount,
        "31.5"
    );

    let Some(Outcome::Error(error)) = &response.results[1].outcome else {
        panic!("{:?}", response.results[1])
    };
    assert_eq!(response.results[1].external_id, "2");
    assert_eq!(error.field_path, "pay_rate.money.amount");
    assert_eq!(error.partner_value, "\"a lot\"");

    let Some(Outcome::Error(error)) = &response.results[2].outcome else {
        panic!("{:?}", response.results[2])
    };
    assert_eq!(error.field_path, "$");
    assert!(
        error.message.starts_with("invalid JSON payload"),
        "{}",
        error.message
    );

    let Some(Outcome::Error(error)) = &response.results[3].outcome else {
        panic!("{:?}", response.results[3])
    };
    assert_eq!(error.field_path, "updated_at");

    // Same version again: served from the cache, same hash for the same record.
    let again = mesh
        .client
        .transform(jobs("1.0.0", vec![input("4521", GOOD)]))
        .await
        .unwrap()
        .into_inner();
    let Some(Outcome::Record(same)) = &again.results[0].outcome else {
        panic!()
    };
    assert_eq!(same.content_hash, record.content_hash);
    assert_eq!(mesh.registry.calls.load(Ordering::SeqCst), 1);

    let empty = mesh
        .client
        .transform(jobs("1.0.0", vec![]))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.results.is_empty());
}

#[tokio::test]
async fn raw_payloads_are_left_out_when_the_caller_keeps_them() {
    let mut mesh = start().await;
    let echoed = mesh
        .client
        .transform(jobs("1.0.0", vec![input("4521", GOOD)]))
        .await
        .unwrap()
        .into_inner();
    assert!(!echoed.raw_payloads_omitted);
    let Some(Outcome::Record(echoed)) = &echoed.results[0].outcome else {
        panic!("{echoed:?}")
    };
    assert_eq!(echoed.raw_payload_json, GOOD);

    let lean = mesh
        .client
        .transform(TransformRequest {
            omit_raw_payloads: true,
            ..jobs("1.0.0", vec![input("4521", GOOD), input("x", "{oops")])
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lean.raw_payloads_omitted);
    let Some(Outcome::Record(record)) = &lean.results[0].outcome else {
        panic!("{lean:?}")
    };
    assert_eq!(record.raw_payload_json, "");
    // Everything else is as when echoed, the content hash too.
    assert_eq!(
        record,
        &CanonicalRecord {
            raw_payload_json: String::new(),
            ..echoed.clone()
        }
    );
    assert!(matches!(lean.results[1].outcome, Some(Outcome::Error(_))));

    // Outbound has no raw payload to leave out, and says so.
    let outbound = mesh
        .client
        .transform(TransformRequest {
            omit_raw_payloads: true,
            ..outbound_candidates(vec![TransformInput {
                record: Some(canonical_candidate("Ada")),
                ..TransformInput::default()
            }])
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!outbound.raw_payloads_omitted);
}

#[tokio::test]
async fn unknown_specs_outbound_and_anonymous_callers_are_refused() {
    let mut mesh = start().await;
    let mut request = jobs("1.0.0", vec![input("1", GOOD)]);
    request.entity = "timesheet".to_owned();
    let status = mesh.client.transform(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("SPEC_NOT_FOUND"));

    let mut request = jobs("1.0.0", vec![input("1", GOOD)]);
    request.connector = "fieldglass".to_owned();
    let status = mesh.client.transform(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("SPEC_NOT_FOUND"));

    // Bullhorn's specs have no outbound job.
    let mut request = jobs("1.0.0", vec![input("1", GOOD)]);
    request.direction = Direction::Outbound as i32;
    let status = mesh.client.transform(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("SPEC_NOT_FOUND"));
    assert!(status.message().contains("outbound"), "{status:?}");

    let mut request = jobs("1.0.0", vec![input("1", GOOD)]);
    request.direction = Direction::Unspecified as i32;
    let status = mesh.client.transform(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let channel = plugboard_runtime::channel::lazy_channel(&mesh.mapping_addr).unwrap();
    let status = MappingServiceClient::new(channel)
        .transform(jobs("1.0.0", vec![input("1", GOOD)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

fn outbound_candidates(inputs: Vec<TransformInput>) -> TransformRequest {
    TransformRequest {
        entity: "candidate".to_owned(),
        direction: Direction::Outbound as i32,
        ..jobs("1.0.0", inputs)
    }
}

/// A canonical candidate as sync holds it, from another connection.
fn canonical_candidate(first_name: &str) -> CanonicalRecord {
    CanonicalRecord {
        entity: "candidate".to_owned(),
        external_id: "gh-53883394".to_owned(),
        body: Some(Body::Candidate(Candidate {
            first_name: first_name.to_owned(),
            last_name: "Locke".to_owned(),
            email: "John.Locke@Example.com".to_owned(),
            status: "active".to_owned(),
            ..Candidate::default()
        })),
        custom_fields: std::collections::BTreeMap::from([(
            "security_clearance".to_owned(),
            "SC".to_owned(),
        )]),
        connection_id: "conn-gh".to_owned(),
        ..CanonicalRecord::default()
    }
}

#[tokio::test]
async fn outbound_batches_map_canonical_records_to_partner_payloads() {
    let mut mesh = start().await;
    let response = mesh
        .client
        .transform(outbound_candidates(vec![
            TransformInput {
                external_id: "4521".to_owned(),
                record: Some(canonical_candidate("John")),
                ..TransformInput::default()
            },
            // No first name: the spec requires one. The batch goes on.
            TransformInput {
                record: Some(canonical_candidate("")),
                ..TransformInput::default()
            },
            // The same record as a canonical document, for a create.
            input(
                "",
                r#"{"first_name": "John", "last_name": "Locke", "status": "placed"}"#,
            ),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results.len(), 3);
    let Some(Outcome::PartnerRecord(first)) = &response.results[0].outcome else {
        panic!("{:?}", response.results[0])
    };
    assert_eq!(response.results[0].external_id, "4521");
    assert_eq!(first.external_id, "4521");
    let payload: serde_json::Value = serde_json::from_str(&first.payload_json).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({"firstName": "John", "lastName": "Locke",
            "email": "john.locke@example.com", "status": "Active"})
    );
    let Some(Outcome::Error(error)) = &response.results[1].outcome else {
        panic!("{:?}", response.results[1])
    };
    assert_eq!(error.field_path, "firstName");
    let Some(Outcome::PartnerRecord(third)) = &response.results[2].outcome else {
        panic!("{:?}", response.results[2])
    };
    assert_eq!(third.external_id, "");
    assert!(
        third.payload_json.contains(r#""status":"Placed""#),
        "{third:?}"
    );

    // A tenant maps its canonical custom field to its own Bullhorn field, outbound too.
    mesh.client
        .put_tenant_override(PutTenantOverrideRequest {
            direction: Direction::Outbound as i32,
            ..put(
                "fields:\n  customText3: .custom_fields.security_clearance\n",
                0,
            )
        })
        .await
        .unwrap();
    let response = mesh
        .client
        .transform(outbound_candidates(vec![TransformInput {
            external_id: "4521".to_owned(),
            record: Some(canonical_candidate("John")),
            ..TransformInput::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    let Some(Outcome::PartnerRecord(overridden)) = &response.results[0].outcome else {
        panic!("{:?}", response.results[0])
    };
    assert!(
        overridden.payload_json.contains(r#""customText3":"SC""#),
        "{overridden:?}"
    );
    assert_ne!(overridden.content_hash, first.content_hash);
    // Only outbound: the inbound candidate spec has no override.
    assert!(
        !custom_fields(&mut mesh.client)
            .await
            .contains_key("security_clearance")
    );
}

#[tokio::test]
async fn new_version_refetches_and_a_broken_spec_names_file_and_line() {
    let mut mesh = start().await;
    mesh.client
        .transform(jobs("1.0.0", vec![input("1", GOOD)]))
        .await
        .unwrap();
    {
        let mut manifest = mesh.registry.manifest.lock().unwrap();
        manifest.version = "1.1.0".to_owned();
        let job = &mut manifest.mapping_specs[0];
        job.yaml = job.yaml.replace("  title: .title", "  title: .title | (");
    }
    let status = mesh
        .client
        .transform(jobs("1.1.0", vec![input("1", GOOD)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status).as_deref(), Some("SPEC_INVALID"));
    let line = include_str!("../../connector-bullhorn/mappings/job.inbound.yaml")
        .lines()
        .position(|line| line == "  title: .title")
        .unwrap()
        + 1;
    assert!(
        status
            .message()
            .contains(&format!("job.inbound.yaml:{line}: field title")),
        "{}",
        status.message()
    );
    assert_eq!(mesh.registry.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn validate_and_list_specs() {
    let mut mesh = start().await;
    let response = mesh
        .client
        .validate_spec(ValidateSpecRequest {
            name: "x.yaml".to_owned(),
            yaml: "version: 1\nentity: [\n".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!response.valid);
    assert_eq!(response.problems[0].file, "x.yaml");
    assert!(response.problems[0].line >= 2, "{:?}", response.problems);

    let files = spec_files();
    let response = mesh
        .client
        .validate_spec(ValidateSpecRequest {
            name: files[1].name.clone(),
            yaml: files[1].yaml.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.valid, "{:?}", response.problems);

    let listed = mesh
        .client
        .list_specs(ListSpecsRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut entities: Vec<&str> = listed
        .specs
        .iter()
        .map(|spec| spec.entity.as_str())
        .collect();
    entities.sort_unstable();
    assert_eq!(
        entities,
        ["application", "candidate", "candidate", "job", "placement"]
    );
    assert!(
        listed
            .specs
            .iter()
            .any(|spec| spec.entity == "candidate" && spec.direction == Direction::Outbound as i32)
    );
    assert!(
        listed
            .specs
            .iter()
            .all(|spec| spec.connector_version == "1.0.0" && spec.field_count > 5)
    );
}

fn tenant_client(
    mesh: &Mesh,
    tenant: &str,
) -> MappingServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
> {
    let channel = plugboard_runtime::channel::lazy_channel(&mesh.mapping_addr).unwrap();
    MappingServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key(), "gateway").for_tenant(tenant),
    )
}

fn put(yaml: &str, expected_version: u32) -> PutTenantOverrideRequest {
    PutTenantOverrideRequest {
        connector: "bullhorn".to_owned(),
        entity: "candidate".to_owned(),
        direction: Direction::Inbound as i32,
        yaml: yaml.to_owned(),
        expected_version,
    }
}

fn candidates(inputs: Vec<TransformInput>) -> TransformRequest {
    TransformRequest {
        entity: "candidate".to_owned(),
        ..jobs("1.0.0", inputs)
    }
}

const CANDIDATE: &str = r#"{"id": 7, "firstName": "Ada", "lastName": "Lovelace",
  "dateLastModified": 1709290861000, "customText3": "Top Secret"}"#;

/// The custom fields the transform gave the one candidate.
async fn custom_fields(
    client: &mut MappingServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
    >,
) -> std::collections::BTreeMap<String, String> {
    let response = client
        .transform(candidates(vec![input("7", CANDIDATE)]))
        .await
        .unwrap()
        .into_inner();
    match &response.results[0].outcome {
        Some(Outcome::Record(record)) => record.custom_fields.clone(),
        other => panic!("candidate did not map: {other:?}"),
    }
}

async fn overrides_are_validated_versioned_and_per_tenant(mut mesh: Mesh) {
    // Refused on save, with the problem: an expression a tenant may not run...
    let status = mesh
        .client
        .put_tenant_override(put(
            "custom_fields:\n  security_clearance: .customText3 | repeat(.)\n",
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason_of(&status).as_deref(), Some("OVERRIDE_INVALID"));
    assert!(
        status.message().contains("security_clearance"),
        "{status:?}"
    );
    assert!(status.message().contains("not allowed"), "{status:?}");
    // ...an expression that is not jq at all, told as such...
    let status = mesh
        .client
        .put_tenant_override(put(
            "custom_fields:\n  security_clearance: .customText3 |\n",
            0,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("OVERRIDE_INVALID"));
    assert!(status.message().contains("not valid jq"), "{status:?}");
    assert!(!status.message().contains("not allowed"), "{status:?}");
    // ...a target the canonical candidate does not have, and YAML that is not an override.
    let status = mesh
        .client
        .put_tenant_override(put("fields:\n  clearance_level: .customText3\n", 0))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("OVERRIDE_INVALID"));
    assert!(
        status
            .message()
            .contains("not a field of the canonical candidate"),
        "{status:?}"
    );
    let status = mesh
        .client
        .put_tenant_override(put("custom_field:\n  x: .y\n", 0))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("OVERRIDE_INVALID"));
    // Nothing refused was stored.
    let listed = mesh
        .client
        .list_tenant_overrides(ListTenantOverridesRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.overrides.is_empty(), "{listed:?}");
    assert!(
        !custom_fields(&mut mesh.client)
            .await
            .contains_key("security_clearance")
    );

    // A good override applies to the next transform, with no deploy.
    let saved = mesh
        .client
        .put_tenant_override(put(
            "custom_fields:\n  security_clearance: .customText3\n",
            0,
        ))
        .await
        .unwrap()
        .into_inner()
        .saved
        .unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(
        custom_fields(&mut mesh.client)
            .await
            .get("security_clearance")
            .map(String::as_str),
        Some("Top Secret")
    );
    // Other tenants are not affected.
    let mut globex = tenant_client(&mesh, "globex");
    assert!(
        !custom_fields(&mut globex)
            .await
            .contains_key("security_clearance")
    );

    // A new version replaces it; saving against a stale version is refused.
    let saved = mesh
        .client
        .put_tenant_override(put(
            "custom_fields:\n  security_clearance: .customText3 | ascii_downcase\n",
            1,
        ))
        .await
        .unwrap()
        .into_inner()
        .saved
        .unwrap();
    assert_eq!(saved.version, 2);
    assert_eq!(
        custom_fields(&mut mesh.client)
            .await
            .get("security_clearance")
            .map(String::as_str),
        Some("top secret")
    );
    let status = mesh
        .client
        .put_tenant_override(put("custom_fields:\n  other: .customText1\n", 1))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("OVERRIDE_CONFLICT"));

    let listed = mesh
        .client
        .list_tenant_overrides(ListTenantOverridesRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<u32> = listed.overrides.iter().map(|o| o.version).collect();
    assert_eq!(versions, vec![2, 1]);
    assert!(listed.overrides[1].yaml.contains(".customText3\n"));
    let listed = globex
        .list_tenant_overrides(ListTenantOverridesRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.overrides.is_empty());
}

#[tokio::test]
async fn tenant_overrides_on_sqlite() {
    overrides_are_validated_versioned_and_per_tenant(start().await).await;
}

#[tokio::test]
async fn tenant_overrides_on_postgres() {
    let schema = format!(
        "mapping_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mesh = start_on(
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
        Some(schema),
    )
    .await;
    overrides_are_validated_versioned_and_per_tenant(mesh).await;
}

type Client = MappingServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
>;

const ENGINEER: &str = r#"{"id": 8, "firstName": "Grace", "lastName": "Hopper",
  "occupation": "Engineer", "status": "Placed", "dateLastModified": 1709290861000,
  "customText3": "Top Secret"}"#;

/// The title and custom fields the transform gave the candidate.
async fn engineer(client: &mut Client) -> (String, std::collections::BTreeMap<String, String>) {
    let response = client
        .transform(TransformRequest {
            connector_version: "1.1.0".to_owned(),
            ..candidates(vec![input("8", ENGINEER)])
        })
        .await
        .unwrap()
        .into_inner();
    match &response.results[0].outcome {
        Some(Outcome::Record(record)) => match &record.body {
            Some(Body::Candidate(candidate)) => (
                candidate.current_title.clone(),
                record.custom_fields.clone(),
            ),
            other => panic!("not a candidate: {other:?}"),
        },
        other => panic!("candidate did not map: {other:?}"),
    }
}

async fn broken(client: &mut Client) -> Vec<plugboard_proto::mapping::v1::TenantOverride> {
    client
        .list_broken_overrides(ListBrokenOverridesRequest {
            connector: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .overrides
}

async fn upgrades_that_break_an_override_are_found_before_a_sync(mut mesh: Mesh) {
    // The tenant's override uses a lookup of the connector's spec.
    let override_yaml = "fields:\n  status: {expr: .status, lookup: candidate_status}\n\
                         custom_fields:\n  security_clearance: .customText3\n";
    mesh.client
        .put_tenant_override(put(override_yaml, 0))
        .await
        .unwrap();
    let mut globex = tenant_client(&mesh, "globex");

    // Version 1.1.0 registers: it renames that lookup and upper-cases titles.
    {
        let mut manifest = mesh.registry.manifest.lock().unwrap();
        manifest.version = "1.1.0".to_owned();
        let candidate = &mut manifest.mapping_specs[1];
        assert_eq!(candidate.name, "candidate.inbound.yaml");
        candidate.yaml = candidate
            .yaml
            .replace("candidate_status", "status_codes")
            .replace(
                "  current_title: .occupation",
                "  current_title: .occupation | ascii_upcase",
            );
    }

    // Found by the service's own look at the registry, without any transform asking.
    let mut found = Vec::new();
    for _ in 0..100 {
        found = broken(&mut mesh.client).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let problem = &found[0];
    assert_eq!(problem.version, 1);
    assert_eq!(problem.checked_connector_version, "1.1.0");
    assert_eq!(problem.active_connector_version, "1.0.0");
    assert!(
        problem.problems[0]
            .message
            .contains("no lookup named \"candidate_status\""),
        "{problem:?}"
    );
    assert!(broken(&mut globex).await.is_empty(), "tenant-scoped");

    // The tenant's syncs go on with the last spec its override fits; others get the new one.
    let (title, custom) = engineer(&mut mesh.client).await;
    assert_eq!(title, "Engineer");
    assert_eq!(
        custom.get("security_clearance").map(String::as_str),
        Some("Top Secret")
    );
    let (title, custom) = engineer(&mut globex).await;
    assert_eq!(title, "ENGINEER");
    assert!(!custom.contains_key("security_clearance"));
    let listed = mesh
        .client
        .list_tenant_overrides(ListTenantOverridesRequest {
            connector: "bullhorn".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.overrides[0].active_connector_version, "1.0.0");
    assert_eq!(listed.overrides[0].problems.len(), 1);

    // A fixed version is checked against 1.1.0 when saved and applies over it.
    let saved = mesh
        .client
        .put_tenant_override(put(
            &override_yaml.replace("candidate_status", "status_codes"),
            1,
        ))
        .await
        .unwrap()
        .into_inner()
        .saved
        .unwrap();
    assert_eq!(saved.active_connector_version, "1.1.0");
    assert!(saved.problems.is_empty());
    assert!(broken(&mut mesh.client).await.is_empty());
    let (title, custom) = engineer(&mut mesh.client).await;
    assert_eq!(title, "ENGINEER");
    assert!(custom.contains_key("security_clearance"));
}

#[tokio::test]
async fn broken_overrides_on_sqlite() {
    upgrades_that_break_an_override_are_found_before_a_sync(start().await).await;
}

#[tokio::test]
async fn broken_overrides_on_postgres() {
    let schema = format!(
        "mapping_test_broken_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mesh = start_on(
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
        Some(schema),
    )
    .await;
    upgrades_that_break_an_override_are_found_before_a_sync(mesh).await;
}

/// The people of a page, as sync reads them: candidates 7 and 8 share an e-mail (in another
/// case), 9 has none.
const PEOPLE: [(&str, &str); 3] = [
    (
        "7",
        r#"{"id": 7, "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "dateLastModified": 1709290861000}"#,
    ),
    (
        "8",
        r#"{"id": 8, "firstName": "Ada", "lastName": "King", "email": "Ada@Example.com",
            "dateLastModified": 1709290862000}"#,
    ),
    (
        "9",
        r#"{"id": 9, "firstName": "Charles", "lastName": "Babbage",
            "dateLastModified": 1709290863000}"#,
    ),
];

fn record_ref(external_id: &str) -> RecordRef {
    RecordRef {
        connection_id: "conn-1".to_owned(),
        entity: "candidate".to_owned(),
        external_id: external_id.to_owned(),
    }
}

/// Person ids of the candidates `ids` that were ever linked.
async fn persons_of(mesh: &mut Mesh, ids: &[&str]) -> Vec<(String, String)> {
    let records = ids.iter().map(|id| record_ref(id)).collect();
    let found = mesh
        .client
        .lookup_persons(LookupPersonsRequest { records })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    found
        .into_iter()
        .map(|assignment| {
            let record = assignment.record.unwrap();
            (record.external_id, assignment.person_id)
        })
        .collect()
}

#[tokio::test]
async fn transform_links_the_pages_people_in_the_same_call_when_asked() {
    let mut mesh = start().await;
    let page = |ids: &[&str]| -> Vec<TransformInput> {
        PEOPLE
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, payload)| input(id, payload))
            .collect()
    };

    // Not asked: mapped, nothing linked (sync then calls ResolvePersons itself).
    let plain = mesh
        .client
        .transform(candidates(page(&["9"])))
        .await
        .unwrap()
        .into_inner();
    assert!(!plain.persons_resolved);
    assert!(persons_of(&mut mesh, &["9"]).await.is_empty());

    // Asked: the records are answered as before, and linked as ResolvePersons would.
    let linked = mesh
        .client
        .transform(TransformRequest {
            resolve_persons: true,
            ..candidates(page(&["7", "8", "9"]))
        })
        .await
        .unwrap()
        .into_inner();
    assert!(linked.persons_resolved);
    assert!(
        linked
            .results
            .iter()
            .all(|result| matches!(result.outcome, Some(Outcome::Record(_))))
    );
    let persons = persons_of(&mut mesh, &["7", "8", "9"]).await;
    assert_eq!(persons.len(), 3, "{persons:?}");
    assert_eq!(persons[0].1, persons[1].1, "7 and 8 share an e-mail");
    assert_ne!(persons[0].1, persons[2].1, "9 shares nothing");

    // Linking needs to know the connection the records are of.
    let refused = mesh
        .client
        .transform(TransformRequest {
            resolve_persons: true,
            connection_id: String::new(),
            ..candidates(page(&["9"]))
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}
