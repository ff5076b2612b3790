//! Per-tenant data keys: created on a tenant's first secret, cached unwrapped in memory, and
//! re-wrapped under the current master key at start or when an admin asks a running replica
//! (master key rotation, [`crate::master_rotation`]). A tenant's data key itself can be
//! replaced too ([`crate::data_key_rotation`]); until its secrets are re-sealed, the old one is
//! kept as a retired key and still opens them.
//!
//! Rotating the master key without downtime, with keys in files (a Kubernetes secret mount):
//! 1. put the new key in `PLUGBOARD_MASTER_KEY_FILE` and the old one in
//!    `PLUGBOARD_MASTER_KEY_PREVIOUS_FILE` (every replica sees the change in place);
//! 2. call `CredentialsAdminService.RotateMasterKey` on any one replica: it reads the files
//!    again and re-wraps every data key under the new key in batches while leases go on. The
//!    other replicas read the files again by themselves the first time they meet a data key
//!    wrapped under a key they do not hold, and before they create a tenant's first data key;
//! 3. once the answer says nothing is left under the old key, drop it from the files.
//!
//! With keys in environment variables (which a running process cannot re-read) the same steps
//! are rolling restarts: each replica re-wraps what is still under an older key when it
//! starts ([`DataKeys::prepare`]).
//!
//! Secret ciphertexts are never touched by a master key rotation. Rows sealed directly by a
//! master key (written before envelope encryption) are migrated to the tenant's data key at
//! start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use plugboard_runtime::storage::now_text;

use crate::config::MasterKeySource;
use crate::crypto::{DataKey, Keyring, RowBinding};
use crate::data_key_store::KeyTable;
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

/// A tenant's unwrapped data keys: the current one's id, and every key (current or retired)
/// this replica has opened. Key material never changes for an id, only its wrapping, so
/// entries stay valid across master key rotations.
#[derive(Debug, Default, Clone)]
struct TenantKeys {
    current: Option<String>,
    keys: Vec<(String, DataKey)>,
}

impl TenantKeys {
    fn get(&self, id: &str) -> Option<&DataKey> {
        self.keys
            .iter()
            .find(|(key_id, _)| key_id == id)
            .map(|(_, key)| key)
    }
}

#[derive(Debug, Clone)]
pub struct DataKeys {
    store: CredentialStore,
    /// Where the master keys are read from again on a rotation.
    source: Arc<RwLock<MasterKeySource>>,
    keyring: Arc<RwLock<Keyring>>,
    cache: Arc<RwLock<HashMap<String, TenantKeys>>>,
}

impl DataKeys {
    pub fn new(store: CredentialStore, keyring: Keyring) -> DataKeys {
        DataKeys {
            store,
            source: Arc::new(RwLock::new(MasterKeySource::from(keyring.clone()))),
            keyring: Arc::new(RwLock::new(keyring)),
            cache: Arc::default(),
        }
    }

    /// Reads the master keys from `source` when they are read again (see [`crate::keys`]).
    pub fn set_source(&self, source: MasterKeySource) {
        *self
            .source
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = source;
    }

    /// The master keys held now.
    pub fn keyring(&self) -> Keyring {
        self.keyring
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    pub(crate) fn store(&self) -> &CredentialStore {
        &self.store
    }

    /// The master keys as their source says now, checked but not yet held.
    pub(crate) fn read_source(&self) -> Result<Keyring, Error> {
        let source = self
            .source
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        source.read().map_err(Error::MasterKeyReload)
    }

    /// Holds `keyring` from now on.
    pub(crate) fn hold(&self, keyring: Keyring) {
        *self
            .keyring
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = keyring;
    }

    /// Reads the master keys again and holds them when they parse, keeping every key held
    /// before as a previous one (only an admin rotation, which checks every data key first,
    /// drops keys); on an error the keys held stay as they are. True when the keys changed.
    fn refresh_keyring(&self) -> bool {
        match self.read_source() {
            Ok(fresh) => {
                let fresh = fresh.merged_with(&self.keyring());
                let changed = fresh.key_ids() != self.keyring().key_ids();
                if changed {
                    tracing::info!(
                        current_key_id = fresh.current().key_id(),
                        "read the master keys again"
                    );
                    self.hold(fresh);
                }
                changed
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the master keys again; keeping the ones held");
                false
            }
        }
    }

    fn cached(&self, tenant: &str, id: Option<&str>) -> Option<(String, DataKey)> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let keys = cache.get(tenant)?;
        let id = id.or(keys.current.as_deref())?;
        keys.get(id).map(|key| (id.to_owned(), key.clone()))
    }

