//! Group commit for audit rows written on their own (every lease writes one).
//!
//! Callers hand their row to one writer task and wait for its commit, so a lease still answers
//! only after its audit row is durable; the task writes whatever rows queued up meanwhile in one
//! transaction, as one multi-row INSERT. Under concurrent leases this turns N single-row commits,
//! which SQLite serialises behind its one write lock and which cost PostgreSQL a round trip and a
//! WAL flush each, into a few multi-row ones. Each writer keeps its database connection between
//! batches: taking one from the pool tests it with a round trip first (sqlx's
//! `test_before_acquire`), which cost every batch as much as its INSERT. On SQLite the writer
//! leaves checkpoints to a background task ([`crate::checkpoint`]).
//!
//! On PostgreSQL the writers' own sessions commit with `synchronous_commit = off`: the server
//! answers a commit before its WAL is flushed to disk, and that flush was most of what a lease
//! waited for. This is the durability SQLite has with `synchronous = NORMAL` in WAL mode: a
//! committed audit row is never lost to a crash of this process, and a crash of the database
//! server itself (or its machine) can lose at most the last fraction of a second of audit rows
//! (at most three times `wal_writer_delay`: 600 ms with its default of 200 ms), never corrupt
//! them.
//! Only these sessions do it: credential writes and every other pool connection keep
//! synchronous commits, and a writer's connection is closed, never returned to the pool, so its
//! session settings cannot leak to them.

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::checkpoint::{Checkpointer, NO_AUTOCHECKPOINT};
use crate::error::Error;
use crate::store::{AUDIT_COLUMNS, AuditEntry, bind_audit, insert_audit};

/// Most rows one transaction takes.
const MAX_BATCH: usize = 256;

/// Run on each PostgreSQL audit writer's session; see the module docs for what it gives up.
const ASYNCHRONOUS_COMMIT: &str = "SET synchronous_commit = off";

type Pending = (AuditEntry, oneshot::Sender<Result<(), String>>);

#[derive(Debug, Clone)]
pub struct AuditWriter {
    sender: mpsc::UnboundedSender<Pending>,
    /// On SQLite: checkpoints the log while the writers are alive.
    _checkpointer: Option<Arc<Checkpointer>>,
}

impl AuditWriter {
    /// Starts `writers` writer tasks on the current tokio runtime, sharing one queue; they end
    /// when every clone of the writer is dropped. More than one lets batches commit in
    /// overlap, which PostgreSQL flushes together; SQLite takes one writer at a time anyway.
    /// `sqlite`: the pool is SQLite's, whose checkpoints move off the commit path.
    pub fn spawn(pool: AnyPool, writers: usize, sqlite: bool) -> AuditWriter {
        let (sender, receiver) = mpsc::unbounded_channel::<Pending>();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_forever(pool.clone(), receiver.clone(), sqlite));
        }
        let checkpointer = sqlite.then(|| Arc::new(Checkpointer::spawn(pool)));
        AuditWriter {
            sender,
            _checkpointer: checkpointer,
        }
    }

    /// Writes `audit` and returns once it is committed.
    pub async fn record(&self, audit: AuditEntry) -> Result<(), Error> {
        let (reply, committed) = oneshot::channel();
        self.sender
            .send((audit, reply))
            .map_err(|_| Error::AuditFailed("the audit writer stopped".to_owned()))?;
        committed
            .await
            .map_err(|_| Error::AuditFailed("the audit writer stopped".to_owned()))?
            .map_err(Error::AuditFailed)
    }
}

/// Takes whatever rows are queued (waiting for the first), writes them in one transaction and
/// answers their callers; until the queue closes.
async fn write_forever(
    pool: AnyPool,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    sqlite: bool,
) {
    let mut kept: Option<PoolConnection<sqlx::Any>> = None;
    loop {
        let batch = {
            // Held only while taking a batch, so another writer can take the next one while
            // this one commits.
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            // Lets the lease tasks that are already runnable queue their rows first: batches
            // grew by about a third in the lease bench (RESULTS.md run 19), fewer batches cost
            // less CPU, and no lease waits on a timer for it.
            tokio::task::yield_now().await;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let outcome = write_on(&pool, &mut kept, &batch, sqlite)
            .await
            .map_err(|error| error.to_string());
        if let Err(error) = &outcome {
            tracing::error!(error = %error, rows = batch.len(), "cannot write audit rows");
        }
        for (_, reply) in batch {
            // The caller may have gone away (cancelled request); the row is written.
            let _ = reply.send(outcome.clone());
        }
    }
}

/// Writes `batch` on the connection kept from the last batch, or a fresh one from the pool, and
/// keeps it unless the write failed: it may be broken. After a database restart that costs one
/// failed batch, where the pool's test would have found the dead connection first.
async fn write_on(
    pool: &AnyPool,
    kept: &mut Option<PoolConnection<sqlx::Any>>,
    batch: &[Pending],
    sqlite: bool,
) -> Result<(), Error> {
    let mut connection = match kept.take() {
        Some(connection) => connection,
        None => writer_connection(pool, sqlite).await?,
    };
    write(&mut connection, batch).await?;
    *kept = Some(connection);
    Ok(())
}

/// A connection from the pool set up for audit batches alone: on SQLite it does not checkpoint,
/// on PostgreSQL it commits without waiting for the WAL flush. It is closed when dropped (after a
/// failed batch, or when the writer stops) instead of going back to the pool with those settings.
pub(crate) async fn writer_connection(
    pool: &AnyPool,
    sqlite: bool,
) -> Result<PoolConnection<sqlx::Any>, Error> {
    let mut connection = pool.acquire().await?;
    connection.close_on_drop();
    let setup = if sqlite {
        NO_AUTOCHECKPOINT
    } else {
        ASYNCHRONOUS_COMMIT
    };
    sqlx::query(setup).execute(&mut *connection).await?;
    Ok(connection)
}

/// Writes a batch as one multi-row INSERT: one round trip to the database instead of one per
/// row, which on PostgreSQL is most of what a batch costs.
async fn write(connection: &mut sqlx::AnyConnection, batch: &[Pending]) -> Result<(), Error> {
    if let [(audit, _)] = batch {
        return insert_audit(connection, audit).await;
    }
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_text(batch.len())));
    for (audit, _) in batch {
        insert = bind_audit(insert, audit);
    }
    insert.execute(connection).await?;
    Ok(())
}

