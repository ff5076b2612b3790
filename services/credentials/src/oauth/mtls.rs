//! Token calls over mutual TLS: for an OAuth2 client stored with a client certificate (ADP),
//! the token endpoint is called by an HTTP client that presents it.

use std::time::Duration;

use plugboard_proto::credentials::v1::ClientCertificate;
use zeroize::Zeroizing;

use super::exchange::FetchError;

/// An HTTP client for token calls that presents `certificate`, with the same policy as the
/// broker's shared one (no redirects, `timeout`). Built per refresh, which is rare; the PEM
/// text copied for reqwest is cleared when it is dropped.
pub fn client(
    certificate: &ClientCertificate,
    timeout: Duration,
) -> Result<reqwest::Client, FetchError> {
    let identity_pem = Zeroizing::new(format!(
        "{}\n{}",
        certificate.certificate_chain_pem, certificate.private_key_pem
    ));
    // reqwest's message names what failed to parse, never key material; still, keep it out.
    let identity = reqwest::Identity::from_pem(identity_pem.as_bytes()).map_err(|_| {
        FetchError::Config("the client certificate or its key does not load".to_owned())
    })?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .use_rustls_tls()
        .identity(identity);
    if !certificate.server_ca_pem.trim().is_empty() {
        let roots = reqwest::Certificate::from_pem_bundle(certificate.server_ca_pem.as_bytes())
            .map_err(|_| FetchError::Config("the partner's CA does not load".to_owned()))?;
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder
        .build()
        .map_err(|_| FetchError::Config("cannot build a TLS client for the certificate".to_owned()))
}

/// The TLS alerts a server sends when it refuses the client's identity (RFC 8446 section 6.2),
/// as rustls names them.
const CLIENT_IDENTITY_ALERTS: [&str; 8] = [
    "CertificateRequired",
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "UnknownCA",
    "AccessDenied",
];

/// Whether a failed call's error chain shows the server refusing our TLS client identity (a
/// missing, unknown or expired client certificate): no retry helps, the stored credential must
/// change. rustls reports it as "received fatal alert: <name>".
pub fn refused_client_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if let Some(alert) = text.strip_prefix("received fatal alert: ")
            && CLIENT_IDENTITY_ALERTS.contains(&alert.trim())
        {
            return true;
        }
        current = error.source();
    }
    false
}
