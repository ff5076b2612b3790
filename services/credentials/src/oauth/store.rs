//! The `oauth_tokens` and `oauth_pending` tables.

use sqlx::Row;

use crate::data_key_store::touch_current_key;
use crate::error::Error;
use crate::health::{HealthReport, enqueue};
use crate::store::{AuditEntry, CredentialStore, insert_audit};

/// `state` of a token row whose grant the partner refused: the connection needs a reconnect.
pub const REJECTED: &str = "rejected";
pub const OK: &str = "ok";

/// One connection's tokens and refresh bookkeeping. `sealed` is ciphertext ('' when no token
/// was ever obtained, for example after the first fetch failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub tenant: String,
    pub connection_id: String,
    /// The credential version the tokens were obtained with.
    pub credential_version: u64,
    /// Increases with every write of `sealed`; part of its associated data.
    pub generation: u64,
    /// The tenant's data key id that sealed `sealed`.
    pub key_id: String,
    pub sealed: String,
    /// Epoch seconds; 0 when there is no access token.
    pub access_expires_at: i64,
    /// Fencing token of the refresh lease that wrote the row.
    pub fence: i64,
    pub state: String,
    /// Consecutive transient refresh failures.
    pub failures: u32,
    /// Epoch seconds until which leases fail fast instead of refreshing; 0 when not cooling.
    pub cool_until: i64,
    /// The last failure, in plain words; never a token.
    pub last_error: String,
}

/// An authorization code connect in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub state_hash: String,
    pub tenant: String,
    pub connection_id: String,
    pub connector: String,
    pub key_id: String,
    /// The client and the PKCE verifier, sealed under the tenant's data key.
    pub sealed: String,
    pub expires_at: i64,
}

impl CredentialStore {
    pub async fn token(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Option<TokenRow>, Error> {
        let row = sqlx::query(
            "SELECT tenant, connection_id, credential_version, generation, key_id, sealed, \
             access_expires_at, fence, state, failures, cool_until, last_error FROM oauth_tokens \
             WHERE tenant = $1 AND connection_id = $2",
        )
        .bind(tenant)
        .bind(connection_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(TokenRow {
                tenant: row.try_get("tenant")?,
                connection_id: row.try_get("connection_id")?,
                credential_version: unsigned(row.try_get("credential_version")?),
                generation: unsigned(row.try_get("generation")?),
                key_id: row.try_get("key_id")?,
                sealed: row.try_get("sealed")?,
                access_expires_at: row.try_get("access_expires_at")?,
                fence: row.try_get("fence")?,
                state: row.try_get("state")?,
                failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or_default(),
                cool_until: row.try_get("cool_until")?,
                last_error: row.try_get("last_error")?,
            })
        })
        .transpose()
    }

    /// Writes `row` unless a writer holding a newer refresh lease (a higher fence) already did;
    /// with its audit row. False when the write was fenced off; [`Error::StaleDataKey`] when
    /// `row` is sealed under a data key that is no longer the tenant's current one.
    /// `report`, when set, is queued for health in the same transaction.
    pub async fn write_token(
        &self,
        row: &TokenRow,
        audit: &AuditEntry,
        report: Option<&HealthReport>,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool().begin().await?;
        if !row.sealed.is_empty()
            && !touch_current_key(&mut transaction, &row.tenant, &row.key_id).await?
        {
            transaction.rollback().await?;
            return Err(Error::StaleDataKey);
        }
        let written = upsert_token(&mut transaction, row, true).await?;
        if !written {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut transaction, audit).await?;
        if let Some(report) = report {
            enqueue(&mut transaction, report).await?;
        }
        transaction.commit().await?;
        if report.is_some() {
            self.queued().wake();
        }
        Ok(true)
    }

