//! Webhook signing secrets: the HMAC key a partner signs its webhook deliveries with.
//!
//! A connection has one access secret (API key, basic login, OAuth2 client) and, beside it, at
//! most one webhook secret. The webhook secret lives in the credentials table under the slot
//! id `<connection_id>#webhook`, which no caller can name (`#` is refused in connection ids),
//! so it gets everything the access secret gets: sealing under the tenant's data key bound to
//! its own row, optimistic versions, revocation, migration and audit. Putting one never
//! replaces the other. It is leased (`secret_kind: webhook_secret`) only to the connection's
//! own connector, which verifies deliveries with it; audit rows name the real connection and
//! an action ending in `_webhook_secret`.

use plugboard_proto::credentials::v1::{Secret, secret};
use plugboard_runtime::storage::{format_time, now_text};
use prost::Message;

use crate::crypto::RowBinding;
use crate::error::Error;
use crate::service::{Actor, Credentials, LEASE_TTL, Lease, SecretValue, audit_entry};
use crate::store::NewCredential;
use crate::validate;

/// The `secret_kind` of a LeaseAccessRequest that asks for the webhook secret.
pub const SECRET_KIND: &str = "webhook_secret";

/// Longest webhook secret accepted; partners use 16 to 64 characters.
const MAX_SECRET_LEN: usize = 1024;

/// The row id of a connection's webhook secret.
fn slot(connection_id: &str) -> String {
    format!("{connection_id}#webhook")
}

/// Whether `secret` is a webhook secret, which [`Credentials::put`] stores beside the access
/// secret instead of replacing it.
pub fn is_webhook_secret(secret: Option<&Secret>) -> bool {
    matches!(
        secret.and_then(|secret| secret.kind.as_ref()),
        Some(secret::Kind::WebhookSecret(_))
    )
}

impl Credentials {
    /// Stores or replaces the connection's webhook secret; returns its new version.
    pub async fn put_webhook_secret(
        &self,
        actor: &Actor,
        connection_id: &str,
        connector: &str,
        secret: Option<Secret>,
    ) -> Result<u64, Error> {
        validate::connection_id(connection_id)?;
        validate::name("connector", connector)?;
        let secret = validate::secret(secret)?;
        let length = match &secret.kind {
            Some(secret::Kind::WebhookSecret(webhook)) => webhook.secret.len(),
            _ => 0,
        };
        if length > MAX_SECRET_LEN {
            return Err(Error::InvalidArgument {
                field: "secret.webhook_secret.secret",
                reason: format!("must be at most {MAX_SECRET_LEN} bytes"),
            });
        }
        self.refuse_connector_writes(actor, connection_id, "put_webhook_secret")
            .await?;
        let slot = slot(connection_id);
        let plaintext = zeroize::Zeroizing::new(secret.encode_to_vec());
        // Concurrent writers of one slot: the loser re-reads the version and tries once more.
        for _ in 0..3 {
            let (data_key_id, data_key) = self.keys.for_write(&actor.tenant).await?;
            let expected_version = self
                .store
                .get(&actor.tenant, &slot)
                .await?
                .map_or(0, |row| row.version);
            let version = expected_version + 1;
            let binding = RowBinding {
                tenant: &actor.tenant,
                connection_id: &slot,
                version,
            };
            let sealed = data_key
                .seal(binding, &plaintext)
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let at = now_text();
            let credential = NewCredential {
                tenant: &actor.tenant,
                connection_id: &slot,
                connector,
                kind: SECRET_KIND,
                version,
                key_id: &data_key_id,
                sealed: &sealed,
                at: &at,
            };
            let audit = audit_entry(
                actor,
                connection_id,
                "put_webhook_secret",
                "ok",
                "",
                version,
            );
            match self
                .store
                .put(&credential, expected_version, &audit, None)
                .await
            {
                Ok(true) => {
                    tracing::info!(connector, version, "stored a webhook secret");
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

    /// The connection's webhook secret, for that connection's own connector only.
    pub async fn lease_webhook_secret(
        &self,
        actor: &Actor,
        connection_id: &str,
    ) -> Result<Lease, Error> {
        validate::connection_id(connection_id)?;
        let record = |outcome: &'static str, version: u64| {
            let audit = audit_entry(
                actor,
                connection_id,
                "lease_webhook_secret",
                outcome,
                "",
                version,
            );
            async move { self.store.record(audit).await }
        };
        let slot = slot(connection_id);
        let row = match self.store.get(&actor.tenant, &slot).await? {
            Some(row) if !row.revoked => row,
            _ => {
                record("not_found", 0).await?;
                return Err(Error::NotFound {
                    connection_id: connection_id.to_owned(),
                });
            }
        };
        if actor.connector.as_deref() != Some(row.connector.as_str()) {
            tracing::info!(
                subject = %actor.subject,
                connector = %row.connector,
                "denied a webhook secret to a caller that is not the connection's connector"
            );
            record("denied", row.version).await?;
            return Err(Error::LeaseDenied {
                connection_id: connection_id.to_owned(),
            });
        }
        let key = match self
            .keys
            .for_read(&row.tenant, &row.key_id, connection_id)
            .await
        {
            Ok(key) => key,
            Err(error) => {
                record("failed", row.version).await?;
                return Err(error);
            }
        };
        let binding = RowBinding {
            tenant: &row.tenant,
            connection_id: &slot,
            version: row.version,
        };
        let opened = key
            .open(binding, &row.sealed)
            .ok()
            .and_then(|plaintext| Secret::decode(plaintext.as_slice()).ok());
        let Some(secret) = opened else {
            tracing::error!(version = row.version, "stored webhook secret does not open");
            record("failed", row.version).await?;
            return Err(Error::SecretUnreadable {
                connection_id: connection_id.to_owned(),
            });
        };
        record("ok", row.version).await?;
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(LEASE_TTL).expect("five minutes fit a chrono duration");
        Ok(Lease {
            secret: SecretValue::new(secret),
            version: row.version,
            expires_at: format_time(expires_at),
            access: None,
        })
    }

    /// Revokes the connection's webhook secret, if it has one; part of revoking the connection.
    pub(crate) async fn revoke_webhook_secret(
        &self,
        actor: &Actor,
        connection_id: &str,
    ) -> Result<(), Error> {
        let audit = audit_entry(actor, connection_id, "revoke_webhook_secret", "ok", "", 0);
        if let Some(version) = self
            .store
            .revoke(&actor.tenant, &slot(connection_id), &audit)
            .await?
        {
            tracing::info!(version, "revoked a webhook secret");
        }
        Ok(())
    }
}
