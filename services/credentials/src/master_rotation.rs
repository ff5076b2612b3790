//! Master key rotation on a running replica (`CredentialsAdminService.RotateMasterKey`).
//!
//! The replica reads its master keys again from their source (the files a Kubernetes secret
//! mount updates in place), checks that every stored data key, current or retired, opens under
//! them, and only then holds them and re-wraps, batch by batch, every data key still under an
//! older key. A key file that does not parse, or a data key no given key opens, refuses the
//! rotation with a clear error before anything changes: the replica keeps the keys it held.
//! Leases go on meanwhile: they use data keys already unwrapped in memory, and each re-wrap is
//! its own short transaction.

use crate::crypto::Keyring;
use crate::data_key_store::KeyTable;
use crate::error::Error;
use crate::keys::{DataKeys, key_audit, unwrap_with};
use crate::store::StoredDataKey;

/// Data keys one batch reads and re-wraps when the caller names no size.
pub const DEFAULT_BATCH: usize = 100;
/// Most data keys one batch takes.
pub const MAX_BATCH: usize = 1000;

/// What a master key rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterRotation {
    /// The id of the master key every data key is wrapped under now.
    pub master_key_id: String,
    /// Data keys (current and retired) checked.
    pub data_keys: usize,
    /// Of those, the ones this call re-wrapped.
    pub rewrapped: usize,
}

/// `requested` as a batch size: 0 means the default, and it is capped.
pub fn batch_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_BATCH,
        size => usize::try_from(size).unwrap_or(MAX_BATCH).min(MAX_BATCH),
    }
}

impl DataKeys {
    /// Reads the master keys again and re-wraps every data key under the current one, `batch`
    /// keys at a time; `subject` (the admin caller) is named in the audit rows.
    pub async fn rotate_master(
        &self,
        subject: &str,
        batch: usize,
    ) -> Result<MasterRotation, Error> {
        let fresh = self.read_source()?;
        let data_keys = self.check_every_key(&fresh, batch).await?;
        // Everything opens under the fresh keys: hold them, then move the data keys over.
        self.hold(fresh.clone());
        let current = fresh.current();
        let mut rotation = MasterRotation {
            master_key_id: current.key_id().to_owned(),
            data_keys,
            rewrapped: 0,
        };
        for table in [KeyTable::Current, KeyTable::Retired] {
            let mut after = (String::new(), String::new());
            loop {
                let page = self.page(table, &after, batch).await?;
                let Some(last) = page.last() else { break };
                after = (last.tenant.clone(), last.id.clone());
                for stored in page.iter().filter(|k| k.master_key_id != current.key_id()) {
                    let key = unwrap_with(&fresh, stored)?;
                    let wrapped = current
                        .wrap(&stored.tenant, &stored.id, &key)
                        .map_err(|error| Error::Encrypt(error.to_string()))?;
                    let audit = key_audit(subject, &stored.tenant, "", "rewrap");
                    // False: another replica re-wrapped it first, which is as good.
                    if self
                        .store()
                        .rewrap(table, stored, current.key_id(), &wrapped, &audit)
                        .await?
                    {
                        rotation.rewrapped += 1;
                    }
                }
                // Leave room for leases between batches.
                tokio::task::yield_now().await;
            }
        }
        tracing::info!(
            key_id = %rotation.master_key_id,
            data_keys = rotation.data_keys,
            rewrapped = rotation.rewrapped,
            subject,
            "rotated the master key: every data key is wrapped under the current one"
        );
        Ok(rotation)
    }

    /// Checks, batch by batch, that every data key is wrapped under a key of `keyring` and
    /// opens under it; the number of keys checked. Changes nothing.
    async fn check_every_key(&self, keyring: &Keyring, batch: usize) -> Result<usize, Error> {
        let mut checked = 0;
        let mut unknown: Vec<String> = Vec::new();
        let mut unknown_count = 0;
        for table in [KeyTable::Current, KeyTable::Retired] {
            let mut after = (String::new(), String::new());
            loop {
                let page = self.page(table, &after, batch).await?;
                let Some(last) = page.last() else { break };
                after = (last.tenant.clone(), last.id.clone());
                for stored in &page {
                    checked += 1;
                    if keyring.find(&stored.master_key_id).is_none() {
                        unknown_count += 1;
                        if !unknown.contains(&stored.master_key_id) {
                            unknown.push(stored.master_key_id.clone());
                        }
                        continue;
                    }
                    unwrap_with(keyring, stored)?;
                }
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            tracing::warn!(
                unknown = unknown_count,
                "refused a master key rotation: data keys are wrapped under keys not given"
            );
            return Err(Error::UnknownMasterKey {
                count: unknown_count,
                key_ids: unknown.join(", "),
                configured: keyring.key_ids().join(", "),
            });
        }
        Ok(checked)
    }

    async fn page(
        &self,
        table: KeyTable,
        after: &(String, String),
        batch: usize,
    ) -> Result<Vec<StoredDataKey>, Error> {
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        self.store()
            .data_keys_page(table, (&after.0, &after.1), limit)
            .await
    }
}
