//! Leasing a connection's secret from the credentials service, as `connector:<name>`.
//!
//! For OAuth2 clients the service manages (client credentials, or tokens from an authorization
//! code connect) the lease carries a live access token and no client secret: the connector
//! never talks to the token endpoint itself, so refresh ahead of expiry, single flight across
//! replicas and refresh-token rotation all stay in credentials. When the partner refuses a
//! leased token (401), the connector leases again naming that token's digest, and credentials
//! refreshes instead of serving it again.

use chrono::{DateTime, Utc};
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{LeaseAccessRequest, LeaseAccessResponse, secret};
use plugboard_proto::error::{ErrorKind, reason_of};
use plugboard_runtime::connector_keys::ConnectorSigningKey;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::Channel;

use crate::error::Error;

/// An access token leased from credentials. Debug output is redacted by `SecretString`.
#[derive(Debug, Clone)]
pub struct LeasedToken {
    token: SecretString,
    /// Epoch-anchored expiry, when the partner said.
    expires_at: Option<DateTime<Utc>>,
}

/// A leased credential, whatever its kind. Debug output is redacted by `SecretString`.
#[derive(Debug, Clone)]
pub struct Secret {
    pub kind: &'static str,
    fields: Vec<(&'static str, SecretString)>,
    access: Option<LeasedToken>,
    /// When the connector must lease again; `None` for fixed secrets.
    lease_expires_at: Option<DateTime<Utc>>,
}

impl Secret {
    fn of(kind: &'static str, fields: &[(&'static str, &str)]) -> Secret {
        Secret {
            kind,
            fields: fields
                .iter()
                .map(|(name, value)| (*name, SecretString::from((*value).to_owned())))
                .collect(),
            access: None,
            lease_expires_at: None,
        }
    }

    pub fn api_key(key: &str) -> Secret {
        Secret::of("api_key", &[("key", key)])
    }

    pub fn basic(username: &str, password: &str) -> Secret {
        Secret::of("basic", &[("username", username), ("password", password)])
    }

    pub fn oauth2_client(
        client_id: &str,
        client_secret: &str,
        token_url: &str,
        username: &str,
        password: &str,
    ) -> Secret {
        Secret::of(
            "oauth2_client",
            &[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("token_url", token_url),
                ("username", username),
                ("password", password),
            ],
        )
    }

    /// A mutual-TLS client certificate: the PEM chain (leaf first) and the leaf's key, plus the
    /// CA of the partner's server certificate when it is a private one (empty otherwise).
    pub fn client_certificate(chain_pem: &str, key_pem: &str, server_ca_pem: &str) -> Secret {
        Secret::of(
            "client_certificate",
            &[
                ("certificate_chain_pem", chain_pem),
                ("private_key_pem", key_pem),
                ("server_ca_pem", server_ca_pem),
            ],
        )
    }

    /// The same secret with a client certificate's fields, for an OAuth2 client that presents
    /// one to the partner (see [`Secret::client_certificate`] for the field names).
    fn with_client_certificate(
        mut self,
        certificate: &plugboard_proto::credentials::v1::ClientCertificate,
    ) -> Secret {
        for (name, value) in [
            ("certificate_chain_pem", &certificate.certificate_chain_pem),
            ("private_key_pem", &certificate.private_key_pem),
            ("server_ca_pem", &certificate.server_ca_pem),
        ] {
            self.fields.push((name, SecretString::from(value.clone())));
        }
        self
    }

    /// The same secret with a live access token, as credentials leases managed OAuth2 clients.
    pub fn with_access_token(mut self, token: &str, expires_at: Option<DateTime<Utc>>) -> Secret {
        self.access = Some(LeasedToken {
            token: SecretString::from(token.to_owned()),
            expires_at,
        });
        self
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.expose_secret())
    }

    /// The leased access token, when credentials manages the client's tokens.
    pub fn access_token(&self) -> Option<&str> {
        self.access
            .as_ref()
            .map(|access| access.token.expose_secret())
    }

    /// When the leased access token expires, if the partner said.
    pub fn access_token_expires_at(&self) -> Option<DateTime<Utc>> {
        self.access.as_ref().and_then(|access| access.expires_at)
    }

    /// When the lease ends and the connector must lease again.
    pub fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.lease_expires_at
    }

    /// The secret as the `secret` template scope. Never log the result.
    pub fn scope(&self) -> Value {
        let mut fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    Value::String(value.expose_secret().to_owned()),
                )
            })
            .collect();
        if let Some(token) = self.access_token() {
            fields.insert("access_token".to_owned(), Value::String(token.to_owned()));
        }
        Value::Object(fields)
    }
}

