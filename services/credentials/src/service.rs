//! The domain logic: plain async functions over the store and the master key, testable without
//! gRPC. The caller's identity arrives as an [`Actor`] built from the verified service token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plugboard_proto::credentials::v1::{Secret, secret};
use plugboard_proto::error::{ErrorKind, ServiceError};
use plugboard_runtime::identity::Caller;
use plugboard_runtime::storage::{format_time, now_text};
use prost::Message;

use crate::crypto::{Keyring, RowBinding};
use crate::error::Error;
use crate::keys::{DataKeys, Prepared};
use crate::oauth::store::{OK, TokenRow};
use crate::oauth::{self, AccessToken, OAuthPolicy, TokenBroker, TokenSet};
use crate::store::{
    AuditEntry, CredentialStore, NewCredential, SEALED_BY_MASTER, StoredCredential,
};
use crate::validate;
use crate::wipe::Wiped;
use plugboard_runtime::coordination::Coordinator;
use zeroize::Zeroizing;

/// How long leased material may be used before the connector must lease again.
pub const LEASE_TTL: Duration = Duration::from_secs(300);

/// Writers racing on one connection retry this often before giving up with a retryable error.
const PUT_ATTEMPTS: usize = 3;

/// Who is calling, from the verified token. The tenant never comes from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub tenant: String,
    pub connector: Option<String>,
}

impl Actor {
    pub fn new(caller: &Caller, tenant: String) -> Actor {
        Actor {
            subject: caller.subject.clone(),
            tenant,
            connector: caller.connector.clone(),
        }
    }
}

/// A decrypted secret. Its Debug output names the kind only; what is left of it when it is
/// dropped is wiped ([`crate::wipe`]).
#[derive(Clone, PartialEq)]
pub struct SecretValue(Secret);

impl Drop for SecretValue {
    fn drop(&mut self) {
        crate::wipe::wipe(&mut self.0);
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({}, [redacted])", kind_name(&self.0))
    }
}

impl SecretValue {
    pub(crate) fn new(secret: Secret) -> SecretValue {
        SecretValue(secret)
    }

    pub fn kind(&self) -> &'static str {
        kind_name(&self.0)
    }

    /// The secret itself, to hand to the one caller allowed to have it.
    pub fn expose(mut self) -> Secret {
        std::mem::take(&mut self.0)
    }
}

/// What a lease hands out. Debug is redacted through [`SecretValue`] and [`AccessToken`].
#[derive(Debug, Clone)]
pub struct Lease {
    /// For a managed OAuth2 client, the client without its secret.
    pub secret: SecretValue,
    pub version: u64,
    /// RFC 3339.
    pub expires_at: String,
    /// A live access token, for managed OAuth2 clients.
    pub access: Option<AccessToken>,
}

/// What is stored for a connection, without any secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub connection_id: String,
    pub connector: String,
    pub kind: String,
    pub version: u64,
    pub updated_at: String,
}

/// Decoded secrets kept per connection, at most this many; the cache starts over past it.
const MAX_DECODED: usize = 10_000;

/// (tenant, connection id) -> (credential version, decoded secret). A lease takes the row from
/// the store's row cache (which every write, on any replica, keeps current: see
/// [`crate::row_cache`]) and only skips the AES-GCM open and the protobuf decode when the version
/// is the one already decoded. The process holds every tenant's data key in memory anyway, so
/// this adds no new exposure.
type Decoded = Arc<RwLock<HashMap<(String, String), (u64, Wiped)>>>;

/// The credentials service.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub(crate) store: CredentialStore,
    pub(crate) keys: DataKeys,
    pub(crate) broker: TokenBroker,
    decoded: Decoded,
}

impl Credentials {
    /// `keyring`: the current master key and previous ones (a lone [`crate::crypto::MasterKey`]
    /// converts). Token refreshes are coordinated in-process with the default policy; see
    /// [`Credentials::with_oauth`].
    pub fn new(store: CredentialStore, keyring: impl Into<Keyring>) -> Credentials {
        let keys = DataKeys::new(store.clone(), keyring.into());
        let broker = TokenBroker::new(
            store.clone(),
            keys.clone(),
            Coordinator::local(),
            OAuthPolicy::default(),
        )
        .expect("a reqwest client with rustls and default settings builds");
        Credentials {
            store,
            keys,
            broker,
            decoded: Decoded::default(),
        }
    }

    /// Reads the master keys from `source` again when told to rotate (see [`crate::keys`]).
    pub fn with_master_key_source(self, source: crate::config::MasterKeySource) -> Credentials {
        self.keys.set_source(source);
        self
    }

