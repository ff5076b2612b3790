//! Input checks. Each failure names the offending field.

use plugboard_proto::credentials::v1::{ClientCertificate, Secret, secret};

use crate::error::Error;

/// Longest connection id, connector name or run id accepted.
pub const MAX_NAME_LEN: usize = 128;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// A name made of `[A-Za-z0-9._-]`, 1 to 128 characters.
pub fn name(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    let sane = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !sane {
        return Err(invalid(
            field,
            "may only contain A-Z, a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(())
}

pub fn connection_id(value: &str) -> Result<(), Error> {
    name("connection_id", value)
}

/// A run id is optional (a manual check has none) but bounded, since it lands in the audit log.
pub fn run_id(value: &str) -> Result<(), Error> {
    if value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(invalid(
            "run_id",
            format!("must be at most {MAX_NAME_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// A hex SHA-256 digest: 64 lowercase hex digits.
pub fn token_digest(field: &'static str, value: &str) -> Result<(), Error> {
    let hex = value.len() == 64
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hex {
        return Err(invalid(
            field,
            "must be 64 lowercase hex digits (a SHA-256)",
        ));
    }
    Ok(())
}

/// A secret of a known kind whose required fields are set.
pub fn secret(secret: Option<Secret>) -> Result<Secret, Error> {
    let secret = secret.ok_or_else(|| invalid("secret", "is required"))?;
    let required = |field: &'static str, value: &str| {
        if value.is_empty() {
            Err(invalid(field, "must not be empty"))
        } else {
            Ok(())
        }
    };
    match &secret.kind {
        None => {
            return Err(invalid(
                "secret.kind",
                "must be api_key, basic, oauth2_client, client_certificate or webhook_secret",
            ));
        }
        Some(secret::Kind::ClientCertificate(certificate)) => {
            client_certificate(certificate, CERTIFICATE_FIELDS)?;
        }
        Some(secret::Kind::ApiKey(api_key)) => required("secret.api_key.key", &api_key.key)?,
        Some(secret::Kind::Basic(basic)) => {
            required("secret.basic.username", &basic.username)?;
            required("secret.basic.password", &basic.password)?;
        }
        Some(secret::Kind::WebhookSecret(webhook)) => {
            required("secret.webhook_secret.secret", &webhook.secret)?;
        }
        Some(secret::Kind::Oauth2Client(client)) => {
            required("secret.oauth2_client.client_id", &client.client_id)?;
            required("secret.oauth2_client.client_secret", &client.client_secret)?;
            required("secret.oauth2_client.token_url", &client.token_url)?;
            let web_url =
                client.token_url.starts_with("https://") || client.token_url.starts_with("http://");
            if !web_url {
                return Err(invalid(
                    "secret.oauth2_client.token_url",
                    "must be an http or https url",
                ));
            }
            // Extra fields may not stand in for the ones the grant itself sends.
            const RESERVED: [&str; 6] = [
                "grant_type",
                "client_id",
                "client_secret",
                "scope",
                "refresh_token",
                "code",
            ];
            if let Some(name) = client
                .token_parameters
                .keys()
                .find(|name| name.is_empty() || RESERVED.contains(&name.as_str()))
            {
                return Err(invalid(
                    "secret.oauth2_client.token_parameters",
                    format!("{name:?} is not a parameter a client may add"),
                ));
            }
            if let Some(certificate) = &client.client_certificate {
                client_certificate(certificate, OAUTH2_CERTIFICATE_FIELDS)?;
            }
            // A user login comes as a pair: half of one cannot authorize.
            if client.username.is_empty() != client.password.is_empty() {
                let field = if client.username.is_empty() {
                    "secret.oauth2_client.username"
                } else {
                    "secret.oauth2_client.password"
                };
                return Err(invalid(field, "must be set together with its pair"));
            }
        }
    }
    Ok(secret)
}

/// The field names of a client certificate's chain, key and server CA.
type CertificateFields = [&'static str; 3];
const CERTIFICATE_FIELDS: CertificateFields = [
    "secret.client_certificate.certificate_chain_pem",
    "secret.client_certificate.private_key_pem",
    "secret.client_certificate.server_ca_pem",
];
const OAUTH2_CERTIFICATE_FIELDS: CertificateFields = [
    "secret.oauth2_client.client_certificate.certificate_chain_pem",
    "secret.oauth2_client.client_certificate.private_key_pem",
    "secret.oauth2_client.client_certificate.server_ca_pem",
];

/// A PEM chain and key, and a server CA when one is given.
fn client_certificate(
    certificate: &ClientCertificate,
    [chain, key, server_ca]: CertificateFields,
) -> Result<(), Error> {
    pem(chain, &certificate.certificate_chain_pem, &["CERTIFICATE"])?;
    pem(
        key,
        &certificate.private_key_pem,
        &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
    )?;
    if !certificate.server_ca_pem.trim().is_empty() {
        pem(server_ca, &certificate.server_ca_pem, &["CERTIFICATE"])?;
    }
    Ok(())
}

/// PEM text holding at least one block labelled with one of `labels`. The connector parses it
/// for real when it builds its TLS client; this catches a pasted wrong file early.
fn pem(field: &'static str, value: &str, labels: &[&str]) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let has_block = labels.iter().any(|label| {
        value.contains(&format!("-----BEGIN {label}-----"))
            && value.contains(&format!("-----END {label}-----"))
    });
    if !has_block {
        return Err(invalid(
            field,
            format!("must be PEM text with a {} block", labels.join(" or ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use plugboard_proto::credentials::v1::{ApiKey, Basic, OAuth2Client};

    use super::*;

    fn field_of(error: Error) -> &'static str {
        match error {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn names_are_bounded_and_sane() {
        assert!(connection_id("bullhorn-acme_1.prod").is_ok());
        for bad in ["", "has space", "slash/inside", "ünicode", &"x".repeat(129)] {
            assert_eq!(
                field_of(connection_id(bad).unwrap_err()),
                "connection_id",
                "{bad:?}"
            );
        }
        assert!(connection_id(&"x".repeat(128)).is_ok());
        assert_eq!(field_of(name("connector", "").unwrap_err()), "connector");
    }

    #[test]
    fn secrets_need_their_required_fields() {
        let of = |kind| Some(Secret { kind: Some(kind) });
        assert_eq!(field_of(secret(None).unwrap_err()), "secret");
        assert_eq!(
            field_of(secret(Some(Secret { kind: None })).unwrap_err()),
            "secret.kind"
        );
        let empty_key = of(secret::Kind::ApiKey(ApiKey { key: String::new() }));
        assert_eq!(
            field_of(secret(empty_key).unwrap_err()),
            "secret.api_key.key"
        );
        let no_password = of(secret::Kind::Basic(Basic {
            username: "u".into(),
            password: String::new(),
        }));
        assert_eq!(
            field_of(secret(no_password).unwrap_err()),
            "secret.basic.password"
        );

        let client = OAuth2Client {
            client_id: "id".into(),
            client_secret: "s".into(),
            token_url: "https://auth.example/token".into(),
            scopes: vec![],
            username: String::new(),
            password: String::new(),
            token_parameters: Default::default(),
            client_secret_in_body: false,
            client_certificate: None,
        };
        assert!(secret(of(secret::Kind::Oauth2Client(client.clone()))).is_ok());
        let bad_url = OAuth2Client {
            token_url: "ftp://x".into(),
            ..client.clone()
        };
        let error = secret(of(secret::Kind::Oauth2Client(bad_url))).unwrap_err();
        assert_eq!(field_of(error), "secret.oauth2_client.token_url");
        let half_login = OAuth2Client {
            username: "api-user".into(),
            ..client.clone()
        };
        let error = secret(of(secret::Kind::Oauth2Client(half_login))).unwrap_err();
        assert_eq!(field_of(error), "secret.oauth2_client.password");
        // Beeline's audience is an extra token parameter; the grant's own fields are not.
        let audience = OAuth2Client {
            token_parameters: [(
                "audience".to_owned(),
                "client-api.us.beeline.com".to_owned(),
            )]
            .into(),
            ..client.clone()
        };
        assert!(secret(of(secret::Kind::Oauth2Client(audience))).is_ok());
        let smuggled = OAuth2Client {
            token_parameters: [("grant_type".to_owned(), "password".to_owned())].into(),
            ..client
        };
        let error = secret(of(secret::Kind::Oauth2Client(smuggled))).unwrap_err();
        assert_eq!(field_of(error), "secret.oauth2_client.token_parameters");
    }
}
