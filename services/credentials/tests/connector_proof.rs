//! A real `plugboard-credentials` process given the connectors' public keys serves a lease only
//! to a caller that proves, with the connector's own Ed25519 key, that it is the connection's
//! connector. Holding the mesh key (every service does) is not enough to claim a connector.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plugboard_credentials::crypto::MasterKey;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, DescribeCredentialRequest, LeaseAccessRequest, PutCredentialRequest, Secret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::connector_keys::{ConnectorSigningKey, PROOF_HEADER};
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::{ExposeSecret, SecretString};
use tonic::Code;

const MESH_KEY: &str = "connector-proof-test-mesh-key-of-32-bytes";
const API_KEY: &str = "proof-test-partner-api-key";

type Client = CredentialsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
>;

fn client(addr: &str, caller: Caller, proof: Option<&ConnectorSigningKey>) -> Client {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    CredentialsServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        MeshCredentials::new(key, caller).with_connector_key(proof.cloned()),
    )
}

fn caller(subject: &str, connector: Option<&str>) -> Caller {
    Caller {
        subject: subject.to_owned(),
        tenant: Some("acme".to_owned()),
        connector: connector.map(str::to_owned),
    }
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn credentials_command(dir: &std::path::Path, port: u16, public_keys: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard-credentials"));
    command
        .env_clear()
        .env("PLUGBOARD_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "PLUGBOARD_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("credentials.db").display()),
        )
        .env("PLUGBOARD_MESH_KEY", MESH_KEY)
        .env(
            "PLUGBOARD_MASTER_KEY",
            MasterKey::generate_base64().unwrap().expose_secret(),
        )
        .env("PLUGBOARD_CONNECTOR_PUBLIC_KEYS", public_keys);
    command
}

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pb-connector-proof-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn lease_request() -> LeaseAccessRequest {
    LeaseAccessRequest {
        connection_id: "bh-acme".into(),
        run_id: "run-1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn only_a_proven_connector_is_leased_its_connections_secret() {
    let dir = scratch_dir();
    let (bullhorn, _) = ConnectorSigningKey::generate();
    let (greenhouse, _) = ConnectorSigningKey::generate();
    let public_keys = format!(
        "bullhorn={},greenhouse={}",
        bullhorn.public_key(),
        greenhouse.public_key()
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("credentials.log")).unwrap();
    let _process = Process(
        credentials_command(&dir, port, &public_keys)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );

    let mut gateway = client(&addr, caller("gateway", None), None);
    let mut ready = false;
    for _ in 0..200 {
        let probe = gateway
            .describe_credential(DescribeCredentialRequest {
                connection_id: "probe".into(),
            })
            .await;
        if matches!(&probe, Err(status) if status.code() == Code::NotFound) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "credentials did not start");
    gateway
        .put_credential(PutCredentialRequest {
            connection_id: "bh-acme".into(),
            connector: "bullhorn".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::ApiKey(ApiKey {
                    key: API_KEY.into(),
                })),
            }),
        })
        .await
        .unwrap();

    // The connector with its own key is served.
    let leased = client(
        &addr,
        caller("connector:bullhorn", Some("bullhorn")),
        Some(&bullhorn),
    )
    .lease_access(lease_request())
    .await
    .unwrap()
    .into_inner();
    let served = leased.secret.and_then(|secret| secret.kind);
    assert!(
        matches!(served, Some(secret::Kind::ApiKey(ApiKey { ref key })) if key == API_KEY),
        "{served:?}"
    );

    // Any other mesh service only claiming to be bullhorn is not.
    let claimed = client(&addr, caller("connector:bullhorn", Some("bullhorn")), None)
        .lease_access(lease_request())
        .await
        .unwrap_err();
    assert_eq!(claimed.code(), Code::PermissionDenied, "{claimed:?}");

    // Nor is another connector proving itself but claiming bullhorn's name.
    let borrowed = client(
        &addr,
        caller("connector:bullhorn", Some("bullhorn")),
        Some(&greenhouse),
    )
    .lease_access(lease_request())
    .await
    .unwrap_err();
    assert_eq!(borrowed.code(), Code::PermissionDenied, "{borrowed:?}");

    // Nor a proof copied from a call onto a freshly minted token.
    let mut request = tonic::Request::new(lease_request());
    let proof = bullhorn.prove("some other token");
    request
        .metadata_mut()
        .insert(PROOF_HEADER, proof.parse().unwrap());
    let copied = client(&addr, caller("connector:bullhorn", Some("bullhorn")), None)
        .lease_access(request)
        .await
        .unwrap_err();
    assert_eq!(copied.code(), Code::PermissionDenied, "{copied:?}");

    // A greenhouse proof is good for greenhouse's own name only, which does not own the
    // connection.
    let wrong_connection = client(
        &addr,
        caller("connector:greenhouse", Some("greenhouse")),
        Some(&greenhouse),
    )
    .lease_access(lease_request())
    .await
    .unwrap_err();
    assert_eq!(wrong_connection.code(), Code::PermissionDenied);
}

#[test]
fn malformed_public_keys_stop_the_process_at_start_with_the_variable_named() {
    let dir = scratch_dir();
    let output = credentials_command(&dir, free_port(), "bullhorn=not-a-key")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PLUGBOARD_CONNECTOR_PUBLIC_KEYS") && stderr.contains("bullhorn"),
        "{stderr}"
    );
}
