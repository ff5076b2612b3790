//! The credentials tables, on SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! Rows are keyed by (tenant, connection_id). Writes use optimistic concurrency on `version`: the
//! caller seals the secret for the next version first (the version is part of the associated
//! data), then the write succeeds only if nobody else moved the version meanwhile. Every change
//! writes its audit row in the same transaction. Every write to a credential row forgets it in
//! the leases' row cache once committed, here and, with Redis, on every replica
//! ([`crate::row_cache`], [`crate::row_changes`]).

use std::sync::Arc;
use std::time::Instant;

use sqlx::{AnyPool, Row};

use plugboard_runtime::storage;

use crate::audit::AuditWriter;
use crate::data_key_store::touch_current_key;
use crate::error::Error;
use crate::health::{Condition, HealthReport, Queued, enqueue};
use crate::oauth::store::{REJECTED, TokenRow, delete_tokens, upsert_token};
use crate::row_cache::RowCache;
use crate::row_changes::RowChanges;

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
    /// The data key id (`sealed_by` = `data_key`) or, for rows from before envelope
    /// encryption, the master key id (`sealed_by` = `master`).
    pub key_id: String,
    pub sealed_by: String,
    pub sealed: String,
    pub revoked: bool,
    pub updated_at: String,
}

/// How a credential row is sealed.
pub const SEALED_BY_DATA_KEY: &str = "data_key";
pub const SEALED_BY_MASTER: &str = "master";

/// A tenant's data key as stored: wrapped by the master key `master_key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub tenant: String,
    pub id: String,
    pub master_key_id: String,
    pub wrapped: String,
}

/// A credential about to be written at `version`.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub tenant: &'a str,
    pub connection_id: &'a str,
    pub connector: &'a str,
    pub kind: &'a str,
    pub version: u64,
    /// The tenant's data key id.
    pub key_id: &'a str,
    pub sealed: &'a str,
    pub at: &'a str,
}

/// One audit log row: who did what to which connection and how it ended. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// An audit row with its id (time-ordered, the page token of ListAudit): as read back, and as
/// spooled (one JSON object a line, the entry's fields beside the id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    pub id: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

#[derive(Debug, Clone)]
pub struct CredentialStore {
    pool: AnyPool,
    pub(crate) audit: AuditWriter,
    /// Wakes this process's health reporter when a report is queued.
    queued: Queued,
    /// Rows recently read for leases.
    rows: RowCache,
    /// Set with Redis: row writes reach the other replicas' caches.
    row_changes: Option<RowChanges>,
}

impl CredentialStore {
    /// Opens the store and runs its migrations, with the audit spool in its default directory
    /// ([`crate::audit::default_spool_dir`]). `schema` is the PostgreSQL schema (tests use a
    /// unique one); SQLite ignores it.
    pub async fn open(database_url: &str, schema: &str) -> Result<CredentialStore, Error> {
        let spool_dir = crate::audit::default_spool_dir(database_url, schema);
        CredentialStore::open_with_audit_spool(database_url, schema, &spool_dir).await
    }

    /// Opens the store with its audit spool in `spool_dir`, which must serve this database
    /// only (see [`crate::audit`]).
    pub async fn open_with_audit_spool(
        database_url: &str,
        schema: &str,
        spool_dir: &std::path::Path,
    ) -> Result<CredentialStore, Error> {
        let pool = storage::open(database_url, schema, &MIGRATOR).await?;
        let sqlite = storage::Backend::of_url(database_url)? == storage::Backend::Sqlite;
        let audit = AuditWriter::open(pool.clone(), spool_dir, sqlite)?;
        Ok(CredentialStore {
            pool,
            audit,
            queued: Queued::default(),
            rows: RowCache::new(true),
            row_changes: None,
        })
    }

