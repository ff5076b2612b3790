//! Per-tenant data keys: created on a tenant's first secret, cached unwrapped in memory, and
//! re-wrapped under the current master key at start (master key rotation).
//!
//! Rotation without downtime, in three rolling steps:
//! 1. give every replica the new key as `PLUGBOARD_MASTER_KEY_PREVIOUS` (it only unwraps);
//! 2. swap: `PLUGBOARD_MASTER_KEY` = new, `PLUGBOARD_MASTER_KEY_PREVIOUS` = old. Each replica
//!    re-wraps every data key still under an older key when it starts ([`DataKeys::prepare`]),
//!    while replicas still on step 1 keep unwrapping the re-wrapped keys;
//! 3. once the start log says nothing is left under the old key, drop it.
//!
//! Secret ciphertexts are never touched by a rotation. Rows sealed directly by a master key
//! (written before envelope encryption) are migrated to the tenant's data key at start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use plugboard_runtime::storage::now_text;

use crate::crypto::{DataKey, Keyring, RowBinding};
use crate::error::Error;
use crate::store::{AuditEntry, CredentialStore, SEALED_BY_MASTER, StoredDataKey};

/// The subject of audit rows written by the service itself (rewrap, migration).
pub const SYSTEM_SUBJECT: &str = "credentials";

/// What [`DataKeys::prepare`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Data keys re-wrapped under the current master key.
    pub rewrapped: usize,
    /// Secrets moved from master-key sealing to their tenant's data key.
    pub migrated: usize,
}

#[derive(Debug, Clone)]
pub struct DataKeys {
    store: CredentialStore,
    keyring: Keyring,
    /// tenant -> (data key id, data key). Key material never changes, only its wrapping, so the
    /// cache stays valid across rotations.
    cache: Arc<RwLock<HashMap<String, (String, DataKey)>>>,
}

impl DataKeys {
    pub fn new(store: CredentialStore, keyring: Keyring) -> DataKeys {
        DataKeys {
            store,
            keyring,
            cache: Arc::default(),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn cached(&self, tenant: &str) -> Option<(String, DataKey)> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        cache.get(tenant).cloned()
    }

    fn remember(&self, tenant: &str, id: &str, key: &DataKey) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        cache.insert(tenant.to_owned(), (id.to_owned(), key.clone()));
    }