    /// Coordinates token refreshes through `coordinator` (Redis across replicas) under `policy`.
    pub fn with_oauth(
        mut self,
        coordinator: Coordinator,
        policy: OAuthPolicy,
    ) -> Result<Credentials, Error> {
        self.broker = TokenBroker::new(self.store.clone(), self.keys.clone(), coordinator, policy)?;
        Ok(self)
    }

    pub fn store(&self) -> &CredentialStore {
        &self.store
    }

    /// Run before serving: fails closed when stored keys need a master key that was not
    /// configured, then re-wraps data keys under the current master key and migrates secrets
    /// sealed before envelope encryption. See [`crate::keys`].
    pub async fn prepare(&self) -> Result<Prepared, Error> {
        self.keys.prepare().await
    }

    /// Stores or replaces a connection's secret; returns the new version. Tokens the service
    /// held for the connection are dropped.
    pub async fn put(
        &self,
        actor: &Actor,
        connection_id: &str,
        connector: &str,
        secret: Option<Secret>,
    ) -> Result<u64, Error> {
        if crate::webhook_secret::is_webhook_secret(secret.as_ref()) {
            return self
                .put_webhook_secret(actor, connection_id, connector, secret)
                .await;
        }
        self.put_with_tokens(actor, connection_id, connector, secret, None)
            .await
    }

    /// [`Credentials::put`], storing `tokens` (with the access token's expiry, epoch seconds)
    /// in the same transaction: what a completed authorization code connect writes.
    pub(crate) async fn put_with_tokens(
        &self,
        actor: &Actor,
        connection_id: &str,
        connector: &str,
        secret: Option<Secret>,
        tokens: Option<(TokenSet, i64)>,
    ) -> Result<u64, Error> {
        validate::connection_id(connection_id)?;
        validate::name("connector", connector)?;
        let secret = validate::secret(secret)?;
        self.refuse_connector_writes(actor, connection_id, "put")
            .await?;

        let plaintext = Zeroizing::new(secret.encode_to_vec());
        let kind = kind_name(&secret);
        for _ in 0..PUT_ATTEMPTS {
            let (data_key_id, data_key) = self.keys.for_write(&actor.tenant).await?;
            let current = self.store.get(&actor.tenant, connection_id).await?;
            let expected_version = current.map_or(0, |row| row.version);
            let version = expected_version + 1;
            let binding = RowBinding {
                tenant: &actor.tenant,
                connection_id,
                version,
            };
            let sealed = data_key
                .seal(binding, &plaintext)
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let at = now_text();
            let credential = NewCredential {
                tenant: &actor.tenant,
                connection_id,
                connector,
                kind,
                version,
                key_id: &data_key_id,
                sealed: &sealed,
                at: &at,
            };
            let audit = self.audit(actor, connection_id, "put", "ok", "", version);
            let token_row = match &tokens {
                Some((set, expires_at)) => {
                    let (key_id, sealed) = self
                        .broker
                        .seal(&actor.tenant, connection_id, 1, set)
                        .await?;
                    Some(TokenRow {
                        tenant: actor.tenant.clone(),
                        connection_id: connection_id.to_owned(),
                        credential_version: version,
                        generation: 1,
                        key_id,
                        sealed,
                        access_expires_at: *expires_at,
                        fence: 0,
                        state: OK.to_owned(),
                        failures: 0,
                        cool_until: 0,
                        last_error: String::new(),
                    })
                }
                None => None,
            };
            match self
                .store
                .put(&credential, expected_version, &audit, token_row.as_ref())
                .await
            {
                Ok(true) => {
                    tracing::info!(connector, kind, version, "stored a credential");
                    return Ok(version);
                }
                Ok(false) => {}
                // Another replica rotated the tenant's data key: seal under the new one.
                Err(Error::StaleDataKey) => self.keys.forget_current(&actor.tenant),
                Err(error) => return Err(error),
            }
        }
        Err(Error::ConcurrentUpdate {
            connection_id: connection_id.to_owned(),
        })
    }

    /// The secret of a connection, for that connection's own connector only. `refused` is the
    /// hex SHA-256 of an access token the partner refused, for managed OAuth2 clients: see
    /// [`TokenBroker::access`].
    pub async fn lease(
        &self,
        actor: &Actor,
        connection_id: &str,
        run_id: &str,
        refused: Option<&str>,
    ) -> Result<Lease, Error> {
        validate::connection_id(connection_id)?;
        validate::run_id(run_id)?;
        if let Some(refused) = refused {
            validate::token_digest("refused_access_token_sha256", refused)?;
        }
        let record = |outcome: &'static str, version: u64| {
            let audit = self.audit(actor, connection_id, "lease", outcome, run_id, version);
            async move { self.store.record(audit).await }
        };

