//! Token calls over mutual TLS (ADP), at the token endpoint: with the stored certificate the
//! partner sandbox's client-credentials endpoint answers; presenting none is refused by its
//! TLS handshake, which the exchange reports as a refused grant (needs reconnect), not as an
//! outage to retry. The whole path through a connector is `connector-runtime/tests/mtls_oauth.rs`.

#![allow(clippy::unwrap_used)]

use plugboard_credentials::oauth::OAuthPolicy;
use plugboard_credentials::oauth::exchange::{FetchError, Grant, fetch};
use plugboard_proto::credentials::v1::{ClientCertificate, OAuth2Client, Secret, secret};
use plugboard_sandbox::mtls::{MtlsOAuthClient, MtlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

#[tokio::test]
async fn the_token_endpoint_needs_the_certificate_and_refusing_it_is_a_rejection() {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_certificate = client_params.signed_by(&client_key, &ca).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!(
        "https://{}/auth/oauth/v2/token",
        listener.local_addr().unwrap()
    );
    tokio::spawn(plugboard_sandbox::mtls::serve_with_oauth(
        listener,
        MtlsOptions {
            server_certificate_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_ca_pem: ca.pem(),
        },
        MtlsOAuthClient {
            client_id: "adp".into(),
            client_secret: "adp-secret".into(),
        },
        std::future::pending(),
    ));
    let policy = OAuthPolicy {
        allow_private_targets: true,
        ..OAuthPolicy::default()
    };
    let shared = reqwest::Client::new();
    let with_certificate = OAuth2Client {
        client_id: "adp".into(),
        client_secret: "adp-secret".into(),
        token_url,
        client_certificate: Some(ClientCertificate {
            certificate_chain_pem: client_certificate.pem(),
            private_key_pem: client_key.serialize_pem(),
            server_ca_pem: ca.pem(),
        }),
        ..OAuth2Client::default()
    };
    let stored = Secret {
        kind: Some(secret::Kind::Oauth2Client(with_certificate.clone())),
    };
    plugboard_credentials::validate::secret(Some(stored)).unwrap();

    let fetched = fetch(
        &shared,
        &policy,
        &with_certificate,
        Grant::ClientCredentials,
    )
    .await
    .unwrap();
    assert!(fetched.access_token.starts_with("adp-"));

    // The same client without the certificate, over a client that trusts the partner's CA.
    let trusting = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let without = OAuth2Client {
        client_certificate: None,
        ..with_certificate.clone()
    };
    let refused = fetch(&trusting, &policy, &without, Grant::ClientCredentials)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, FetchError::Rejected(reason) if reason.contains("certificate")),
        "{refused:?}"
    );

    // A certificate field that is not PEM is refused at put, naming the nested field.
    let broken = OAuth2Client {
        client_certificate: Some(ClientCertificate {
            certificate_chain_pem: "not pem".into(),
            ..ClientCertificate::default()
        }),
        ..with_certificate
    };
    let error = plugboard_credentials::validate::secret(Some(Secret {
        kind: Some(secret::Kind::Oauth2Client(broken)),
    }))
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("secret.oauth2_client.client_certificate.certificate_chain_pem"),
        "{error}"
    );
}
