//! mTLS and OAuth2 together (ADP), through the real path: an OAuth2 client stored in
//! credentials (a real server on 127.0.0.1:0) with a client certificate; credentials fetches the
//! token from the partner sandbox's token endpoint over mutual TLS, leases the token and the
//! certificate (never the client secret) to the connector, and the connector presents both to
//! the partner's API. A certificate the partner does not accept fails the lease as
//! CREDENTIALS_REJECTED (needs reconnect), with no retry storm. Certificates are generated here
//! with rcgen; none are committed.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use plugboard_connector_runtime::access::Access;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::oauth::OAuthPolicy;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::connector::v1::ConnectionRef;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{
    ClientCertificate, LeaseAccessRequest, OAuth2Client, PutCredentialRequest, Secret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey, RequireCaller};
use plugboard_sandbox::mtls::{MtlsOAuthClient, MtlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tonic::Code;

const MESH_KEY: &str = "connector-runtime-mtls-oauth-test-mesh-key";
const CLIENT_ID: &str = "adp-client";
const CLIENT_SECRET: &str = "adp-client-secret-canary";

/// A CA with a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
    client_pem: String,
    client_key_pem: String,
}

fn pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} client"));
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

const MANIFEST: &str = "manifest_version: 1\nname: adp-oauth\ndisplay_name: ADP-like payroll\n\
    category: payroll\nversion: '1'\nbase_url: \"{{ settings.base_url }}\"\nsettings:\n  \
    base_url: {type: url}\nauth: {type: oauth2_client_credentials}\nstreams:\n  workers: \
    {entity: candidate, path: /payroll/v1/workers, records: /workers, primary_key: associateOID}\n";

struct World {
    partner: String,
    credentials: String,
    key: MeshKey,
    pki: Pki,
}

impl World {
    async fn start() -> World {
        let pki = pki("adp");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let partner = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(plugboard_sandbox::mtls::serve_with_oauth(
            listener,
            MtlsOptions {
                server_certificate_pem: pki.server_pem.clone(),
                server_key_pem: pki.server_key_pem.clone(),
                client_ca_pem: pki.ca_pem.clone(),
            },
            MtlsOAuthClient {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
            },
            std::future::pending(),
        ));
        let dir = std::env::temp_dir().join(format!("pb-mtls-oauth-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        let store = CredentialStore::open(&url, "credentials").await.unwrap();
        let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let credentials = listener.local_addr().unwrap().to_string();
        let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
        let service = Credentials::new(store, master)
            .with_oauth(
                Coordinator::local(),
                OAuthPolicy {
                    // The sandbox listens on loopback.
                    allow_private_targets: true,
                    ..OAuthPolicy::default()
                },
            )
            .unwrap();
        tokio::spawn(plugboard_credentials::serve(
            service,
            RequireCaller::new(key.clone()),
            listener,
            std::future::pending(),
        ));
        World {
            partner,
            credentials,
            key,
            pki,
        }
    }

    fn client(
        &self,
        connector: Option<&str>,
    ) -> CredentialsServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
    > {
        let caller = Caller {
            subject: connector.map_or("gateway".to_owned(), |name| format!("connector:{name}")),
            tenant: Some("acme".into()),
            connector: connector.map(str::to_owned),
        };
        CredentialsServiceClient::with_interceptor(
            lazy_channel(&self.credentials).unwrap(),
            MeshCredentials::new(self.key.clone(), caller),
        )
    }

    /// Stores the ADP client for `connection_id`, presenting `chain` and `key`.
    async fn put(&self, connection_id: &str, chain: &str, key: &str) {
        let client = OAuth2Client {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            token_url: format!("{}/auth/oauth/v2/token", self.partner),
            client_certificate: Some(ClientCertificate {
                certificate_chain_pem: chain.into(),
                private_key_pem: key.into(),
                server_ca_pem: self.pki.ca_pem.clone(),
            }),
            ..OAuth2Client::default()
        };
        self.client(None)
            .put_credential(PutCredentialRequest {
                connection_id: connection_id.into(),
                connector: "adp-oauth".into(),
                secret: Some(Secret {
                    kind: Some(secret::Kind::Oauth2Client(client)),
                }),
            })
            .await
            .unwrap();
    }

    async fn stats(&self) -> Value {
        let ca = reqwest::Certificate::from_pem(self.pki.ca_pem.as_bytes()).unwrap();
        let identity = format!("{}\n{}", self.pki.client_pem, self.pki.client_key_pem);
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
            .build()
            .unwrap();
        let url = format!("{}/_sandbox/mtls/stats", self.partner);
        http.get(url).send().await.unwrap().json().await.unwrap()
    }
}

fn params(url: &str, connection_id: &str) -> ReadParams {
    ReadParams {
        tenant: "acme".into(),
        connection: ConnectionRef {
            connection_id: connection_id.into(),
            settings_json: json!({ "base_url": url }).to_string(),
        },
        stream: "workers".into(),
        checkpoint: String::new(),
        page_size: 0,
        run_id: "run-1".into(),
    }
}

#[tokio::test]
async fn the_token_is_fetched_over_mtls_and_the_api_gets_token_and_certificate() {
    let world = World::start().await;
    world
        .put("adp-1", &world.pki.client_pem, &world.pki.client_key_pem)
        .await;

    // The lease carries the token and the certificate, never the client secret.
    let lease = world
        .client(Some("adp-oauth"))
        .lease_access(LeaseAccessRequest {
            connection_id: "adp-1".into(),
            run_id: "run-1".into(),
            ..LeaseAccessRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        lease.access_token.starts_with("adp-"),
        "{}",
        lease.access_token
    );
    let Some(secret::Kind::Oauth2Client(leased)) = lease.secret.and_then(|s| s.kind) else {
        panic!("an oauth2 client lease");
    };
    assert!(leased.client_secret.is_empty());
    let certificate = leased.client_certificate.unwrap();
    assert_eq!(certificate.certificate_chain_pem, world.pki.client_pem);

    // The connector presents both: the API wants the certificate and the token.
    let manifest = load_str("adp.yaml", MANIFEST).unwrap();
    let access = Access::new(
        lazy_channel(&world.credentials).unwrap(),
        world.key.clone(),
        "adp-oauth",
    );
    let connector = Connector::new(manifest, SecretSource::Credentials(access), true).unwrap();
    let pages = connector
        .read_all(params(&world.partner, "adp-1"))
        .await
        .unwrap();
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.external_id.as_str())
        .collect();
    assert_eq!(ids, ["G3A1", "G3A2", "G3A3"]);
    // One token call (the lease's token was cached for the read), one API call.
    let stats = world.stats().await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["requests"], 1, "{stats}");
}

#[tokio::test]
async fn a_certificate_the_partner_does_not_accept_fails_the_lease_as_rejected() {
    let world = World::start().await;
    let stranger = pki("stranger");
    world
        .put("adp-2", &stranger.client_pem, &stranger.client_key_pem)
        .await;
    let mut connector = world.client(Some("adp-oauth"));
    let lease = || LeaseAccessRequest {
        connection_id: "adp-2".into(),
        run_id: "run-1".into(),
        ..LeaseAccessRequest::default()
    };
    let refused = connector.lease_access(lease()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        plugboard_proto::error::reason_of(&refused).as_deref(),
        Some("CREDENTIALS_REJECTED")
    );
    assert!(refused.message().contains("certificate"), "{refused:?}");
    assert!(!refused.message().contains(CLIENT_SECRET));
    // Needs reconnect: later leases fail fast without calling the partner again.
    let again = connector.lease_access(lease()).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(world.stats().await["token_requests"], 0);
}