    fn remember(&self, tenant: &str, id: &str, key: &DataKey, current: bool) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let keys = cache.entry(tenant.to_owned()).or_default();
        if keys.get(id).is_none() {
            keys.keys.push((id.to_owned(), key.clone()));
        }
        if current {
            keys.current = Some(id.to_owned());
        }
    }

    /// Forgets which key is the tenant's current one: the next write reads it again. Called
    /// when a write found the tenant's key rotated by another replica.
    pub(crate) fn forget_current(&self, tenant: &str) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(keys) = cache.get_mut(tenant) {
            keys.current = None;
        }
    }

    /// Drops a retired key from memory once it is deleted.
    pub(crate) fn forget(&self, tenant: &str, id: &str) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(keys) = cache.get_mut(tenant) {
            keys.keys.retain(|(key_id, _)| key_id != id);
        }
    }

    /// The tenant's current data key and its id, created (wrapped under the current master
    /// key) on the tenant's first secret.
    pub async fn for_write(&self, tenant: &str) -> Result<(String, DataKey), Error> {
        if let Some(found) = self.cached(tenant, None) {
            return Ok(found);
        }
        if let Some(stored) = self.store.data_key(tenant).await? {
            let key = self.unwrap_stored(&stored)?;
            self.remember(tenant, &stored.id, &key, true);
            return Ok((stored.id, key));
        }
        // A new key should be wrapped under the newest master key, which another replica may
        // have been rotated to since we started.
        self.refresh_keyring();
        let key = DataKey::generate().map_err(|error| Error::Encrypt(error.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let keyring = self.keyring();
        let current = keyring.current();
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
            self.remember(tenant, &id, &key, true);
            return Ok((id, key));
        }
        // Another writer created the tenant's key first: use theirs.
        let stored = self
            .store
            .data_key(tenant)
            .await?
            .ok_or_else(|| Error::Encrypt("a tenant data key vanished".to_owned()))?;
        let key = self.unwrap_stored(&stored)?;
        self.remember(tenant, &stored.id, &key, true);
        Ok((stored.id, key))
    }

    /// The data key `id` of a tenant, current or retired, to open a value of `connection_id`.
    pub async fn for_read(
        &self,
        tenant: &str,
        id: &str,
        connection_id: &str,
    ) -> Result<DataKey, Error> {
        if let Some((_, key)) = self.cached(tenant, Some(id)) {
            return Ok(key);
        }
        let (stored, current) = match self.store.data_key(tenant).await? {
            Some(stored) if stored.id == id => (stored, true),
            _ => match self.store.retired_data_key(tenant, id).await? {
                Some(stored) => (stored, false),
                None => {
                    return Err(Error::SecretUnreadable {
                        connection_id: connection_id.to_owned(),
                    });
                }
            },
        };
        if self.keyring().find(&stored.master_key_id).is_none() && !self.refresh_keyring() {
            tracing::warn!(stored_key_id = %stored.master_key_id, "data key wrapped under a master key that is not configured");
            return Err(Error::MasterKeyMismatch {
                connection_id: connection_id.to_owned(),
            });
        }
        let key = self.unwrap_stored(&stored)?;
        self.remember(tenant, &stored.id, &key, current);
        Ok(key)
    }

    /// Unwraps a stored data key with the master keys held, reading them again once when the
    /// key is wrapped under one we do not hold (another replica rotated to it).
    pub(crate) fn unwrap_stored(&self, stored: &StoredDataKey) -> Result<DataKey, Error> {
        if self.keyring().find(&stored.master_key_id).is_none() {
            self.refresh_keyring();
        }
        unwrap_with(&self.keyring(), stored)
    }

    /// Run at start, before serving. First checks that every data key (current and retired)
    /// and every master-sealed secret is under a configured master key and every data key
    /// unwraps; if not, fails closed with a clear error having changed nothing. Then re-wraps
    /// data keys still under a previous master key, and moves master-sealed secrets onto their
    /// tenant's data key.
    pub async fn prepare(&self) -> Result<Prepared, Error> {
        let keyring = self.keyring();
        let mut data_keys = Vec::new();
        for table in [KeyTable::Current, KeyTable::Retired] {
            let keys = self.store.data_keys_page(table, ("", ""), i64::MAX).await?;
            data_keys.extend(keys.into_iter().map(|key| (table, key)));
        }
        let legacy = self.store.master_sealed().await?;
        let mut unknown: Vec<&str> = data_keys
            .iter()
            .map(|(_, key)| key.master_key_id.as_str())
            .chain(legacy.iter().map(|row| row.key_id.as_str()))
            .filter(|key_id| keyring.find(key_id).is_none())
            .collect();
        if !unknown.is_empty() {
            let count = unknown.len();
            unknown.sort_unstable();
            unknown.dedup();
            return Err(Error::UnknownMasterKey {
                count,
                key_ids: unknown.join(", "),
                configured: keyring.key_ids().join(", "),
            });
        }
        let mut unwrapped = Vec::with_capacity(data_keys.len());
        for (_, stored) in &data_keys {
            unwrapped.push(unwrap_with(&keyring, stored)?);
        }
        for row in &legacy {
            let master = keyring
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
        let current = keyring.current();
        for ((table, stored), key) in data_keys.iter().zip(&unwrapped) {
            self.remember(&stored.tenant, &stored.id, key, *table == KeyTable::Current);
            if stored.master_key_id == current.key_id() {
                continue;
            }
            let wrapped = current
                .wrap(&stored.tenant, &stored.id, key)
                .map_err(|error| Error::Encrypt(error.to_string()))?;
            let audit = system_audit(&stored.tenant, "", "rewrap");
            if self
                .store
                .rewrap(*table, stored, current.key_id(), &wrapped, &audit)
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
            let master = keyring
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

/// Unwraps `stored` with `keyring`: UnknownMasterKey when it holds no key with the stored id,
/// DataKeyUnreadable when the key with that id does not open it.
pub(crate) fn unwrap_with(keyring: &Keyring, stored: &StoredDataKey) -> Result<DataKey, Error> {
    let master = keyring
        .find(&stored.master_key_id)
        .ok_or_else(|| Error::UnknownMasterKey {
            count: 1,
            key_ids: stored.master_key_id.clone(),
            configured: keyring.key_ids().join(", "),
        })?;
    master
        .unwrap_key(&stored.tenant, &stored.id, &stored.wrapped)
        .map_err(|_| Error::DataKeyUnreadable {
            tenant: stored.tenant.clone(),
            master_key_id: stored.master_key_id.clone(),
        })
}

/// An audit row written by `subject` about a tenant's keys (`connection_id` empty) or one of
/// its connections.
pub(crate) fn key_audit(
    subject: &str,
    tenant: &str,
    connection_id: &str,
    action: &str,
) -> AuditEntry {
    AuditEntry {
        at: now_text(),
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
        subject: subject.to_owned(),
        action: action.to_owned(),
        outcome: "ok".to_owned(),
        run_id: String::new(),
        version: 0,
    }
}

fn system_audit(tenant: &str, connection_id: &str, action: &str) -> AuditEntry {
    key_audit(SYSTEM_SUBJECT, tenant, connection_id, action)
}
