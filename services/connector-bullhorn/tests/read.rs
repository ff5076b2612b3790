//! The connector against a real Bullhorn sandbox, with in-test stand-ins for the credentials
//! and registry services, all over real sockets on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugboard_connector_bullhorn::{Config, run};
use plugboard_proto::connector::v1::connector_service_client::ConnectorServiceClient;
use plugboard_proto::connector::v1::{
    CheckRequest, ConnectionRef, DiscoverRequest, RawRecord, ReadRequest, RejectedRecord,
};
use plugboard_proto::credentials::v1::credentials_service_server::{
    CredentialsService, CredentialsServiceServer,
};
use plugboard_proto::credentials::v1::{
    DescribeCredentialRequest, DescribeCredentialResponse, LeaseAccessRequest, LeaseAccessResponse,
    ListAuditRequest, ListAuditResponse, OAuth2Client, PutCredentialRequest, PutCredentialResponse,
    RevokeRequest, RevokeResponse, Secret, secret,
};
use plugboard_proto::error::reason_of;
use plugboard_proto::registry::v1::registry_service_server::{
    RegistryService, RegistryServiceServer,
};
use plugboard_proto::registry::v1::*;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use plugboard_sandbox::bullhorn::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
};
use plugboard_sandbox::{SandboxOptions, serve};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};

const MESH_KEY: &str = "connector-test-mesh-key-of-at-least-32-bytes";
const TENANT: &str = "acme";

fn key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