    /// The tenant's data key and its id, created (wrapped under the current master key) on the
    /// tenant's first secret.
    pub async fn for_write(&self, tenant: &str) -> Result<(String, DataKey), Error> {
        if let Some(found) = self.cached(tenant) {
            return Ok(found);
        }
        if let Some(stored) = self.store.data_key(tenant).await? {
            let key = self.unwrap_stored(&stored)?;
            self.remember(tenant, &stored.id, &key);
            return Ok((stored.id, key));
        }
        let key = DataKey::generate().map_err(|error| Error::Encrypt(error.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let current = self.keyring.current();
        let stored = StoredDataKey {
            tenant: tenant.to_owned(),
            id: id.clone(),
            master_key_id: current.key_id().to_owned(),
            wrapped: current
                .wrap(tenant, &id, &key)
                .map_err(|error| Error::Encrypt(error.to_string()))?,
        };
        if self.store.insert_data_key(&stored, &now_text()).await? {
            tracing::info!(tenant, "created a tenant data key");
            self.remember(tenant, &id, &key);
            return Ok((id, key));
        }
        // Another writer created the tenant's key first: use theirs.
        let stored = self
            .store
            .data_key(tenant)
            .await?
            .ok_or_else(|| Error::Encrypt("a tenant data key vanished".to_owned()))?;
        let key = self.unwrap_stored(&stored)?;
        self.remember(tenant, &stored.id, &key);
        Ok((stored.id, key))
    }

    /// The data key `id` of a tenant, to open a secret of `connection_id`.
    pub async fn for_read(
        &self,
        tenant: &str,
        id: &str,
        connection_id: &str,
    ) -> Result<DataKey, Error> {
        if let Some((cached_id, key)) = self.cached(tenant)
            && cached_id == id
        {
            return Ok(key);
        }
        let stored = self.store.data_key(tenant).await?;
        let Some(stored) = stored.filter(|stored| stored.id == id) else {
            return Err(Error::SecretUnreadable {
                connection_id: connection_id.to_owned(),
            });
        };
        if self.keyring.find(&stored.master_key_id).is_none() {
            tracing::warn!(stored_key_id = %stored.master_key_id, "data key wrapped under a master key that is not configured");
            return Err(Error::MasterKeyMismatch {
                connection_id: connection_id.to_owned(),
            });
        }
        let key = self.unwrap_stored(&stored)?;
        self.remember(tenant, &stored.id, &key);
        Ok(key)
    }

    fn unwrap_stored(&self, stored: &StoredDataKey) -> Result<DataKey, Error> {
        let unknown = || Error::UnknownMasterKey {
            count: 1,
            key_ids: stored.master_key_id.clone(),
            configured: self.keyring.key_ids().join(", "),
        };
        let master = self
            .keyring
            .find(&stored.master_key_id)
            .ok_or_else(unknown)?;
        master
            .unwrap_key(&stored.tenant, &stored.id, &stored.wrapped)
            .map_err(|_| Error::DataKeyUnreadable {
                tenant: stored.tenant.clone(),
                master_key_id: stored.master_key_id.clone(),
            })
    }

    /// Run at start, before serving. First checks that every data key and every master-sealed
    /// secret is under a configured master key and every data key unwraps; if not, fails closed
    /// with a clear error having changed nothing. Then re-wraps data keys still under a previous
    /// master key, and moves master-sealed secrets onto their tenant's data key.
    pub async fn prepare(&self) -> Result<Prepared, Error> {
        let data_keys = self.store.data_keys().await?;
        let legacy = self.store.master_sealed().await?;
        let mut unknown: Vec<&str> = data_keys
            .iter()
            .map(|key| key.master_key_id.as_str())
            .chain(legacy.iter().map(|row| row.key_id.as_str()))
            .filter(|key_id| self.keyring.find(key_id).is_none())
            .collect();
        if !unknown.is_empty() {
            let count = unknown.len();
            unknown.sort_unstable();
            unknown.dedup();
            return Err(Error::UnknownMasterKey {
                count,
                key_ids: unknown.join(", "),
                configured: self.keyring.key_ids().join(", "),
            });
        }
        let mut unwrapped = Vec::with_capacity(data_keys.len());
        for stored in &data_keys {
            unwrapped.push(self.unwrap_stored(stored)?);
        }
        for row in &legacy {
            let master = self
                .keyring
                .find(&row.key_id)
                .expect("checked above that every legacy key id is configured");
            let binding = RowBinding {
                tenant: &row.tenant,
                connection_id: &row.connection_id,
                version: row.version,
            };
            if master.open(binding, &row.sealed).is_err() {
                return Err(Error::SecretUnreadable {
                    connection_id: row.connection_id.clone(),
                });
            }
        }

        // Everything opens: now change things.
        let mut prepared = Prepared::default();
        let current = self.keyring.current();
        for (stored, key) in data_keys.iter().zip(&unwrapped) {
            self.remember(&stored.tenant, &stored.id, key);
            if stored.master_key_id == current.key_id() {
                continue;
            }
            let wrapped = current
                .wrap(&stored.tenant, &stored.id, key)
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let audit = system_audit(&stored.tenant, "", "rewrap");
            if self
                .store
                .rewrap(stored, current.key_id(), &wrapped, &audit)
                .await?
            {
                prepared.rewrapped += 1;
            }
        }
        for row in legacy
            .iter()
            .filter(|row| row.sealed_by == SEALED_BY_MASTER)
        {
            let binding = RowBinding {
                tenant: &row.tenant,
                connection_id: &row.connection_id,
                version: row.version,
            };
            let master = self
                .keyring
                .find(&row.key_id)
                .expect("checked above that every legacy key id is configured");
            let plaintext =
                master
                    .open(binding, &row.sealed)
                    .map_err(|_| Error::SecretUnreadable {
                        connection_id: row.connection_id.clone(),
                    })?;
            let (id, key) = self.for_write(&row.tenant).await?;
            let sealed = key
                .seal(binding, &plaintext)
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let audit = AuditEntry {
                version: row.version,
                ..system_audit(&row.tenant, &row.connection_id, "migrate")
            };
            if self.store.reseal(row, &id, &sealed, &audit).await? {
                prepared.migrated += 1;
            }
        }
        tracing::info!(
            key_id = current.key_id(),
            rewrapped = prepared.rewrapped,
            migrated = prepared.migrated,
            data_keys = data_keys.len(),
            "every data key is wrapped under the current master key"
        );
        Ok(prepared)
    }
}

fn system_audit(tenant: &str, connection_id: &str, action: &str) -> AuditEntry {
    AuditEntry {
        at: now_text(),
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
        subject: SYSTEM_SUBJECT.to_owned(),
        action: action.to_owned(),
        outcome: "ok".to_owned(),
        run_id: String::new(),
        version: 0,
    }
}
