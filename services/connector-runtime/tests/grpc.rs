//! The generic runtime as a service: the Greenhouse folder served over gRPC (check, discover,
//! read and write), leasing its secret from a credentials stand-in and registering with a
//! registry stand-in, against the Greenhouse sandbox; all on real sockets on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugboard_connector_runtime::{Config, run};
use plugboard_proto::connector::v1::connector_service_client::ConnectorServiceClient;
use plugboard_proto::connector::v1::{
    CheckRequest, ConnectionRef, DiscoverRequest, ReadRequest, WriteRequest,
};
use plugboard_proto::credentials::v1::credentials_service_server::{
    CredentialsService, CredentialsServiceServer,
};
use plugboard_proto::credentials::v1::*;
use plugboard_proto::registry::v1::registry_service_server::{
    RegistryService, RegistryServiceServer,
};
use plugboard_proto::registry::v1::*;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use plugboard_sandbox::greenhouse::{DEMO_API_KEY, GreenhouseOptions};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

const MESH_KEY: &str = "runtime-test-mesh-key-of-at-least-32-bytes";

fn key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

#[derive(Default, Clone)]
struct FakeCredentials {
    callers: Arc<Mutex<Vec<Caller>>>,
}

#[tonic::async_trait]
impl CredentialsService for FakeCredentials {
    async fn put_credential(
        &self,
        _: Request<PutCredentialRequest>,
    ) -> Result<Response<PutCredentialResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn lease_access(
        &self,
        request: Request<LeaseAccessRequest>,
    ) -> Result<Response<LeaseAccessResponse>, Status> {
        self.callers
            .lock()
            .unwrap()
            .push(Caller::of(&request)?.clone());
        let key = if request.get_ref().connection_id == "bad-key" {
            "wrong"
        } else {
            DEMO_API_KEY
        };
        Ok(Response::new(LeaseAccessResponse {
            secret: Some(Secret {
                kind: Some(secret::Kind::ApiKey(ApiKey {
                    key: key.to_owned(),
                })),
            }),
            ..LeaseAccessResponse::default()
        }))
    }