        let row = match self.store.lease_row(&actor.tenant, connection_id).await? {
            Some(row) if !row.revoked => row,
            _ => {
                record("not_found", 0).await?;
                return Err(Error::NotFound {
                    connection_id: connection_id.to_owned(),
                });
            }
        };
        let allowed = row.tenant == actor.tenant
            && actor.connector.as_deref() == Some(row.connector.as_str());
        if !allowed {
            tracing::info!(
                subject = %actor.subject,
                caller_connector = actor.connector.as_deref().unwrap_or(""),
                connector = %row.connector,
                "denied a lease to a caller that is not the connection's connector"
            );
            record("denied", row.version).await?;
            return Err(Error::LeaseDenied {
                connection_id: connection_id.to_owned(),
            });
        }

        let secret = match self.decoded_secret(&row) {
            Some(secret) => secret,
            None => match self.open_current(&row).await {
                Ok(secret) => secret,
                Err(error) => {
                    record("failed", row.version).await?;
                    return Err(error);
                }
            },
        };

        let mut access = None;
        let mut secret = secret;
        if let Some(client) = oauth::managed_client(&secret) {
            match self
                .broker
                .access(actor, &row, client, run_id, refused)
                .await
            {
                Ok(token) => access = Some(token),
                Err(error) => {
                    let outcome = match &error {
                        Error::CredentialsRejected { .. } => "rejected",
                        error if error.kind() == ErrorKind::Unavailable => "unavailable",
                        _ => "failed",
                    };
                    record(outcome, row.version).await?;
                    return Err(error);
                }
            }
            // The connector gets the access token, never the client secret.
            if let Some(secret::Kind::Oauth2Client(client)) = &mut secret.kind {
                client.client_secret.clear();
            }
        }

