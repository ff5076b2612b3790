//! Leasing a connection's secret from the credentials service.

use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::{LeaseAccessRequest, secret};
use plugboard_proto::error::ErrorKind;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::SecretString;
use tonic::Code;
use tonic::transport::Channel;

use crate::error::Error;

/// The connector's name: its registry id and the identity credentials releases secrets to.
pub const CONNECTOR: &str = "bullhorn";

/// Bullhorn's OAuth client and API user, as leased. Debug output is redacted by `SecretString`.
#[derive(Debug, Clone)]
pub struct OAuthSecret {
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
}

/// Calls credentials as `connector:bullhorn`, acting for the tenant of the incoming call.
#[derive(Debug, Clone)]
pub struct Access {
    channel: Channel,
    key: MeshKey,
}

impl Access {
    pub fn new(channel: Channel, key: MeshKey) -> Access {
        Access { channel, key }
    }

    pub async fn lease(&self, tenant: &str, connection_id: &str) -> Result<OAuthSecret, Error> {
        let identity = MeshCredentials::new(
            self.key.clone(),
            Caller {
                subject: format!("connector:{CONNECTOR}"),
                tenant: Some(tenant.to_owned()),
                connector: Some(CONNECTOR.to_owned()),
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
            Some(secret::Kind::Oauth2Client(client)) => Ok(OAuthSecret {
                client_id: client.client_id,
                client_secret: SecretString::from(client.client_secret),
                username: client.username,
                password: SecretString::from(client.password),
            }),
            Some(secret::Kind::ApiKey(_)) => Err(Error::WrongCredentialKind("api key")),
            Some(secret::Kind::Basic(_)) => Err(Error::WrongCredentialKind("basic login")),
            Some(secret::Kind::WebhookSecret(_)) => {
                Err(Error::WrongCredentialKind("webhook secret"))
            }
            None => Err(Error::CredentialMissing),
        }
    }
}