/// Hex SHA-256 of a token: how a refused access token is named to credentials.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What one lease is for.
#[derive(Debug, Clone, Copy)]
pub struct LeaseFor<'a> {
    pub tenant: &'a str,
    pub connection_id: &'a str,
    /// The sync run served, for the audit log; empty for checks and tooling.
    pub run_id: &'a str,
    /// The digest of an access token the partner just refused.
    pub refused_token: Option<&'a str>,
}

/// Leases secrets for one connector from credentials.
#[derive(Debug, Clone)]
pub struct Access {
    channel: Channel,
    key: MeshKey,
    connector: String,
    /// Proves to credentials that the lease request comes from this connector.
    signing_key: Option<ConnectorSigningKey>,
}

impl Access {
    pub fn new(channel: Channel, key: MeshKey, connector: &str) -> Access {
        Access {
            channel,
            key,
            connector: connector.to_owned(),
            signing_key: None,
        }
    }

    pub fn with_signing_key(mut self, key: Option<ConnectorSigningKey>) -> Access {
        self.signing_key = key;
        self
    }

    /// This connector acting for `tenant`, with its proof when it has a key.
    fn identity(&self, tenant: &str) -> MeshCredentials {
        MeshCredentials::new(
            self.key.clone(),
            Caller {
                subject: format!("connector:{}", self.connector),
                tenant: Some(tenant.to_owned()),
                connector: Some(self.connector.clone()),
            },
        )
        .with_connector_key(self.signing_key.clone())
    }

    pub async fn lease(&self, what: LeaseFor<'_>) -> Result<Secret, Error> {
        let identity = self.identity(what.tenant);
        let mut client = CredentialsServiceClient::with_interceptor(self.channel.clone(), identity);
        let request = LeaseAccessRequest {
            connection_id: what.connection_id.to_owned(),
            run_id: what.run_id.to_owned(),
            refused_access_token_sha256: what.refused_token.unwrap_or_default().to_owned(),
            secret_kind: String::new(),
        };
        let response = client
            .lease_access(request)
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => Error::CredentialMissing,
                // The partner refused the grant (credentials tried): the customer reconnects.
                _ if reason_of(&status).as_deref() == Some("CREDENTIALS_REJECTED") => {
                    Error::CredentialsRejected(status.message().to_owned())
                }
                code => Error::Lease {
                    kind: ErrorKind::from_code(code),
                    message: status.message().to_owned(),
                },
            })?
            .into_inner();
        secret_of(response)
    }

    /// The connection's webhook signing secret. Never log the result.
    pub async fn lease_webhook_secret(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<SecretString, Error> {
        let identity = self.identity(tenant);
        let mut client = CredentialsServiceClient::with_interceptor(self.channel.clone(), identity);
        let request = LeaseAccessRequest {
            connection_id: connection_id.to_owned(),
            run_id: String::new(),
            secret_kind: "webhook_secret".to_owned(),
            refused_access_token_sha256: String::new(),
        };
        let response = client
            .lease_access(request)
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => Error::WebhookSecretMissing,
                code => Error::Lease {
                    kind: ErrorKind::from_code(code),
                    message: status.message().to_owned(),
                },
            })?
            .into_inner();
        match response.secret.and_then(|secret| secret.kind) {
            Some(secret::Kind::WebhookSecret(webhook)) => Ok(SecretString::from(webhook.secret)),
            _ => Err(Error::WebhookSecretMissing),
        }
    }
}

fn secret_of(response: LeaseAccessResponse) -> Result<Secret, Error> {
    let mut secret = match response.secret.and_then(|secret| secret.kind) {
        Some(secret::Kind::ApiKey(key)) => Secret::api_key(&key.key),
        Some(secret::Kind::Basic(basic)) => Secret::basic(&basic.username, &basic.password),
        Some(secret::Kind::Oauth2Client(client)) => {
            let leased = Secret::oauth2_client(
                &client.client_id,
                &client.client_secret,
                &client.token_url,
                &client.username,
                &client.password,
            );
            // mTLS and OAuth2 together (ADP): the API wants the certificate with the token.
            match &client.client_certificate {
                Some(certificate) => leased.with_client_certificate(certificate),
                None => leased,
            }
        }
        Some(secret::Kind::ClientCertificate(certificate)) => Secret::client_certificate(
            &certificate.certificate_chain_pem,
            &certificate.private_key_pem,
            &certificate.server_ca_pem,
        ),
        // Asked for the access secret, credentials never answers with this one.
        Some(secret::Kind::WebhookSecret(_)) => {
            return Err(Error::WrongCredentialKind {
                found: "webhook_secret",
                needed: "an access secret",
            });
        }
        None => return Err(Error::CredentialMissing),
    };
    let time = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    };
    secret.lease_expires_at = time(&response.expires_at);
    if !response.access_token.is_empty() {
        secret = secret.with_access_token(
            &response.access_token,
            time(&response.access_token_expires_at),
        );
    }
    Ok(secret)
}