    async fn revoke(&self, _: Request<RevokeRequest>) -> Result<Response<RevokeResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn describe_credential(
        &self,
        _: Request<DescribeCredentialRequest>,
    ) -> Result<Response<DescribeCredentialResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn list_audit(
        &self,
        _: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

/// A registration and the connector its caller identity names.
type Registration = (RegisterRequest, Option<String>);

#[derive(Default, Clone)]
struct FakeRegistry {
    registrations: Arc<Mutex<Vec<Registration>>>,
    heartbeats: Arc<Mutex<u32>>,
}

#[tonic::async_trait]
impl RegistryService for FakeRegistry {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let connector = Caller::of(&request)?.connector.clone();
        self.registrations
            .lock()
            .unwrap()
            .push((request.into_inner(), connector));
        Ok(Response::new(RegisterResponse {
            liveness_ttl_seconds: 2,
        }))
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        *self.heartbeats.lock().unwrap() += 1;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn list_connectors(
        &self,
        _: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn resolve(
        &self,
        _: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn get_connector(
        &self,
        _: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

#[tokio::test]
async fn serves_the_greenhouse_manifest_over_grpc_and_registers() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options =
        GreenhouseOptions::new(&manifest_dir.join("../../../shared/partners/greenhouse/harvest"));
    options.rate_limit = None;
    let router = plugboard_sandbox::greenhouse::router(options).unwrap();
    let (listener, sandbox) = listen().await;
    let sandbox = format!("http://{sandbox}");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let credentials = FakeCredentials::default();
    let (listener, credentials_addr) = listen().await;
    tokio::spawn(
        Server::builder()
            .add_service(CredentialsServiceServer::with_interceptor(
                credentials.clone(),
                RequireCaller::new(key()),
            ))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let registry = FakeRegistry::default();
    let (listener, registry_addr) = listen().await;
    tokio::spawn(
        Server::builder()
            .add_service(RegistryServiceServer::with_interceptor(
                registry.clone(),
                RequireCaller::new(key()),
            ))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let (listener, connector_addr) = listen().await;
    let config = Config {
        connector_dir: manifest_dir.join("../connector-greenhouse"),
        listen_addr: listener.local_addr().unwrap(),
        advertise_addr: None,
        registry_addr,
        credentials_addr,
        mesh_key: SecretString::from(MESH_KEY.to_owned()),
        allow_private_targets: true,
        instance_id: None,
        signing_key: None,
        redis_url: None,
        max_rate_limit_wait: None,
    };
    tokio::spawn(run(config, listener, std::future::pending()));

    // Registration and heartbeats.
    for _ in 0..50 {
        if *registry.heartbeats.lock().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let registrations = registry.registrations.lock().unwrap();
        let (request, connector) = registrations.first().expect("registered");
        assert_eq!(connector.as_deref(), Some("greenhouse"));
        assert_eq!(request.address, connector_addr);
        let manifest = request.manifest.as_ref().unwrap();
        assert_eq!(manifest.category, "ats");
        assert_eq!(manifest.credential_kind, "api_key");
        assert_eq!(manifest.streams.len(), 3);
        assert_eq!(manifest.mapping_specs.len(), 3);
        let schema: serde_json::Value =
            serde_json::from_str(&manifest.settings_schema_json).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["on_behalf_of"]));
    }
    assert!(*registry.heartbeats.lock().unwrap() > 0, "no heartbeat");

    let channel = plugboard_runtime::channel::lazy_channel(&connector_addr).unwrap();
    let mut client = ConnectorServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key(), "sync").for_tenant("acme"),
    );
    let connection = |id: &str| ConnectionRef {
        connection_id: id.to_owned(),
        settings_json: serde_json::json!({"base_url": sandbox, "on_behalf_of": "1"}).to_string(),
    };
    let check = client
        .check(CheckRequest {
            connection: Some(connection("gh-1")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(check.ok, "{}", check.reason);
    let refused = client
        .check(CheckRequest {
            connection: Some(connection("bad-key")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!refused.ok);
    assert!(refused.reason.contains("credentials"), "{}", refused.reason);
    let leased_by = credentials.callers.lock().unwrap()[0].clone();
    assert_eq!(leased_by.subject, "connector:greenhouse");
    assert_eq!(leased_by.tenant.as_deref(), Some("acme"));

    let discovered = client
        .discover(DiscoverRequest {
            connection: Some(connection("gh-1")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(discovered.streams.len(), 3);

    let mut pages = client
        .read(ReadRequest {
            connection: Some(connection("gh-1")),
            stream: "jobs".to_owned(),
            checkpoint: String::new(),
            page_size: 7,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut records = 0;
    let mut count = 0;
    while let Some(page) = pages.message().await.unwrap() {
        records += page.records.len();
        count += 1;
    }
    assert_eq!(records, 30);
    assert_eq!(count, 5);

    let unknown = client
        .read(ReadRequest {
            connection: Some(connection("gh-1")),
            stream: "offers".to_owned(),
            ..ReadRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);

    // A create lands at the partner and answers with its id and the record as stored.
    let create = WriteRequest {
        connection: Some(connection("gh-1")),
        entity: "candidate".to_owned(),
        external_id: String::new(),
        record_json: serde_json::json!({
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        })
        .to_string(),
        idempotency_key: "push-1".to_owned(),
        earlier_attempt_unconfirmed: false,
        mapped: None,
    };
    let created = client.write(create.clone()).await.unwrap().into_inner();
    let answer: serde_json::Value = serde_json::from_str(&created.partner_payload_json).unwrap();
    assert_eq!(answer["id"].to_string(), created.external_id);
    assert_eq!(answer["email_addresses"][0]["value"], "ada@example.com");
    // Greenhouse takes no idempotency key, so a create that may have happened is not repeated.
    let refused = client
        .write(WriteRequest {
            earlier_attempt_unconfirmed: true,
            ..create.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        plugboard_proto::error::reason_of(&refused).as_deref(),
        Some("WRITE_OUTCOME_UNKNOWN")
    );
    let candidates = |sandbox: String| async move {
        let body: serde_json::Value =
            reqwest::get(format!("{sandbox}/_sandbox/records/candidates"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        body["data"].as_array().unwrap().clone()
    };
    assert_eq!(candidates(sandbox.clone()).await.len(), 121);
    // An update of the same record may be repeated: it sets the same values again.
    let update = WriteRequest {
        external_id: created.external_id.clone(),
        record_json: serde_json::json!({"current_title": "Analyst"}).to_string(),
        earlier_attempt_unconfirmed: true,
        ..create
    };
    let updated = client.write(update).await.unwrap().into_inner();
    assert_eq!(updated.external_id, created.external_id);
    let all = candidates(sandbox).await;
    let ada = all
        .iter()
        .find(|c| {
            c["id"]
                .as_i64()
                .is_some_and(|id| id.to_string() == created.external_id)
        })
        .unwrap();
    assert_eq!(ada["title"], "Analyst");
    assert_eq!(all.len(), 121);
}