/// Hands out the demo secret; connection `bad-password` gets a wrong password.
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
        let caller = Caller::of(&request)?.clone();
        self.callers.lock().unwrap().push(caller);
        let connection = request.into_inner().connection_id;
        if connection == "missing" {
            return Err(Status::not_found("no credential"));
        }
        let password = if connection == "bad-password" {
            "wrong"
        } else {
            DEMO_PASSWORD
        };
        let secret = Secret {
            kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                client_id: DEMO_CLIENT_ID.to_owned(),
                client_secret: DEMO_CLIENT_SECRET.to_owned(),
                username: DEMO_USERNAME.to_owned(),
                password: password.to_owned(),
                ..OAuth2Client::default()
            })),
        };
        Ok(Response::new(LeaseAccessResponse {
            secret: Some(secret),
            version: 1,
            expires_at: String::new(),
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

/// Accepts registrations; forgets the instance at its first heartbeat.
#[derive(Default, Clone)]
struct FakeRegistry {
    registrations: Arc<Mutex<Vec<RegisterRequest>>>,
    heartbeats: Arc<Mutex<u32>>,
}

#[tonic::async_trait]
impl RegistryService for FakeRegistry {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        assert_eq!(Caller::of(&request)?.connector.as_deref(), Some("bullhorn"));
        self.registrations
            .lock()
            .unwrap()
            .push(request.into_inner());
        Ok(Response::new(RegisterResponse {
            liveness_ttl_seconds: 3,
        }))
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let mut count = self.heartbeats.lock().unwrap();
        *count += 1;
        if *count == 1 {
            return Err(Status::not_found("unknown instance"));
        }
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

type Client = ConnectorServiceClient<InterceptedService<Channel, MeshCredentials>>;

struct Harness {
    sandbox: String,
    http: reqwest::Client,
    client: Client,
    credentials: FakeCredentials,
    registry: FakeRegistry,
    connector_addr: String,
}

async fn start(allow_private: bool) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = format!("http://{}", listener.local_addr().unwrap());
    let options = SandboxOptions {
        requests_per_second: None,
        ..SandboxOptions::default()
    };
    tokio::spawn(serve(listener, options, std::future::pending()));

    let credentials = FakeCredentials::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let credentials_addr = listener.local_addr().unwrap().to_string();
    let service =
        CredentialsServiceServer::with_interceptor(credentials.clone(), RequireCaller::new(key()));
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let registry = FakeRegistry::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_addr = listener.local_addr().unwrap().to_string();
    let service =
        RegistryServiceServer::with_interceptor(registry.clone(), RequireCaller::new(key()));
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connector_addr = listener.local_addr().unwrap().to_string();
    let env = plugboard_runtime::config::Env::from_pairs([
        ("PLUGBOARD_MESH_KEY", MESH_KEY.to_owned()),
        ("PLUGBOARD_CREDENTIALS_ADDR", credentials_addr),
        ("PLUGBOARD_REGISTRY_ADDR", registry_addr),
        ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", allow_private.to_string()),
    ]);
    let config = Config::from_env(&env).unwrap();
    tokio::spawn(run(config, listener, std::future::pending()));

    let channel = plugboard_runtime::channel::lazy_channel(&connector_addr).unwrap();
    let identity = MeshCredentials::service(key(), "sync").for_tenant(TENANT);
    Harness {
        sandbox,
        http: reqwest::Client::new(),
        client: ConnectorServiceClient::with_interceptor(channel, identity),
        credentials,
        registry,
        connector_addr,
    }
}

struct ReadResult {
    records: Vec<RawRecord>,
    rejected: Vec<RejectedRecord>,
    checkpoints: Vec<String>,
    waits: u32,
}

impl Harness {
    fn connection(&self, id: &str) -> ConnectionRef {
        ConnectionRef {
            connection_id: id.to_owned(),
            settings_json: json!({"auth_url": self.sandbox, "login_url": self.sandbox}).to_string(),
        }
    }

    async fn read(
        &self,
        stream: &str,
        checkpoint: &str,
        page_size: u32,
    ) -> Result<ReadResult, Status> {
        let request = ReadRequest {
            connection: Some(self.connection("conn-1")),
            stream: stream.to_owned(),
            checkpoint: checkpoint.to_owned(),
            page_size,
            ..ReadRequest::default()
        };
        let mut pages = self.client.clone().read(request).await?.into_inner();
        let mut result = ReadResult {
            records: Vec::new(),
            rejected: Vec::new(),
            checkpoints: Vec::new(),
            waits: 0,
        };
        while let Some(page) = pages.message().await? {
            result.records.extend(page.records);
            result.rejected.extend(page.rejected);
            result.checkpoints.push(page.checkpoint);
            result.waits += page.rate_limited_waits;
        }
        Ok(result)
    }

    async fn held(&self, entity: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_sandbox/records/{entity}", self.sandbox))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().unwrap().clone()
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.json().await.unwrap()
    }
}

fn ids(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|r| r.external_id.clone()).collect()
}

fn checkpoint(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn full_read_of_every_stream_equals_the_sandbox() {
    let harness = start(true).await;
    let discovered = harness
        .client
        .clone()
        .discover(DiscoverRequest {
            connection: Some(harness.connection("conn-1")),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = discovered.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["JobOrder", "Candidate", "JobSubmission", "Placement"]
    );

    for stream in names {
        let read = harness.read(stream, "", 15).await.unwrap();
        let held = harness.held(stream).await;
        let read_ids = ids(&read.records);
        let unique: HashSet<&String> = read_ids.iter().collect();
        assert_eq!(unique.len(), read_ids.len(), "{stream}: each record once");
        let held_ids: HashSet<String> = held.iter().map(|r| r["id"].to_string()).collect();
        assert_eq!(unique, held_ids.iter().collect(), "{stream}");
        assert!(read.rejected.is_empty());

        // Mid-run checkpoints keep `since` and advance `start`; the last moves `since` on.
        let first = checkpoint(&read.checkpoints[0]);
        assert_eq!(
            (first["since"].as_i64(), first["start"].as_u64()),
            (Some(0), Some(15))
        );
        let last = checkpoint(read.checkpoints.last().unwrap());
        let newest = held
            .iter()
            .map(|r| r["dateLastModified"].as_i64().unwrap())
            .max();
        assert_eq!(last["since"].as_i64(), newest, "{stream}");
        assert_eq!(last["start"], 0);
        let payload: Value = serde_json::from_str(&read.records[0].payload_json).unwrap();
        assert_eq!(payload["id"].to_string(), read.records[0].external_id);
    }

    // Every lease was made as the bullhorn connector, for the caller's tenant.
    let callers = harness.credentials.callers.lock().unwrap().clone();
    assert!(!callers.is_empty());
    assert!(callers.iter().all(|c| c.subject == "connector:bullhorn"
        && c.connector.as_deref() == Some("bullhorn")
        && c.tenant.as_deref() == Some(TENANT)));
}

#[tokio::test]
async fn incremental_read_after_touch_returns_the_touched_records() {
    let harness = start(true).await;
    let full = harness.read("Candidate", "", 0).await.unwrap();
    let resume = full.checkpoints.last().unwrap().clone();
    let since = checkpoint(&resume)["since"].as_i64().unwrap();

    let nothing_new = harness.read("Candidate", &resume, 0).await.unwrap();
    // Only the records sharing the boundary timestamp come back.
    assert!(!nothing_new.records.is_empty() && nothing_new.records.len() < 5);

    harness
        .admin(
            "touch",
            json!({"entity": "Candidate", "ids": [10005, 10042], "changes": {"status": "Placed"}}),
        )
        .await;
    let changed = harness.read("Candidate", &resume, 0).await.unwrap();
    let changed_ids = ids(&changed.records);
    assert!(changed_ids.contains(&"10005".to_owned()) && changed_ids.contains(&"10042".to_owned()));
    let boundary: Vec<&String> = changed_ids
        .iter()
        .filter(|id| *id != "10005" && *id != "10042")
        .collect();
    assert_eq!(
        boundary.len(),
        nothing_new.records.len(),
        "only boundary records besides"
    );
    for record in &changed.records {
        let payload: Value = serde_json::from_str(&record.payload_json).unwrap();
        assert!(payload["dateLastModified"].as_i64().unwrap() >= since);
    }
    let touched: Value = serde_json::from_str(
        &changed
            .records
            .iter()
            .find(|r| r.external_id == "10005")
            .unwrap()
            .payload_json,
    )
    .unwrap();
    assert_eq!(touched["status"], "Placed");
}

#[tokio::test]
async fn rate_limits_server_errors_and_expired_sessions_are_survived() {
    let harness = start(true).await;
    // Log in first so the faults hit entity requests mid-read.
    harness.read("Placement", "", 0).await.unwrap();
    harness
        .admin(
            "faults",
            json!({"rate_limit_burst": 3, "retry_after_seconds": 1, "server_error_burst": 2,
                   "expire_sessions": true}),
        )
        .await;
    let started = std::time::Instant::now();
    let read = harness.read("JobOrder", "", 15).await.unwrap();
    assert_eq!(read.waits, 3);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited as told"
    );
    assert_eq!(read.records.len(), harness.held("JobOrder").await.len());
    let stats: Value = harness
        .http
        .get(format!("{}/_sandbox/stats", harness.sandbox))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["rate_limited"], 3);
    assert_eq!(stats["server_errors"], 2);
    assert_eq!(
        stats["logins"], 2,
        "logged in again after the session expired"
    );
}

#[tokio::test]
async fn malformed_records_are_rejected_with_reasons_or_passed_on() {
    let harness = start(true).await;
    harness.admin("faults", json!({"malformed": true})).await;
    let read = harness.read("Candidate", "", 0).await.unwrap();
    assert_eq!(read.rejected.len(), 1);
    assert_eq!(read.rejected[0].reason, "record has no id");
    assert!(read.rejected[0].payload_json.contains("Without-Id"));
    // Wrongly typed fields are mapping's to judge: the record passes through.
    let odd = read
        .records
        .iter()
        .find(|r| r.external_id == "99001")
        .unwrap();
    assert!(odd.payload_json.contains("12345"));
    assert_eq!(
        read.records.len(),
        harness.held("Candidate").await.len() + 1
    );
}

#[tokio::test]
async fn rejected_credentials_and_bad_input_get_clear_errors() {
    let harness = start(true).await;
    let mut client = harness.client.clone();

    let check = client
        .check(CheckRequest {
            connection: Some(harness.connection("conn-1")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(check.ok, "{}", check.reason);

    let bad = client
        .check(CheckRequest {
            connection: Some(harness.connection("bad-password")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !bad.ok && bad.reason.contains("credentials"),
        "{}",
        bad.reason
    );

    let request = |connection: ConnectionRef, stream: &str, checkpoint: &str| ReadRequest {
        connection: Some(connection),
        stream: stream.to_owned(),
        checkpoint: checkpoint.to_owned(),
        page_size: 0,
        ..ReadRequest::default()
    };
    let mut stream = client
        .read(request(harness.connection("bad-password"), "Candidate", ""))
        .await
        .unwrap()
        .into_inner();
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIALS_REJECTED"));

    let mut stream = client
        .read(request(harness.connection("missing"), "Candidate", ""))
        .await
        .unwrap()
        .into_inner();
    let status = stream.message().await.unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIAL_NOT_FOUND"));

    for (stream, checkpoint, reason) in [
        ("Lead", "", "UNKNOWN_STREAM"),
        ("Candidate", "{not json", "INVALID_CHECKPOINT"),
    ] {
        let status = client
            .read(request(harness.connection("conn-1"), stream, checkpoint))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason_of(&status).as_deref(), Some(reason));
    }
    let settings = ConnectionRef {
        connection_id: "conn-1".to_owned(),
        settings_json: "{}".to_owned(),
    };
    let status = client
        .read(request(settings, "Candidate", ""))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("INVALID_SETTINGS"));
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let harness = start(false).await;
    let status = harness.read("Candidate", "", 0).await.err().unwrap();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason_of(&status).as_deref(), Some("TARGET_NOT_ALLOWED"));
    assert!(status.message().contains("loopback"));
    assert!(
        harness.credentials.callers.lock().unwrap().is_empty(),
        "no secret leased"
    );
}

#[tokio::test]
async fn registers_heartbeats_and_registers_again_when_forgotten() {
    let harness = start(true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let registrations = harness.registry.registrations.lock().unwrap().clone();
        let heartbeats = *harness.registry.heartbeats.lock().unwrap();
        if registrations.len() >= 2 && heartbeats >= 2 {
            let manifest = registrations[0].manifest.clone().unwrap();
            assert_eq!(manifest.name, "bullhorn");
            assert_eq!(manifest.credential_kind, "oauth2_client");
            assert_eq!(manifest.mapping_specs.len(), 4);
            assert_eq!(registrations[0].address, harness.connector_addr);
            assert_eq!(registrations[0].instance_id, registrations[1].instance_id);
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no re-registration");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
