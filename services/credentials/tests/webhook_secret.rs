//! Webhook signing secrets over a real tonic server on 127.0.0.1:0 (SQLite): stored beside the
//! access secret, sealed, leased only to the connection's connector, audited, revoked with the
//! connection.

#![allow(clippy::unwrap_used)]

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_credentials::{Credentials, serve};
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, LeaseAccessRequest, PutCredentialRequest, RevokeRequest, Secret, WebhookSecret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use secrecy::SecretString;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const MESH_KEY: &str = "webhook-secret-test-mesh-key-32-bytes!!";
const WEBHOOK_SECRET: &str = "whsec-PLAINTEXT-3c1d";
const API_KEY: &str = "api-key-PLAINTEXT-9e2f";

type Client = CredentialsServiceClient<InterceptedService<Channel, MeshCredentials>>;

fn key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

fn client(addr: &str, subject: &str, tenant: &str, connector: Option<&str>) -> Client {
    let caller = Caller {
        subject: subject.to_owned(),
        tenant: Some(tenant.to_owned()),
        connector: connector.map(str::to_owned),
    };
    CredentialsServiceClient::with_interceptor(
        lazy_channel(addr).unwrap(),
        MeshCredentials::new(key(), caller),
    )
}

fn put(kind: secret::Kind) -> PutCredentialRequest {
    PutCredentialRequest {
        connection_id: "gh-acme".into(),
        connector: "greenhouse".into(),
        secret: Some(Secret { kind: Some(kind) }),
    }
}

fn lease(secret_kind: &str) -> LeaseAccessRequest {
    LeaseAccessRequest {
        connection_id: "gh-acme".into(),
        run_id: String::new(),
        secret_kind: secret_kind.into(),
        ..LeaseAccessRequest::default()
    }
}

#[tokio::test]
async fn webhook_secrets_live_beside_the_access_secret_and_go_only_to_the_connector() {
    let dir = std::env::temp_dir().join(format!("pb-credentials-wh-{}", uuid::Uuid::new_v4()));
    let url = plugboard_runtime::storage::sqlite_url(&dir, "credentials");
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(
        Credentials::new(store.clone(), master),
        RequireCaller::new(key()),
        listener,
        std::future::pending(),
    ));

    let mut gateway = client(&addr, "gateway", "acme", None);
    let mut connector = client(&addr, "connector:greenhouse", "acme", Some("greenhouse"));
    gateway
        .put_credential(put(secret::Kind::ApiKey(ApiKey {
            key: API_KEY.into(),
        })))
        .await
        .unwrap();
    let version = gateway
        .put_credential(put(secret::Kind::WebhookSecret(WebhookSecret {
            secret: WEBHOOK_SECRET.into(),
        })))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 1, "the webhook secret has its own versions");

    // Both are there, each under its own kind.
    let access = connector
        .lease_access(lease(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        access.secret.unwrap().kind,
        Some(secret::Kind::ApiKey(ApiKey {
            key: API_KEY.into()
        }))
    );
    let webhook = connector
        .lease_access(lease("webhook_secret"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        webhook.secret.unwrap().kind,
        Some(secret::Kind::WebhookSecret(WebhookSecret {
            secret: WEBHOOK_SECRET.into()
        }))
    );

    // Another connector, another tenant and an unknown kind are refused.
    let mut other = client(&addr, "connector:bullhorn", "acme", Some("bullhorn"));
    let denied = other
        .lease_access(lease("webhook_secret"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut elsewhere = client(&addr, "connector:greenhouse", "globex", Some("greenhouse"));
    let missing = elsewhere
        .lease_access(lease("webhook_secret"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let unknown = connector.lease_access(lease("pgp_key")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    // A connector may not change it.
    let refused = connector
        .put_credential(put(secret::Kind::WebhookSecret(WebhookSecret {
            secret: "mine-now".into(),
        })))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Sealed at rest, audited under the real connection id, never with the value.
    let row = store.get("acme", "gh-acme#webhook").await.unwrap().unwrap();
    assert_eq!(row.kind, "webhook_secret");
    assert!(!row.sealed.contains(WEBHOOK_SECRET));
    let audit = store.audit_log("acme", "gh-acme").await.unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|entry| (entry.action.as_str(), entry.outcome.as_str()))
        .collect();
    for expected in [
        ("put_webhook_secret", "ok"),
        ("lease_webhook_secret", "ok"),
        ("lease_webhook_secret", "denied"),
        ("put_webhook_secret", "denied"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    assert!(format!("{audit:?}").find(WEBHOOK_SECRET).is_none());

    // Revoking the connection revokes both.
    gateway
        .revoke(RevokeRequest {
            connection_id: "gh-acme".into(),
        })
        .await
        .unwrap();
    for kind in ["", "webhook_secret"] {
        let gone = connector.lease_access(lease(kind)).await.unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{kind:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
