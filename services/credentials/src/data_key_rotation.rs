//! Per-tenant data key rotation (`CredentialsAdminService.RotateDataKey`).
//!
//! A fresh data key becomes the tenant's current one and the old one is kept as a retired key
//! (one transaction, [`CredentialStore::switch_data_key`]). From then on every write seals under
//! the new key (writers prove it, see [`crate::data_key_store`]), and the rotation re-seals,
//! batch by batch, every secret, token and pending connect still under a retired key: the same
//! plaintext and row binding, a new ciphertext, written only if the row is unchanged. Leases
//! are served throughout: a row under either key opens, because the retired key stays until
//! nothing is sealed under it, and is deleted only by a statement that checks exactly that.
//! A row that does not open stops the rotation with the old key kept.
//!
//! [`CredentialStore::switch_data_key`]: crate::store::CredentialStore::switch_data_key

use plugboard_runtime::storage::now_text;

use crate::crypto::{DataKey, RowBinding};
use crate::error::Error;
use crate::keys::{DataKeys, key_audit};
use crate::oauth::token_binding_id;
use crate::store::{AuditEntry, StoredDataKey};

/// Batches in a row that re-seal nothing (every row changed under us) before giving up; the
/// retired key is then kept and a later rotation finishes the move.
const STALLED_BATCHES: usize = 3;

/// What a data key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataKeyRotation {
    /// The tenant's data key from now on.
    pub data_key_id: String,
    /// The key it replaced.
    pub previous_data_key_id: String,
    /// Secrets, tokens and pending connects re-sealed under the new key.
    pub resealed: usize,
    /// Retired keys deleted because nothing is sealed under them any more.
    pub retired_deleted: usize,
    /// Retired keys kept because something still is (see [`STALLED_BATCHES`]).
    pub retired_kept: usize,
}

impl DataKeys {
    /// Replaces `tenant`'s data key and re-seals everything of the tenant under the new one,
    /// `batch` rows at a time; `subject` is named in the audit rows.
    pub async fn rotate_data_key(
        &self,
        subject: &str,
        tenant: &str,
        batch: usize,
    ) -> Result<DataKeyRotation, Error> {
        let previous = self
            .store()
            .data_key(tenant)
            .await?
            .ok_or_else(|| Error::NoDataKey {
                tenant: tenant.to_owned(),
            })?;
        // Fail closed before any change: the old key must open.
        self.unwrap_stored(&previous)?;
        let (next_id, next_key) = self.switch(subject, &previous).await?;

        let mut rotation = DataKeyRotation {
            data_key_id: next_id.clone(),
            previous_data_key_id: previous.id.clone(),
            ..DataKeyRotation::default()
        };
        // Every retired key of the tenant: the one just replaced, and any an earlier rotation
        // could not finish with.
        for retired_id in self.store().retired_key_ids(tenant).await? {
            let retired = self.for_read(tenant, &retired_id, "").await?;
            let moved = Move {
                keys: self,
                subject,
                tenant,
                from: (&retired_id, &retired),
                to: (&next_id, &next_key),
                batch: i64::try_from(batch).unwrap_or(i64::MAX),
            };
            rotation.resealed += moved.credentials().await?;
            rotation.resealed += moved.tokens().await?;
            rotation.resealed += moved.pending().await?;
            let audit = key_audit(subject, tenant, "", "retire_data_key");
            if self
                .store()
                .delete_retired_key(tenant, &retired_id, &audit)
                .await?
            {
                self.forget(tenant, &retired_id);
                rotation.retired_deleted += 1;
            } else {
                tracing::warn!(tenant, "a retired data key still seals rows; it is kept");
                rotation.retired_kept += 1;
            }
        }
        tracing::info!(
            tenant,
            resealed = rotation.resealed,
            retired_deleted = rotation.retired_deleted,
            retired_kept = rotation.retired_kept,
            subject,
            "rotated a tenant data key"
        );
        Ok(rotation)
    }

