//! The `mtls` auth scheme through the real path: a client certificate stored in credentials
//! (a real server on 127.0.0.1:0), leased by the connector as `connector:<name>`, and presented
//! to a partner sandbox whose TLS handshake requires a certificate from its CA. Certificates are
//! generated here with rcgen; none are committed.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use plugboard_connector_runtime::access::{Access, Secret as FixedSecret};
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::connector::v1::ConnectionRef;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{ClientCertificate, PutCredentialRequest, Secret, secret};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::mtls::MtlsOptions;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use secrecy::SecretString;
use serde_json::json;

const MESH_KEY: &str = "connector-runtime-mtls-test-mesh-key-32+";

/// A CA and what it issued: the server's certificate for 127.0.0.1 and a client certificate.
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
        .push(DnType::CommonName, format!("{name} plugboard client"));
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

const MANIFEST: &str = "manifest_version: 1\nname: adp-like\ndisplay_name: ADP-like payroll\n\
    category: payroll\nversion: '1'\nbase_url: \"{{ settings.base_url }}\"\nsettings:\n  \
    base_url: {type: url}\nauth: {type: mtls, certificate: \"{{ secret.certificate_chain_pem }}\", \
    private_key: \"{{ secret.private_key_pem }}\"}\nstreams:\n  workers: {entity: candidate, \
    path: /payroll/v1/workers, records: /workers, primary_key: associateOID}\n";

async fn partner(pki: &Pki) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let options = MtlsOptions {
        server_certificate_pem: pki.server_pem.clone(),
        server_key_pem: pki.server_key_pem.clone(),
        client_ca_pem: pki.ca_pem.clone(),
    };
    tokio::spawn(plugboard_sandbox::mtls::serve(
        listener,
        options,
        std::future::pending(),
    ));
    url
}

fn params(url: &str) -> ReadParams {
    ReadParams {
        tenant: "acme".into(),
        connection: ConnectionRef {
            connection_id: "adp-1".into(),
            settings_json: json!({ "base_url": url }).to_string(),
        },
        stream: "workers".into(),
        checkpoint: String::new(),
        page_size: 0,
        run_id: "run-1".into(),
    }
}

#[tokio::test]
async fn a_client_certificate_leased_from_credentials_passes_the_partners_handshake() {
    let pki = pki("partner");
    let url = partner(&pki).await;

    let dir = std::env::temp_dir().join(format!("pb-mtls-{}", uuid::Uuid::new_v4()));
    let store = CredentialStore::open(
        &format!("sqlite://{}/credentials.db?mode=rwc", dir.display()),
        "credentials",
    )
    .await
    .unwrap();
    let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let credentials = listener.local_addr().unwrap().to_string();
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    tokio::spawn(plugboard_credentials::serve(
        Credentials::new(store.clone(), master),
        plugboard_runtime::identity::RequireCaller::new(key.clone()),
        listener,
        std::future::pending(),
    ));
    let gateway = MeshCredentials::new(
        key.clone(),
        Caller {
            subject: "gateway".into(),
            tenant: Some("acme".into()),
            connector: None,
        },
    );
    CredentialsServiceClient::with_interceptor(lazy_channel(&credentials).unwrap(), gateway)
        .put_credential(PutCredentialRequest {
            connection_id: "adp-1".into(),
            connector: "adp-like".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::ClientCertificate(ClientCertificate {
                    certificate_chain_pem: pki.client_pem.clone(),
                    private_key_pem: pki.client_key_pem.clone(),
                    server_ca_pem: pki.ca_pem.clone(),
                })),
            }),
        })
        .await
        .unwrap();

    let manifest = load_str("adp.yaml", MANIFEST).unwrap();
    let access = Access::new(lazy_channel(&credentials).unwrap(), key, "adp-like");
    let connector = Connector::new(manifest, SecretSource::Credentials(access), true).unwrap();
    let pages = connector.read_all(params(&url)).await.unwrap();
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.external_id.as_str())
        .collect();
    assert_eq!(ids, ["G3A1", "G3A2", "G3A3"]);

    // Stored encrypted: the key's PEM body is not in the database.
    let body = pki.client_key_pem.lines().nth(1).unwrap();
    let row = store.get("acme", "adp-1").await.unwrap().unwrap();
    assert!(!row.sealed.contains(body) && row.kind == "client_certificate");
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_none_is_refused_by_the_handshake() {
    let pki = pki("partner");
    let url = partner(&pki).await;
    let stranger = pki_with_foreign_client(&pki);
    let manifest = load_str("adp.yaml", MANIFEST).unwrap();
    let connector = Connector::new(manifest, SecretSource::Fixed(stranger), true).unwrap();
    let error = connector.read_all(params(&url)).await.unwrap_err();
    assert!(
        matches!(
            error,
            plugboard_connector_runtime::Error::PartnerUnavailable(_)
        ),
        "{error:?}"
    );

    // Trusting the partner's CA but presenting no certificate gets no answer either.
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let plain = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("{url}/payroll/v1/workers"))
            .send()
            .await
            .is_err()
    );
}

/// A client certificate of another CA, trusting the partner's server.
fn pki_with_foreign_client(partner: &Pki) -> FixedSecret {
    let other = pki("stranger");
    FixedSecret::client_certificate(&other.client_pem, &other.client_key_pem, &partner.ca_pem)
}
