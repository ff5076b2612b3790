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
        None => {
            let mut connection = pool.acquire().await?;
            if sqlite {
                sqlx::query(NO_AUTOCHECKPOINT)
                    .execute(&mut *connection)
                    .await?;
            }
            connection
        }
    };
    write(&mut connection, batch).await?;
    *kept = Some(connection);
    Ok(())
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

    #[tokio::test]
    async fn concurrent_rows_are_all_committed_and_failures_reach_every_caller() {
        let dir = std::env::temp_dir().join(format!("pb-credaudit-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        let store = CredentialStore::open(&url, "credentials").await.unwrap();
        let entries: Vec<AuditEntry> = (0..100).map(entry).collect();
        let writes = entries.iter().map(|audit| store.record(audit));
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
        let writes = entries.iter().take(5).map(|audit| store.record(audit));
        for outcome in futures::future::join_all(writes).await {
            let error = outcome.unwrap_err();
            assert!(matches!(error, crate::Error::AuditFailed(_)), "{error:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