    /// Stores a pending connect; [`Error::StaleDataKey`] when it is sealed under a data key that
    /// is no longer the tenant's current one.
    pub async fn insert_pending(&self, pending: &PendingRow, at: &str) -> Result<(), Error> {
        let mut transaction = self.pool().begin().await?;
        if !touch_current_key(&mut transaction, &pending.tenant, &pending.key_id).await? {
            transaction.rollback().await?;
            return Err(Error::StaleDataKey);
        }
        sqlx::query(
            "INSERT INTO oauth_pending (state_hash, tenant, connection_id, connector, key_id, \
             sealed, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(pending.state_hash.as_str())
        .bind(pending.tenant.as_str())
        .bind(pending.connection_id.as_str())
        .bind(pending.connector.as_str())
        .bind(pending.key_id.as_str())
        .bind(pending.sealed.as_str())
        .bind(pending.expires_at)
        .bind(at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Removes and returns a tenant's pending connect: a `state` is single use.
    pub async fn take_pending(
        &self,
        tenant: &str,
        state_hash: &str,
    ) -> Result<Option<PendingRow>, Error> {
        let row = sqlx::query(
            "DELETE FROM oauth_pending WHERE state_hash = $1 AND tenant = $2 RETURNING \
             state_hash, tenant, connection_id, connector, key_id, sealed, expires_at",
        )
        .bind(state_hash)
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
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
        .transpose()
    }
}

/// Inserts or replaces a token row; with `fenced`, only over a row with a lower fence.
pub(crate) async fn upsert_token(
    connection: &mut sqlx::AnyConnection,
    row: &TokenRow,
    fenced: bool,
) -> Result<bool, Error> {
    let query = if fenced {
        "INSERT INTO oauth_tokens (tenant, connection_id, credential_version, generation, key_id, \
         sealed, access_expires_at, fence, state, failures, cool_until, last_error, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant, connection_id) DO UPDATE SET \
         credential_version = excluded.credential_version, generation = excluded.generation, \
         key_id = excluded.key_id, sealed = excluded.sealed, \
         access_expires_at = excluded.access_expires_at, fence = excluded.fence, \
         state = excluded.state, failures = excluded.failures, cool_until = excluded.cool_until, \
         last_error = excluded.last_error, updated_at = excluded.updated_at \
         WHERE oauth_tokens.fence < excluded.fence"
    } else {
        "INSERT INTO oauth_tokens (tenant, connection_id, credential_version, generation, key_id, \
         sealed, access_expires_at, fence, state, failures, cool_until, last_error, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant, connection_id) DO UPDATE SET \
         credential_version = excluded.credential_version, generation = excluded.generation, \
         key_id = excluded.key_id, sealed = excluded.sealed, \
         access_expires_at = excluded.access_expires_at, fence = excluded.fence, \
         state = excluded.state, failures = excluded.failures, cool_until = excluded.cool_until, \
         last_error = excluded.last_error, updated_at = excluded.updated_at"
    };
    let written = sqlx::query(query)
        .bind(row.tenant.as_str())
        .bind(row.connection_id.as_str())
        .bind(signed(row.credential_version))
        .bind(signed(row.generation))
        .bind(row.key_id.as_str())
        .bind(row.sealed.as_str())
        .bind(row.access_expires_at)
        .bind(row.fence)
        .bind(row.state.as_str())
        .bind(i64::from(row.failures))
        .bind(row.cool_until)
        .bind(row.last_error.as_str())
        .bind(plugboard_runtime::storage::now_text())
        .execute(&mut *connection)
        .await?
        .rows_affected();
    Ok(written > 0)
}

/// Drops a connection's tokens (a new put or a revoke makes them meaningless); the `state` of
/// the dropped row, if there was one.
pub(crate) async fn delete_tokens(
    connection: &mut sqlx::AnyConnection,
    tenant: &str,
    connection_id: &str,
) -> Result<Option<String>, Error> {
    let state = sqlx::query_scalar(
        "DELETE FROM oauth_tokens WHERE tenant = $1 AND connection_id = $2 RETURNING state",
    )
    .bind(tenant)
    .bind(connection_id)
    .fetch_optional(connection)
    .await?;
    Ok(state)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
