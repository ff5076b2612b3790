//! Leasing a connection's secret from the credentials service, as `connector:<name>`.

use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{LeaseAccessRequest, secret};
use plugboard_proto::error::ErrorKind;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tonic::Code;
use tonic::transport::Channel;

use crate::error::Error;

/// A leased credential, whatever its kind. Debug output is redacted by `SecretString`.
#[derive(Debug, Clone)]
pub struct Secret {
    pub kind: &'static str,
    fields: Vec<(&'static str, SecretString)>,
}

impl Secret {
    pub fn api_key(key: &str) -> Secret {
        Secret {
            kind: "api_key",
            fields: vec![("key", SecretString::from(key.to_owned()))],
        }
    }

    pub fn basic(username: &str, password: &str) -> Secret {
        Secret {
            kind: "basic",
            fields: vec![
                ("username", SecretString::from(username.to_owned())),
                ("password", SecretString::from(password.to_owned())),
            ],
        }
    }

    pub fn oauth2_client(
        client_id: &str,
        client_secret: &str,
        token_url: &str,
        username: &str,
        password: &str,
    ) -> Secret {
        Secret {
            kind: "oauth2_client",
            fields: vec![
                ("client_id", SecretString::from(client_id.to_owned())),
                (
                    "client_secret",
                    SecretString::from(client_secret.to_owned()),
                ),
                ("token_url", SecretString::from(token_url.to_owned())),
                ("username", SecretString::from(username.to_owned())),
                ("password", SecretString::from(password.to_owned())),
            ],
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.expose_secret())
    }

    /// The secret as the `secret` template scope. Never log the result.
    pub fn scope(&self) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    Value::String(value.expose_secret().to_owned()),
                )
            })
            .collect();
        Value::Object(fields)
    }
}

/// Leases secrets for one connector from credentials.
#[derive(Debug, Clone)]
pub struct Access {
    channel: Channel,
    key: MeshKey,
    connector: String,
}

impl Access {
    pub fn new(channel: Channel, key: MeshKey, connector: &str) -> Access {
        Access {
            channel,
            key,
            connector: connector.to_owned(),
        }
    }

    pub async fn lease(&self, tenant: &str, connection_id: &str) -> Result<Secret, Error> {
        let identity = MeshCredentials::new(
            self.key.clone(),
            Caller {
                subject: format!("connector:{}", self.connector),
                tenant: Some(tenant.to_owned()),
                connector: Some(self.connector.clone()),
            },
        );
        let mut client = CredentialsServiceClient::with_interceptor(self.channel.clone(), identity);
        let request = LeaseAccessRequest {
            connection_id: connection_id.to_owned(),
            // TODO(#6): carry the sync run id once the connector contract passes it along.
            run_id: String::new(),
            secret_kind: String::new(),
        };
        let response = client
            .lease_access(request)
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => Error::CredentialMissing,
                code => Error::Lease {
                    kind: ErrorKind::from_code(code),
                    message: status.message().to_owned(),
                },
            })?
            .into_inner();
        match response.secret.and_then(|secret| secret.kind) {
            Some(secret::Kind::ApiKey(key)) => Ok(Secret::api_key(&key.key)),
            Some(secret::Kind::Basic(basic)) => Ok(Secret::basic(&basic.username, &basic.password)),
            Some(secret::Kind::Oauth2Client(client)) => Ok(Secret::oauth2_client(
                &client.client_id,
                &client.client_secret,
                &client.token_url,
                &client.username,
                &client.password,
            )),
            // Asked for the access secret, credentials never answers with this one.
            Some(secret::Kind::WebhookSecret(_)) => Err(Error::WrongCredentialKind {
                found: "webhook_secret",
                needed: "an access secret",
            }),
            None => Err(Error::CredentialMissing),
        }
    }

    /// The connection's webhook signing secret. Never log the result.
    pub async fn lease_webhook_secret(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<SecretString, Error> {
        let identity = MeshCredentials::new(
            self.key.clone(),
            Caller {
                subject: format!("connector:{}", self.connector),
                tenant: Some(tenant.to_owned()),
                connector: Some(self.connector.clone()),
            },
        );
        let mut client = CredentialsServiceClient::with_interceptor(self.channel.clone(), identity);
        let request = LeaseAccessRequest {
            connection_id: connection_id.to_owned(),
            run_id: String::new(),
            secret_kind: "webhook_secret".to_owned(),
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
