//! The credentials tables, on SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! Rows are keyed by (tenant, connection_id). Writes use optimistic concurrency on `version`: the
//! caller seals the secret for the next version first (the version is part of the associated
//! data), then the write succeeds only if nobody else moved the version meanwhile. Every change
//! writes its audit row in the same transaction.

use sqlx::{AnyPool, Row};

use plugboard_runtime::storage::{self, StorageError};

use crate::error::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema (PostgreSQL) the service uses in production.
pub const SCHEMA: &str = "credentials";

/// One connection's stored credential. `sealed` is ciphertext, empty once revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub tenant: String,
    pub connection_id: String,
    pub connector: String,
    pub kind: String,
    pub version: u64,
    pub key_id: String,
    pub sealed: String,
    pub revoked: bool,
    pub updated_at: String,
}

/// A credential about to be written at `version`.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub tenant: &'a str,
    pub connection_id: &'a str,
    pub connector: &'a str,
    pub kind: &'a str,
    pub version: u64,
    pub key_id: &'a str,
    pub sealed: &'a str,
    pub at: &'a str,
}

/// One audit log row: who did what to which connection and how it ended. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: String,
    pub tenant: String,
    pub connection_id: String,
    /// The calling service, from its verified token.
    pub subject: String,
    /// `put`, `lease`, `revoke` or `describe`.
    pub action: String,
    /// `ok`, `denied` or `not_found`.
    pub outcome: String,
    /// The sync run a lease served; empty otherwise.
    pub run_id: String,
    /// The credential version involved, 0 when there was none.
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct CredentialStore {
    pool: AnyPool,
}

impl CredentialStore {
    /// Opens the store and runs its migrations. `schema` is the PostgreSQL schema (tests use a
    /// unique one); SQLite ignores it.
    pub async fn open(database_url: &str, schema: &str) -> Result<CredentialStore, StorageError> {
        let pool = storage::open(database_url, schema, &MIGRATOR).await?;
        Ok(CredentialStore { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The row of a connection, revoked or not.
    pub async fn get(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Option<StoredCredential>, Error> {
        let row = sqlx::query(
            "SELECT tenant, connection_id, connector, kind, version, key_id, sealed, revoked, \
             updated_at FROM credentials WHERE tenant = $1 AND connection_id = $2",
        )
        .bind(tenant)
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredCredential {
                tenant: row.try_get("tenant")?,
                connection_id: row.try_get("connection_id")?,
                connector: row.try_get("connector")?,
                kind: row.try_get("kind")?,
                version: to_version(row.try_get("version")?),
                key_id: row.try_get("key_id")?,
                sealed: row.try_get("sealed")?,
                revoked: row.try_get::<i64, _>("revoked")? != 0,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// Writes `credential` if the stored version is still `expected_version` (0: no row yet),
    /// with its audit row. False when another writer got there first.
    pub async fn put(
        &self,
        credential: &NewCredential<'_>,
        expected_version: u64,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool.begin().await?;
        let written = sqlx::query(
            "INSERT INTO credentials (tenant, connection_id, connector, kind, version, key_id, \
             sealed, revoked, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) \
             ON CONFLICT (tenant, connection_id) DO UPDATE SET connector = excluded.connector, \
             kind = excluded.kind, version = excluded.version, key_id = excluded.key_id, \
             sealed = excluded.sealed, revoked = 0, updated_at = excluded.updated_at \
             WHERE credentials.version = $9",
        )
        .bind(credential.tenant)
        .bind(credential.connection_id)
        .bind(credential.connector)
        .bind(credential.kind)
        .bind(to_column(credential.version))
        .bind(credential.key_id)
        .bind(credential.sealed)
        .bind(credential.at)
        .bind(to_column(expected_version))
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if written == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut transaction, audit).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Drops the ciphertext of a live credential and keeps its version counter, with the audit
    /// row. The revoked version, or `None` when there was nothing live to revoke.
    pub async fn revoke(
        &self,
        tenant: &str,
        connection_id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<u64>, Error> {
        let mut transaction = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE credentials SET sealed = '', revoked = 1, updated_at = $3 \
             WHERE tenant = $1 AND connection_id = $2 AND revoked = 0 RETURNING version",
        )
        .bind(tenant)
        .bind(connection_id)
        .bind(audit.at.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(version) = version.map(to_version) else {
            transaction.rollback().await?;
            return Ok(None);
        };
        let audit = AuditEntry {
            version,
            ..audit.clone()
        };
        insert_audit(&mut transaction, &audit).await?;
        transaction.commit().await?;
        Ok(Some(version))
    }

    /// Writes an audit row on its own, for reads and refusals.
    pub async fn record(&self, audit: &AuditEntry) -> Result<(), Error> {
        let mut connection = self.pool.acquire().await?;
        insert_audit(&mut connection, audit).await
    }

    /// A connection's audit log, oldest first.
    pub async fn audit_log(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Vec<AuditEntry>, Error> {
        let rows = sqlx::query(
            "SELECT at, tenant, connection_id, subject, action, outcome, run_id, version \
             FROM credential_audit WHERE tenant = $1 AND connection_id = $2 ORDER BY at, id",
        )
        .bind(tenant)
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: row.try_get("at")?,
                    tenant: row.try_get("tenant")?,
                    connection_id: row.try_get("connection_id")?,
                    subject: row.try_get("subject")?,
                    action: row.try_get("action")?,
                    outcome: row.try_get("outcome")?,
                    run_id: row.try_get("run_id")?,
                    version: to_version(row.try_get("version")?),
                })
            })
            .collect()
    }

    /// How many live secrets were sealed under a key other than `key_id`.
    pub async fn count_sealed_under_other_keys(&self, key_id: &str) -> Result<u64, Error> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credentials WHERE revoked = 0 AND key_id <> $1",
        )
        .bind(key_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(to_version(count))
    }
}

async fn insert_audit(
    connection: &mut sqlx::AnyConnection,
    audit: &AuditEntry,
) -> Result<(), Error> {
    // uuid v7 ids sort by time, which breaks ties between rows written in the same millisecond.
    sqlx::query(
        "INSERT INTO credential_audit (id, at, tenant, connection_id, subject, action, outcome, \
         run_id, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(audit.at.as_str())
    .bind(audit.tenant.as_str())
    .bind(audit.connection_id.as_str())
    .bind(audit.subject.as_str())
    .bind(audit.action.as_str())
    .bind(audit.outcome.as_str())
    .bind(audit.run_id.as_str())
    .bind(to_column(audit.version))
    .execute(connection)
    .await?;
    Ok(())
}

/// Versions are counters from 1, far below `i64::MAX`; a negative value cannot be stored by us.
fn to_version(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn to_column(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