/// The INSERT of `rows` audit rows. Only placeholders are formatted into the text; every value
/// is bound.
fn insert_text(rows: usize) -> String {
    let mut text = String::with_capacity(128 + rows * AUDIT_COLUMNS * 6);
    text.push_str(
        "INSERT INTO credential_audit (id, at, tenant, connection_id, subject, action, outcome, \
         run_id, version) VALUES ",
    );
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..AUDIT_COLUMNS {
            let separator = if column == 0 { "" } else { ", " };
            // Writing to a String cannot fail.
            let _ = write!(text, "{separator}${}", row * AUDIT_COLUMNS + column + 1);
        }
        text.push(')');
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::store::{AuditEntry, CredentialStore};

    fn entry(index: usize) -> AuditEntry {
        AuditEntry {
            at: plugboard_runtime::storage::now_text(),
            tenant: "acme".into(),
            connection_id: "c1".into(),
            subject: "connector:x".into(),
            action: "lease".into(),
            outcome: "ok".into(),
            run_id: format!("run-{index}"),
            version: 1,
        }
    }

    #[test]
    fn the_insert_numbers_every_column_of_every_row() {
        let text = super::insert_text(2);
        assert!(
            text.ends_with(
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
                 ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
            "{text}"
        );
    }

    async fn synchronous_commit(connection: &mut sqlx::AnyConnection) -> String {
        let row = sqlx::query("SHOW synchronous_commit")
            .fetch_one(connection)
            .await
            .unwrap();
        sqlx::Row::get(&row, 0)
    }

    #[tokio::test]
    async fn only_the_postgres_audit_sessions_commit_asynchronously() {
        let base_url = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let schema = format!("credentials_t{}", uuid::Uuid::new_v4().simple());
        let store = CredentialStore::open(&base_url, &schema).await.unwrap();
        let pool = store.pool().clone();
        let checks = tokio::spawn(async move {
            let mut writer = super::writer_connection(&pool, false).await.unwrap();
            let mut other = pool.acquire().await.unwrap();
            assert_eq!(synchronous_commit(&mut writer).await, "off");
            assert_eq!(synchronous_commit(&mut other).await, "on");

            // A writer's connection is closed when dropped, so no pool connection inherits it.
            drop(writer);
            drop(other);
            let mut taken = Vec::new();
            for _ in 0..pool.size().max(2) {
                taken.push(pool.acquire().await.unwrap());
            }
            for connection in &mut taken {
                assert_eq!(synchronous_commit(connection).await, "on");
            }
        });
        let outcome = checks.await;

        let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop_schema))
            .execute(store.pool())
            .await
            .unwrap();
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    #[tokio::test]
    async fn concurrent_rows_are_all_committed_and_failures_reach_every_caller() {
        let dir = std::env::temp_dir().join(format!("pb-credaudit-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        let store = CredentialStore::open(&url, "credentials").await.unwrap();
        let entries: Vec<AuditEntry> = (0..100).map(entry).collect();
        let writes = entries.iter().map(|audit| store.record(audit.clone()));
        for outcome in futures::future::join_all(writes).await {
            outcome.unwrap();
        }
        let log = store.audit_log("acme", "c1").await.unwrap();
        let mut runs: Vec<String> = log.into_iter().map(|entry| entry.run_id).collect();
        runs.sort();
        let mut expected: Vec<String> = (0..100).map(|index| format!("run-{index}")).collect();
        expected.sort();
        assert_eq!(runs, expected);

        sqlx::query("DROP TABLE credential_audit")
            .execute(store.pool())
            .await
            .unwrap();
        let writes = entries
            .iter()
            .take(5)
            .map(|audit| store.record(audit.clone()));
        for outcome in futures::future::join_all(writes).await {
            let error = outcome.unwrap_err();
            assert!(matches!(error, crate::Error::AuditFailed(_)), "{error:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