    /// Shares row writes with the other replicas on `schema` through Redis at `redis_url`, so
    /// that none of them leases a row another one changed. Without it, a replica sees another
    /// one's change within [`crate::row_cache::ROW_MAX_AGE`].
    pub async fn with_row_changes(
        mut self,
        redis_url: &str,
        schema: &str,
    ) -> Result<CredentialStore, Error> {
        // Until subscribed, another replica's write would go unheard: keep nothing.
        self.rows.reset(false);
        let changes = RowChanges::follow(redis_url, schema, self.rows.clone())
            .await
            .map_err(|error| Error::Coordination(error.to_string()))?;
        self.row_changes = Some(changes);
        Ok(self)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn queued(&self) -> &Queued {
        &self.queued
    }

    /// The row of a connection, revoked or not.
    pub async fn get(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Option<StoredCredential>, Error> {
        let row = sqlx::query(
            "SELECT tenant, connection_id, connector, kind, version, key_id, sealed_by, sealed, \
             revoked, updated_at FROM credentials WHERE tenant = $1 AND connection_id = $2",
        )
        .bind(tenant)
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credential_of).transpose()
    }

    /// The row of a connection for a lease: from memory when it was read recently (see
    /// [`crate::row_cache`]), else from the database. Every other reader uses [`Self::get`].
    pub async fn lease_row(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Option<Arc<StoredCredential>>, Error> {
        let read_at = Instant::now();
        if let Some(row) = self.rows.get(tenant, connection_id, read_at) {
            return Ok(Some(row));
        }
        let generation = self.rows.generation();
        let Some(row) = self.get(tenant, connection_id).await? else {
            return Ok(None);
        };
        let row = Arc::new(row);
        if !row.revoked {
            self.rows.keep(generation, row.clone(), read_at);
        }
        Ok(Some(row))
    }

    /// After a committed write to a row: forgets it here and tells the other replicas.
    pub(crate) async fn row_written(&self, tenant: &str, connection_id: &str) {
        self.rows.forget(tenant, connection_id);
        if let Some(changes) = &self.row_changes {
            changes.publish(tenant, connection_id).await;
        }
    }

    /// Live rows still sealed directly by a master key (written before envelope encryption).
    pub async fn master_sealed(&self) -> Result<Vec<StoredCredential>, Error> {
        let rows = sqlx::query(
            "SELECT tenant, connection_id, connector, kind, version, key_id, sealed_by, sealed, \
             revoked, updated_at FROM credentials WHERE revoked = 0 AND sealed_by = 'master'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_of).collect()
    }

    /// Replaces a master-sealed row's ciphertext by one under the tenant's data key, same
    /// version, if the row is unchanged; with its audit row.
    pub async fn reseal(
        &self,
        row: &StoredCredential,
        data_key_id: &str,
        sealed: &str,
        audit: &AuditEntry,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE credentials SET sealed = $1, key_id = $2, sealed_by = 'data_key' \
             WHERE tenant = $3 AND connection_id = $4 AND version = $5 AND sealed_by = 'master' \
             AND revoked = 0",
        )
        .bind(sealed)
        .bind(data_key_id)
        .bind(row.tenant.as_str())
        .bind(row.connection_id.as_str())
        .bind(to_column(row.version))
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

    /// Writes `credential` if the stored version is still `expected_version` (0: no row yet),
    /// with its audit row, replacing the connection's OAuth tokens by `tokens` (none: dropped).
    /// False when another writer got there first; [`Error::StaleDataKey`] when `key_id` is no
    /// longer the tenant's current data key (seal again and retry).
    pub async fn put(
        &self,
        credential: &NewCredential<'_>,
        expected_version: u64,
        audit: &AuditEntry,
        tokens: Option<&TokenRow>,
    ) -> Result<bool, Error> {
        let mut transaction = self.pool.begin().await?;
        if !touch_current_key(&mut transaction, credential.tenant, credential.key_id).await? {
            transaction.rollback().await?;
            return Err(Error::StaleDataKey);
        }
        let written = sqlx::query(
            "INSERT INTO credentials (tenant, connection_id, connector, kind, version, key_id, \
             sealed_by, sealed, revoked, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'data_key', $7, 0, $8, $8) \
             ON CONFLICT (tenant, connection_id) DO UPDATE SET connector = excluded.connector, \
             kind = excluded.kind, version = excluded.version, key_id = excluded.key_id, \
             sealed_by = excluded.sealed_by, sealed = excluded.sealed, revoked = 0, \
             updated_at = excluded.updated_at WHERE credentials.version = $9",
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
        let dropped = delete_tokens(
            &mut transaction,
            credential.tenant,
            credential.connection_id,
        )
        .await?;
        if let Some(tokens) = tokens {
            upsert_token(&mut transaction, tokens, false).await?;
        }
        insert_audit(&mut transaction, audit).await?;
        // The partner had refused the connection; this new credential is its reconnect.
        let reconnected = dropped.as_deref() == Some(REJECTED);
        if reconnected {
            let report = HealthReport::new(
                credential.tenant,
                credential.connection_id,
                credential.connector,
                Condition::Valid,
                "the connection was reconnected",
            );
            enqueue(&mut transaction, &report).await?;
        }
        transaction.commit().await?;
        self.row_written(credential.tenant, credential.connection_id)
            .await;
        if reconnected {
            self.queued.wake();
        }
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
        delete_tokens(&mut transaction, tenant, connection_id).await?;
        insert_audit(&mut transaction, &audit).await?;
        transaction.commit().await?;
        self.row_written(tenant, connection_id).await;
        Ok(Some(version))
    }

    /// Writes an audit row on its own, for leases, reads and refusals; returns once it is
    /// spooled, which a crash of this process cannot undo (see [`crate::audit`]).
    pub async fn record(&self, audit: AuditEntry) -> Result<(), Error> {
        self.audit.record(audit)
    }

    /// Ships every audit row this process spooled into the table: before reading the audit
    /// log, and at shutdown.
    pub async fn flush_audit(&self) -> Result<(), Error> {
        self.audit.flush().await
    }

    /// Where this store spools audit rows.
    pub fn audit_spool_dir(&self) -> &std::path::Path {
        self.audit.spool_dir()
    }

    /// Up to `limit` audit rows of `tenant` (of `connection_id` when not empty) older than the
    /// row `before` (all when empty), newest first.
    pub async fn audit_rows(
        &self,
        tenant: &str,
        connection_id: &str,
        before: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>, Error> {
        self.flush_audit().await?;
        let rows = sqlx::query(
            "SELECT id, at, tenant, connection_id, subject, action, outcome, run_id, version \
             FROM credential_audit WHERE tenant = $1 AND ($2 = '' OR connection_id = $2) \
             AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant)
        .bind(connection_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRow {
                    id: row.try_get("id")?,
                    entry: audit_entry_of(row)?,
                })
            })
            .collect()
    }

    /// A connection's audit log, oldest first.
    pub async fn audit_log(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Vec<AuditEntry>, Error> {
        self.flush_audit().await?;
        let rows = sqlx::query(
            "SELECT at, tenant, connection_id, subject, action, outcome, run_id, version \
             FROM credential_audit WHERE tenant = $1 AND connection_id = $2 ORDER BY at, id",
        )
        .bind(tenant)
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_entry_of).collect()
    }
}

fn audit_entry_of(row: &sqlx::any::AnyRow) -> Result<AuditEntry, Error> {
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
}

pub(crate) fn credential_of(row: &sqlx::any::AnyRow) -> Result<StoredCredential, Error> {
    Ok(StoredCredential {
        tenant: row.try_get("tenant")?,
        connection_id: row.try_get("connection_id")?,
        connector: row.try_get("connector")?,
        kind: row.try_get("kind")?,
        version: to_version(row.try_get("version")?),
        key_id: row.try_get("key_id")?,
        sealed_by: row.try_get("sealed_by")?,
        sealed: row.try_get("sealed")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Columns of one audit row as [`bind_audit`] binds them.
pub(crate) const AUDIT_COLUMNS: usize = 9;

/// Binds one audit row's columns: `id`, then the entry's at, tenant, connection_id, subject,
/// action, outcome, run_id, version.
pub(crate) fn bind_audit<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: &'q str,
    audit: &'q AuditEntry,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(id)
        .bind(audit.at.as_str())
        .bind(audit.tenant.as_str())
        .bind(audit.connection_id.as_str())
        .bind(audit.subject.as_str())
        .bind(audit.action.as_str())
        .bind(audit.outcome.as_str())
        .bind(audit.run_id.as_str())
        .bind(to_column(audit.version))
}

pub(crate) async fn insert_audit(
    connection: &mut sqlx::AnyConnection,
    audit: &AuditEntry,
) -> Result<(), Error> {
    let insert = sqlx::query(
        "INSERT INTO credential_audit (id, at, tenant, connection_id, subject, action, outcome, \
         run_id, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    );
    // uuid v7 ids sort by time, which breaks ties between rows written in the same millisecond.
    let id = uuid::Uuid::now_v7().to_string();
    bind_audit(insert, &id, audit).execute(connection).await?;
    Ok(())
}

/// Versions are counters from 1, far below `i64::MAX`; a negative value cannot be stored by us.
pub(crate) fn to_version(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

pub(crate) fn to_column(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
