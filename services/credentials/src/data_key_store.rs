//! The data key tables: `data_keys` (each tenant's current key) and `retired_data_keys` (older
//! keys of a tenant whose data key is being rotated, until nothing is sealed under them), and
//! the re-sealing of rows from a retired key onto the current one.
//!
//! Writers seal under the tenant's current key and prove it in their transaction with
//! [`touch_current_key`]: the row lock it takes orders them against a rotation's switch, so once
//! a switch has committed no row sealed under the old key can be written any more, and the
//! re-seal pass that follows it sees every such row.

use sqlx::Row;

use crate::error::Error;
use crate::oauth::store::{PendingRow, TokenRow};
use crate::store::{
    AuditEntry, CredentialStore, StoredCredential, StoredDataKey, insert_audit, to_column,
};

/// Which data key table a wrapped key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTable {
    Current,
    Retired,
}

impl KeyTable {
    fn name(self) -> &'static str {
        match self {
            KeyTable::Current => "data_keys",
            KeyTable::Retired => "retired_data_keys",
        }
    }
}

/// Locks the tenant's data key row if `key_id` is still its current key. False when a rotation
/// switched the tenant to another key: the caller seals again under the new one.
pub(crate) async fn touch_current_key(
    connection: &mut sqlx::AnyConnection,
    tenant: &str,
    key_id: &str,
) -> Result<bool, Error> {
    let touched = sqlx::query("UPDATE data_keys SET id = id WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(key_id)
        .execute(connection)
        .await?
        .rows_affected();
    Ok(touched == 1)
}

impl CredentialStore {
    /// The current data key of a tenant, if it has one yet.
    pub async fn data_key(&self, tenant: &str) -> Result<Option<StoredDataKey>, Error> {
        let row = sqlx::query(
            "SELECT tenant, id, master_key_id, wrapped FROM data_keys WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(data_key_of).transpose()
    }

    /// A retired data key of a tenant, while something is still sealed under it.
    pub async fn retired_data_key(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<StoredDataKey>, Error> {
        let row = sqlx::query(
            "SELECT tenant, id, master_key_id, wrapped FROM retired_data_keys \
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(data_key_of).transpose()
    }

    /// The ids of a tenant's retired data keys.
    pub async fn retired_key_ids(&self, tenant: &str) -> Result<Vec<String>, Error> {
        let ids = sqlx::query_scalar("SELECT id FROM retired_data_keys WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(ids)
    }

    /// Every tenant's current data key.
    pub async fn data_keys(&self) -> Result<Vec<StoredDataKey>, Error> {
        self.data_keys_page(KeyTable::Current, ("", ""), i64::MAX)
            .await
    }

    /// Up to `limit` keys of `table` after `(tenant, id)` in (tenant, id) order: one batch of a
    /// master key rotation.
    pub async fn data_keys_page(
        &self,
        table: KeyTable,
        after: (&str, &str),
        limit: i64,
    ) -> Result<Vec<StoredDataKey>, Error> {
        let query = format!(
            "SELECT tenant, id, master_key_id, wrapped FROM {} \
             WHERE tenant > $1 OR (tenant = $1 AND id > $2) ORDER BY tenant, id LIMIT $3",
            table.name()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(data_key_of).collect()
    }

    /// Stores a tenant's first data key. False when another writer stored one first: the
    /// caller then uses that one.
    pub async fn insert_data_key(&self, key: &StoredDataKey, at: &str) -> Result<bool, Error> {
        let inserted = sqlx::query(
            "INSERT INTO data_keys (tenant, id, master_key_id, wrapped, created_at, rewrapped_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (tenant) DO NOTHING",
        )
        .bind(key.tenant.as_str())
        .bind(key.id.as_str())
        .bind(key.master_key_id.as_str())
        .bind(key.wrapped.as_str())
        .bind(at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Re-wraps a data key of `table` under another master key if it is still wrapped under
    /// `previous.master_key_id`; with its audit row. False when someone else got there first.
    pub async fn rewrap(
        &self,
        table: KeyTable,
        previous: &StoredDataKey,
        master_key_id: &str,
        wrapped: &str,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool().begin().await?;
        let query = format!(
            "UPDATE {} SET master_key_id = $1, wrapped = $2, rewrapped_at = $3 \
             WHERE tenant = $4 AND id = $5 AND master_key_id = $6",
            table.name()
        );
        let changed = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(master_key_id)
            .bind(wrapped)
            .bind(audit.at.as_str())
            .bind(previous.tenant.as_str())
            .bind(previous.id.as_str())
            .bind(previous.master_key_id.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if changed == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Makes `next` the tenant's current data key in place of `previous`, which is kept in
    /// `retired_data_keys` until nothing is sealed under it; with the audit row. False when the
    /// tenant's current key is no longer `previous` (a concurrent rotation).
    pub async fn switch_data_key(
        &self,
        previous: &StoredDataKey,
        next: &StoredDataKey,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool().begin().await?;
        let at = audit.at.as_str();
        let switched = sqlx::query(
            "UPDATE data_keys SET id = $1, master_key_id = $2, wrapped = $3, created_at = $4, \
             rewrapped_at = $4 WHERE tenant = $5 AND id = $6",
        )
        .bind(next.id.as_str())
        .bind(next.master_key_id.as_str())
        .bind(next.wrapped.as_str())
        .bind(at)
        .bind(previous.tenant.as_str())
        .bind(previous.id.as_str())
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if switched == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO retired_data_keys (tenant, id, master_key_id, wrapped, created_at, \
             retired_at, rewrapped_at) VALUES ($1, $2, $3, $4, $5, $5, $5)",
        )
        .bind(previous.tenant.as_str())
        .bind(previous.id.as_str())
        .bind(previous.master_key_id.as_str())
        .bind(previous.wrapped.as_str())
        .bind(at)
        .execute(&mut *transaction)
        .await?;
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Deletes a retired data key if no live secret, token or pending connect is sealed under
    /// it any more; with the audit row. False when something still is.
    pub async fn delete_retired_key(
        &self,
        tenant: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool().begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM retired_data_keys WHERE tenant = $1 AND id = $2 \
             AND NOT EXISTS (SELECT 1 FROM credentials WHERE tenant = $1 AND key_id = $2 \
             AND sealed_by = 'data_key' AND sealed <> '') \
             AND NOT EXISTS (SELECT 1 FROM oauth_tokens WHERE tenant = $1 AND key_id = $2 \
             AND sealed <> '') \
             AND NOT EXISTS (SELECT 1 FROM oauth_pending WHERE tenant = $1 AND key_id = $2)",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if deleted == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Up to `limit` live credential rows of a tenant sealed under data key `key_id`.
    pub async fn credentials_sealed_with(
        &self,
        tenant: &str,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredCredential>, Error> {
        let rows = sqlx::query(
            "SELECT tenant, connection_id, connector, kind, version, key_id, sealed_by, sealed, \
             revoked, updated_at FROM credentials WHERE tenant = $1 AND key_id = $2 \
             AND sealed_by = 'data_key' AND sealed <> '' ORDER BY connection_id LIMIT $3",
        )
        .bind(tenant)
        .bind(key_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::store::credential_of).collect()
    }

    /// Replaces a credential's ciphertext by `sealed` under data key `key_id` (same plaintext,
    /// same version) if the row is unchanged since it was read; with its audit row.
    pub async fn reseal_credential(
        &self,
        row: &StoredCredential,
        key_id: &str,
        sealed: &str,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE credentials SET sealed = $1, key_id = $2 WHERE tenant = $3 \
             AND connection_id = $4 AND version = $5 AND key_id = $6 AND sealed_by = 'data_key' \
             AND revoked = 0",
        )
        .bind(sealed)
        .bind(key_id)
        .bind(row.tenant.as_str())
        .bind(row.connection_id.as_str())
        .bind(to_column(row.version))
        .bind(row.key_id.as_str())
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if changed == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        self.row_written(&row.tenant, &row.connection_id).await;
        Ok(true)
    }

    /// Up to `limit` token rows of a tenant sealed under data key `key_id`.
    pub async fn tokens_sealed_with(
        &self,
        tenant: &str,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<TokenRow>, Error> {
        let connections: Vec<String> = sqlx::query_scalar(
            "SELECT connection_id FROM oauth_tokens WHERE tenant = $1 AND key_id = $2 \
             AND sealed <> '' ORDER BY connection_id LIMIT $3",
        )
        .bind(tenant)
        .bind(key_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut rows = Vec::with_capacity(connections.len());
        for connection_id in connections {
            if let Some(row) = self.token(tenant, &connection_id).await? {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Replaces a token row's ciphertext (same plaintext, same generation) if nobody wrote the
    /// row since it was read.
    pub async fn reseal_token(
        &self,
        row: &TokenRow,
        key_id: &str,
        sealed: &str,
    ) -> Result<bool, Error> {
        let changed = sqlx::query(
            "UPDATE oauth_tokens SET sealed = $1, key_id = $2 WHERE tenant = $3 \
             AND connection_id = $4 AND generation = $5 AND fence = $6 AND key_id = $7",
        )
        .bind(sealed)
        .bind(key_id)
        .bind(row.tenant.as_str())
        .bind(row.connection_id.as_str())
        .bind(to_column(row.generation))
        .bind(row.fence)
        .bind(row.key_id.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Up to `limit` pending connects of a tenant sealed under data key `key_id`.
    pub async fn pending_sealed_with(
        &self,
        tenant: &str,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<PendingRow>, Error> {
        let rows = sqlx::query(
            "SELECT state_hash, tenant, connection_id, connector, key_id, sealed, expires_at \
             FROM oauth_pending WHERE tenant = $1 AND key_id = $2 ORDER BY state_hash LIMIT $3",
        )
        .bind(tenant)
        .bind(key_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingRow {
                    state_hash: row.try_get("state_hash")?,
                    tenant: row.try_get("tenant")?,
                    connection_id: row.try_get("connection_id")?,
                    connector: row.try_get("connector")?,
                    key_id: row.try_get("key_id")?,
                    sealed: row.try_get("sealed")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Replaces a pending connect's ciphertext if it is still there under `row.key_id`.
    pub async fn reseal_pending(
        &self,
        row: &PendingRow,
        key_id: &str,
        sealed: &str,
    ) -> Result<bool, Error> {
        let changed = sqlx::query(
            "UPDATE oauth_pending SET sealed = $1, key_id = $2 WHERE state_hash = $3 \
             AND tenant = $4 AND key_id = $5",
        )
        .bind(sealed)
        .bind(key_id)
        .bind(row.state_hash.as_str())
        .bind(row.tenant.as_str())
        .bind(row.key_id.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }
}

fn data_key_of(row: &sqlx::any::AnyRow) -> Result<StoredDataKey, Error> {
    Ok(StoredDataKey {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        master_key_id: row.try_get("master_key_id")?,
        wrapped: row.try_get("wrapped")?,
    })
}
