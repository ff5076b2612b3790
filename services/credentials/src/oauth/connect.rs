//! The authorization code flow with PKCE and `state`: BeginOAuth stores the client and the PKCE
//! verifier under a fresh single-use state and returns the partner's authorize URL;
//! CompleteOAuth, called from the gateway's callback with the redirect's `state` and `code`,
//! exchanges the code and stores the client and the tokens in one transaction.
//!
//! The state is a bearer secret: only its SHA-256 is stored, and it only completes for the
//! tenant that began it.

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};
use plugboard_runtime::storage::{format_time, now_text};
use prost::Message;

use super::exchange::{self, FetchError, Grant};
use super::store::PendingRow;
use super::{PendingConnect, TokenSet, now_epoch, token_digest};
use crate::crypto::RowBinding;
use crate::error::Error;
use crate::service::{Actor, Credentials};
use crate::validate;

/// What BeginOAuth returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub authorize_url: String,
    pub state: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// What CompleteOAuth returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub connection_id: String,
    pub version: u64,
}

fn state_hash(state: &str) -> String {
    token_digest(state)
}

fn web_url(field: &'static str, value: &str) -> Result<(), Error> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field,
            reason: "must be an http or https url".to_owned(),
        })
    }
}

impl Credentials {
    /// Starts an authorization code connect for `connection_id`. With `reuse_stored_client`
    /// (a reconnect) the OAuth2 client already stored for the connection is used and `client`
    /// must be empty.
    #[allow(clippy::too_many_arguments)] // the request's fields, each distinct
    pub async fn begin_oauth(
        &self,
        actor: &Actor,
        connection_id: &str,
        connector: &str,
        client: Option<OAuth2Client>,
        authorize_url: &str,
        redirect_uri: &str,
        reuse_stored_client: bool,
    ) -> Result<Begun, Error> {
        validate::connection_id(connection_id)?;
        validate::name("connector", connector)?;
        let client = match (client, reuse_stored_client) {
            (None, true) => self.stored_client(actor, connection_id, connector).await?,
            (Some(client), false) => client,
            (Some(_), true) => {
                return Err(Error::InvalidArgument {
                    field: "client",
                    reason: "must be empty when reuse_stored_client is set".to_owned(),
                });
            }
            (None, false) => {
                return Err(Error::InvalidArgument {
                    field: "client",
                    reason: "is required".to_owned(),
                });
            }
        };
        if !client.username.is_empty() || !client.password.is_empty() {
            return Err(Error::InvalidArgument {
                field: "client.username",
                reason: "must be empty: the user logs in at the partner".to_owned(),
            });
        }
        let checked = validate::secret(Some(Secret {
            kind: Some(secret::Kind::Oauth2Client(client)),
        }))?;
        let Some(secret::Kind::Oauth2Client(client)) = checked.kind else {
            return Err(Error::InvalidArgument {
                field: "client",
                reason: "must be an oauth2 client".to_owned(),
            });
        };
        web_url("authorize_url", authorize_url)?;
        web_url("redirect_uri", redirect_uri)?;
        self.refuse_connector_writes(actor, connection_id, "begin_oauth")
            .await?;

        let auth_url =
            AuthUrl::new(authorize_url.to_owned()).map_err(|error| Error::InvalidArgument {
                field: "authorize_url",
                reason: error.to_string(),
            })?;
        let redirect =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|error| Error::InvalidArgument {
                field: "redirect_uri",
                reason: error.to_string(),
            })?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random().secret().clone();
        let (url, _) = BasicClient::new(ClientId::new(client.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_redirect_uri(redirect)
            .authorize_url(|| CsrfToken::new(state.clone()))
            .add_scopes(client.scopes.iter().map(|scope| Scope::new(scope.clone())))
            .set_pkce_challenge(challenge)
            .url();

        let hash = state_hash(&state);
        let pending = PendingConnect {
            client: Some(client),
            verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_owned(),
        };
        let bound = format!("connect#{hash}");
        let ttl = i64::try_from(self.broker.policy().connect_ttl.as_secs()).unwrap_or(600);
        let expires_at = now_epoch().saturating_add(ttl);
        let mut attempts = 0;
        loop {
            let (key_id, key) = self.keys.for_write(&actor.tenant).await?;
            let binding = RowBinding {
                tenant: &actor.tenant,
                connection_id: &bound,
                version: 0,
            };
            let sealed = key
                .seal(binding, &zeroize::Zeroizing::new(pending.encode_to_vec()))
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let row = PendingRow {
                state_hash: hash.clone(),
                tenant: actor.tenant.clone(),
                connection_id: connection_id.to_owned(),
                connector: connector.to_owned(),
                key_id,
                sealed,
                expires_at,
            };
            match self.store.insert_pending(&row, &now_text()).await {
                // Another replica rotated the tenant's data key: seal under the new one.
                Err(Error::StaleDataKey) if attempts < 2 => {
                    self.keys.forget_current(&actor.tenant);
                    attempts += 1;
                }
                outcome => break outcome?,
            }
        }
        self.store
            .record(self.audit(actor, connection_id, "begin_oauth", "ok", "", 0))
            .await?;
        tracing::info!(connector, "began an oauth connect");
        Ok(Begun {
            authorize_url: url.to_string(),
            state,
            expires_at: chrono::DateTime::from_timestamp(expires_at, 0)
                .map(format_time)
                .unwrap_or_default(),
        })
    }

    /// The OAuth2 client stored for a connection of the caller's tenant, for a reconnect.
    async fn stored_client(
        &self,
        actor: &Actor,
        connection_id: &str,
        connector: &str,
    ) -> Result<OAuth2Client, Error> {
        let row = match self.store.get(&actor.tenant, connection_id).await? {
            Some(row) if !row.revoked => row,
            _ => {
                return Err(Error::NotFound {
                    connection_id: connection_id.to_owned(),
                });
            }
        };
        if row.connector != connector {
            return Err(Error::InvalidArgument {
                field: "connector",
                reason: "must name the connector of the stored credential".to_owned(),
            });
        }
        let unreadable = || Error::SecretUnreadable {
            connection_id: connection_id.to_owned(),
        };
        let key = self
            .keys
            .for_read(&row.tenant, &row.key_id, connection_id)
            .await?;
        let binding = RowBinding {
            tenant: &row.tenant,
            connection_id: &row.connection_id,
            version: row.version,
        };
        let plaintext = key.open(binding, &row.sealed).map_err(|_| unreadable())?;
        match Secret::decode(plaintext.as_slice())
            .map_err(|_| unreadable())?
            .kind
        {
            Some(secret::Kind::Oauth2Client(client)) if client.username.is_empty() => Ok(client),
            _ => Err(Error::InvalidArgument {
                field: "reuse_stored_client",
                reason: "the stored credential is not an oauth2 client without a user login"
                    .to_owned(),
            }),
        }
    }

    /// Finishes a connect from the partner's redirect.
    pub async fn complete_oauth(
        &self,
        actor: &Actor,
        state: &str,
        code: &str,
        error: &str,
    ) -> Result<Completed, Error> {
        if actor.connector.is_some() {
            return Err(Error::ConnectorMayNotWrite);
        }
        if state.is_empty() || state.len() > 512 {
            return Err(Error::ConnectStateInvalid);
        }
        let Some(pending) = self
            .store
            .take_pending(&actor.tenant, &state_hash(state))
            .await?
        else {
            return Err(Error::ConnectStateInvalid);
        };
        let connection_id = pending.connection_id.as_str();
        let record = |outcome: &str| {
            let audit = self.audit(actor, connection_id, "complete_oauth", outcome, "", 0);
            async move { self.store.record(audit).await }
        };
        if pending.expires_at < now_epoch() {
            record("expired").await?;
            return Err(Error::ConnectStateInvalid);
        }
        if !error.is_empty() {
            record("denied").await?;
            // Only the OAuth error code, which is a short token from a fixed vocabulary.
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(Error::ConnectDenied { error });
        }
        if code.is_empty() {
            return Err(Error::InvalidArgument {
                field: "code",
                reason: "must not be empty".to_owned(),
            });
        }
        let key = self
            .keys
            .for_read(&pending.tenant, &pending.key_id, connection_id)
            .await?;
        let bound = format!("connect#{}", pending.state_hash);
        let binding = RowBinding {
            tenant: &pending.tenant,
            connection_id: &bound,
            version: 0,
        };
        let unreadable = || Error::SecretUnreadable {
            connection_id: connection_id.to_owned(),
        };
        let plaintext = key
            .open(binding, &pending.sealed)
            .map_err(|_| unreadable())?;
        let connect = PendingConnect::decode(plaintext.as_slice()).map_err(|_| unreadable())?;
        let client = connect.client.ok_or_else(unreadable)?;

        // A code is single use: the exchange is not retried.
        let grant = Grant::Code {
            code,
            verifier: &connect.verifier,
            redirect_uri: &connect.redirect_uri,
        };
        let fetched =
            match exchange::fetch(self.broker.http(), self.broker.policy(), &client, grant).await {
                Ok(fetched) => fetched,
                Err(FetchError::Rejected(reason) | FetchError::Config(reason)) => {
                    record("rejected").await?;
                    return Err(Error::CredentialsRejected {
                        connection_id: connection_id.to_owned(),
                        reason,
                    });
                }
                Err(FetchError::Transient(reason)) => {
                    record("unavailable").await?;
                    return Err(Error::TokenEndpointUnavailable {
                        connection_id: connection_id.to_owned(),
                        reason,
                    });
                }
            };
        let lifetime = fetched
            .expires_in
            .unwrap_or(self.broker.policy().default_lifetime);
        let expires_at =
            now_epoch().saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let tokens = TokenSet {
            access_token: fetched.access_token,
            token_type: fetched.token_type,
            refresh_token: fetched.refresh_token.unwrap_or_default(),
        };
        let secret = Secret {
            kind: Some(secret::Kind::Oauth2Client(client)),
        };
        let version = self
            .put_with_tokens(
                actor,
                connection_id,
                &pending.connector,
                Some(secret),
                Some((tokens, expires_at)),
            )
            .await?;
        record("ok").await?;
        tracing::info!(version, "completed an oauth connect");
        Ok(Completed {
            connection_id: connection_id.to_owned(),
            version,
        })
    }
}