    /// Makes a fresh key the tenant's current one, wrapped under the current master key.
    async fn switch(
        &self,
        subject: &str,
        previous: &StoredDataKey,
    ) -> Result<(String, DataKey), Error> {
        let key = DataKey::generate().map_err(|error| Error::Encrypt(error.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let keyring = self.keyring();
        let master = keyring.current();
        let next = StoredDataKey {
            tenant: previous.tenant.clone(),
            id: id.clone(),
            master_key_id: master.key_id().to_owned(),
            wrapped: master
                .wrap(&previous.tenant, &id, &key)
                .map_err(|error| Error::Encrypt(error.to_string()))?,
        };
        let audit = AuditEntry {
            at: now_text(),
            ..key_audit(subject, &previous.tenant, "", "rotate_data_key")
        };
        if !self
            .store()
            .switch_data_key(previous, &next, &audit)
            .await?
        {
            // Another rotation of the same tenant switched first.
            return Err(Error::StaleDataKey);
        }
        self.forget_current(&previous.tenant);
        Ok((id, key))
    }
}

/// Re-sealing one tenant's rows from a retired key onto the current one.
struct Move<'a> {
    keys: &'a DataKeys,
    subject: &'a str,
    tenant: &'a str,
    from: (&'a str, &'a DataKey),
    to: (&'a str, &'a DataKey),
    batch: i64,
}

impl Move<'_> {
    fn reseal(&self, binding: RowBinding<'_>, sealed: &str) -> Result<String, Error> {
        let plaintext = self
            .from
            .1
            .open(binding, sealed)
            .map_err(|_| Error::SecretUnreadable {
                connection_id: binding.connection_id.to_owned(),
            })?;
        self.to
            .1
            .seal(binding, &plaintext)
            .map_err(|error| Error::Encrypt(error.to_string()))
    }

    async fn credentials(&self) -> Result<usize, Error> {
        let store = self.keys.store();
        let (mut moved, mut stalled) = (0, 0);
        loop {
            let rows = store
                .credentials_sealed_with(self.tenant, self.from.0, self.batch)
                .await?;
            if rows.is_empty() || stalled == STALLED_BATCHES {
                return Ok(moved);
            }
            let before = moved;
            for row in &rows {
                let binding = RowBinding {
                    tenant: &row.tenant,
                    connection_id: &row.connection_id,
                    version: row.version,
                };
                let sealed = self.reseal(binding, &row.sealed)?;
                // Audit rows name the connection, not the webhook secret's slot.
                let connection = row.connection_id.trim_end_matches("#webhook");
                let audit = AuditEntry {
                    version: row.version,
                    ..key_audit(self.subject, self.tenant, connection, "reseal")
                };
                if store
                    .reseal_credential(row, self.to.0, &sealed, &audit)
                    .await?
                {
                    moved += 1;
                }
            }
            stalled = if moved == before { stalled + 1 } else { 0 };
            tokio::task::yield_now().await;
        }
    }

    async fn tokens(&self) -> Result<usize, Error> {
        let store = self.keys.store();
        let (mut moved, mut stalled) = (0, 0);
        loop {
            let rows = store
                .tokens_sealed_with(self.tenant, self.from.0, self.batch)
                .await?;
            if rows.is_empty() || stalled == STALLED_BATCHES {
                return Ok(moved);
            }
            let before = moved;
            for row in &rows {
                let bound = token_binding_id(&row.connection_id);
                let binding = RowBinding {
                    tenant: &row.tenant,
                    connection_id: &bound,
                    version: row.generation,
                };
                let sealed = self.reseal(binding, &row.sealed)?;
                if store.reseal_token(row, self.to.0, &sealed).await? {
                    moved += 1;
                }
            }
            stalled = if moved == before { stalled + 1 } else { 0 };
            tokio::task::yield_now().await;
        }
    }

    async fn pending(&self) -> Result<usize, Error> {
        let store = self.keys.store();
        let (mut moved, mut stalled) = (0, 0);
        loop {
            let rows = store
                .pending_sealed_with(self.tenant, self.from.0, self.batch)
                .await?;
            if rows.is_empty() || stalled == STALLED_BATCHES {
                return Ok(moved);
            }
            let before = moved;
            for row in &rows {
                let bound = format!("connect#{}", row.state_hash);
                let binding = RowBinding {
                    tenant: &row.tenant,
                    connection_id: &bound,
                    version: 0,
                };
                let sealed = self.reseal(binding, &row.sealed)?;
                if store.reseal_pending(row, self.to.0, &sealed).await? {
                    moved += 1;
                }
            }
            stalled = if moved == before { stalled + 1 } else { 0 };
            tokio::task::yield_now().await;
        }
    }
}