        record("ok", row.version).await?;
        let mut expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(LEASE_TTL).expect("five minutes fit a chrono duration");
        if let Some(token) = &access
            && let Some(token_expiry) = chrono::DateTime::from_timestamp(token.expires_at, 0)
        {
            expires_at = expires_at.min(token_expiry);
        }
        tracing::debug!(run_id, version = row.version, "leased a credential");
        Ok(Lease {
            secret: SecretValue(secret),
            version: row.version,
            expires_at: format_time(expires_at),
            access,
        })
    }

    /// The secret of `row` when this version was decoded before.
    fn decoded_secret(&self, row: &StoredCredential) -> Option<Secret> {
        let decoded = self
            .decoded
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        decoded
            .get(&(row.tenant.clone(), row.connection_id.clone()))
            .filter(|(version, _)| *version == row.version)
            .map(|(_, secret)| secret.secret().clone())
    }

    fn remember_decoded(&self, row: &StoredCredential, secret: &Secret) {
        let mut decoded = self
            .decoded
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if decoded.len() >= MAX_DECODED {
            decoded.clear();
        }
        decoded.insert(
            (row.tenant.clone(), row.connection_id.clone()),
            (row.version, Wiped::new(secret.clone())),
        );
    }

    /// Opens `row` and remembers the decoded secret. When it does not open because a data key
    /// rotation re-sealed it and deleted the old key in between, the row is read again.
    async fn open_current(&self, row: &StoredCredential) -> Result<Secret, Error> {
        let error = match self.open_row(row).await {
            Ok(secret) => {
                self.remember_decoded(row, &secret);
                return Ok(secret);
            }
            Err(error) => error,
        };
        let again = self.store.get(&row.tenant, &row.connection_id).await?;
        match again {
            Some(again)
                if !again.revoked && again.version == row.version && again.key_id != row.key_id =>
            {
                let secret = self.open_row(&again).await?;
                self.remember_decoded(&again, &secret);
                Ok(secret)
            }
            _ => Err(error),
        }
    }

    /// Opens and decodes a stored row. Fails closed on a key that is not configured, a damaged
    /// row, or authenticated text that is not a `Secret` (a bug in put).
    async fn open_row(&self, row: &StoredCredential) -> Result<Secret, Error> {
        let connection_id = row.connection_id.as_str();
        let binding = RowBinding {
            tenant: &row.tenant,
            connection_id,
            version: row.version,
        };
        let opened = if row.sealed_by == SEALED_BY_MASTER {
            // Written before envelope encryption and not migrated yet (prepare was not run).
            // The key id tells a misconfigured key apart from a damaged row.
            let keyring = self.keys.keyring();
            let Some(master) = keyring.find(&row.key_id) else {
                tracing::warn!(stored_key_id = %row.key_id, "secret sealed under a master key that is not configured");
                return Err(Error::MasterKeyMismatch {
                    connection_id: connection_id.to_owned(),
                });
            };
            master.open(binding, &row.sealed)
        } else {
            let key = self
                .keys
                .for_read(&row.tenant, &row.key_id, connection_id)
                .await?;
            key.open(binding, &row.sealed)
        };
        match opened.map(|plaintext| Secret::decode(plaintext.as_slice())) {
            Ok(Ok(secret)) => Ok(secret),
            Ok(Err(_)) | Err(_) => {
                tracing::error!(version = row.version, "stored secret does not open");
                Err(Error::SecretUnreadable {
                    connection_id: connection_id.to_owned(),
                })
            }
        }
    }

    /// Deletes a connection's secret; later leases get NOT_FOUND.
    pub async fn revoke(&self, actor: &Actor, connection_id: &str) -> Result<(), Error> {
        validate::connection_id(connection_id)?;
        self.refuse_connector_writes(actor, connection_id, "revoke")
            .await?;
        self.revoke_webhook_secret(actor, connection_id).await?;
        let audit = self.audit(actor, connection_id, "revoke", "ok", "", 0);
        match self
            .store
            .revoke(&actor.tenant, connection_id, &audit)
            .await?
        {
            Some(version) => {
                tracing::info!(version, "revoked a credential");
                Ok(())
            }
            None => {
                let audit = AuditEntry {
                    outcome: "not_found".to_owned(),
                    ..audit
                };
                self.store.record(audit).await?;
                Err(Error::NotFound {
                    connection_id: connection_id.to_owned(),
                })
            }
        }
    }

    /// What is stored for a connection, without any secret value.
    pub async fn describe(&self, actor: &Actor, connection_id: &str) -> Result<Description, Error> {
        validate::connection_id(connection_id)?;
        match self.store.get(&actor.tenant, connection_id).await? {
            Some(row) if !row.revoked => Ok(Description {
                connection_id: row.connection_id,
                connector: row.connector,
                kind: row.kind,
                version: row.version,
                updated_at: row.updated_at,
            }),
            _ => Err(Error::NotFound {
                connection_id: connection_id.to_owned(),
            }),
        }
    }

    /// Connectors read secrets; only platform services (gateway, dev seeding) change them, so a
    /// compromised connector cannot redirect another connection to itself.
    pub(crate) async fn refuse_connector_writes(
        &self,
        actor: &Actor,
        connection_id: &str,
        action: &'static str,
    ) -> Result<(), Error> {
        if actor.connector.is_none() {
            return Ok(());
        }
        tracing::info!(subject = %actor.subject, action, "denied a credential change by a connector");
        self.store
            .record(self.audit(actor, connection_id, action, "denied", "", 0))
            .await?;
        Err(Error::ConnectorMayNotWrite)
    }

    pub(crate) fn audit(
        &self,
        actor: &Actor,
        connection_id: &str,
        action: &str,
        outcome: &str,
        run_id: &str,
        version: u64,
    ) -> AuditEntry {
        audit_entry(actor, connection_id, action, outcome, run_id, version)
    }
}

/// An audit row for `actor`'s `action` on a connection, stamped now.
pub(crate) fn audit_entry(
    actor: &Actor,
    connection_id: &str,
    action: &str,
    outcome: &str,
    run_id: &str,
    version: u64,
) -> AuditEntry {
    AuditEntry {
        at: now_text(),
        tenant: actor.tenant.clone(),
        connection_id: connection_id.to_owned(),
        subject: actor.subject.clone(),
        action: action.to_owned(),
        outcome: outcome.to_owned(),
        run_id: run_id.to_owned(),
        version,
    }
}

/// The `kind` names of DescribeCredentialResponse.
fn kind_name(secret: &Secret) -> &'static str {
    match &secret.kind {
        Some(secret::Kind::ApiKey(_)) => "api_key",
        Some(secret::Kind::Basic(_)) => "basic",
        Some(secret::Kind::Oauth2Client(_)) => "oauth2_client",
        Some(secret::Kind::ClientCertificate(_)) => "client_certificate",
        Some(secret::Kind::WebhookSecret(_)) => crate::webhook_secret::SECRET_KIND,
        None => "none",
    }
}
