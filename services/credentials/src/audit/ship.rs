//! Moving spooled audit rows into the `credential_audit` table.
//!
//! A shipment takes the spool's current segment (a fresh one takes its place at once, so leases
//! never wait for it), inserts its rows in one statement, as one JSON array the database parses
//! itself (binding nine values per row through sqlx cost more than the inserts), and deletes the
//! file. A segment the database refuses as JSON (a line torn by a crash) goes row by row. Rows keep the
//! id they were spooled with and the insert skips ids already in the table, so a segment shipped
//! twice (the process died between the commit and the delete) gives each row once.
//! The transaction commits synchronously on both backends: once a segment is deleted its rows
//! are as durable as the database makes any commit.

use std::sync::Arc;

use plugboard_runtime::placeholders::Placeholders;
use sqlx::AnyPool;

use super::spool::{Segment, Spool};
use crate::error::Error;
use crate::store::{AUDIT_COLUMNS, AuditRow, bind_audit};

#[derive(Debug)]
pub(crate) struct Shipper {
    pool: AnyPool,
    spool: Arc<Spool>,
    /// Segments taken from the spool and not yet in the table, oldest first. Holding this lock
    /// is holding the one shipment in progress.
    held: tokio::sync::Mutex<Vec<Segment>>,
    sqlite: bool,
}

impl Shipper {
    pub(crate) fn new(pool: AnyPool, spool: Arc<Spool>, sqlite: bool) -> Shipper {
        Shipper {
            pool,
            spool,
            held: tokio::sync::Mutex::new(Vec::new()),
            sqlite,
        }
    }

    /// Ships every row spooled before the call, and with `adopt_orphans` the segments dead
    /// processes left; returns how many rows went into the table. On an error the segments not
    /// shipped stay held for the next call.
    pub(crate) async fn ship(&self, adopt_orphans: bool) -> Result<usize, Error> {
        let mut held = self.held.lock().await;
        if adopt_orphans {
            held.extend(self.spool.orphans()?);
        }
        if let Some(segment) = self.spool.close_current()? {
            held.push(segment);
        }
        let mut shipped = 0;
        while let Some(segment) = held.first() {
            // About 1 MB read and copied (SHIP_AT rows; more for a dead process's segment): on
            // a blocking thread, not a runtime worker.
            let path = segment.path.clone();
            let (bytes, array) = tokio::task::spawn_blocking(move || {
                let bytes = super::spool::read_segment(&path)?;
                let array = json_array(&bytes);
                Ok::<_, Error>((bytes, array))
            })
            .await
            .map_err(|error| Error::AuditFailed(format!("reading a spool segment: {error}")))??;
            let rows = match self.insert_as_json(array).await {
                Ok(rows) => rows,
                // The database refused the array: a line is torn. Rows one by one, without the
                // lines that are not rows. (A database that cannot be reached is no reason to.)
                Err(Error::Storage(sqlx::Error::Database(_))) => {
                    let (rows, unreadable) = super::spool::parse_rows(&bytes);
                    self.insert(&rows).await?;
                    if unreadable > 0 {
                        tracing::warn!(
                            segment = %segment.path.display(),
                            unreadable,
                            "skipped audit spool lines that are not rows (torn by a crash \
                             mid-write)"
                        );
                    }
                    rows.len()
                }
                Err(error) => return Err(error),
            };
            let segment = held.remove(0);
            let appended = segment.rows;
            if let Err(error) = segment.remove() {
                // Its rows are in the table; shipping it again would add none.
                tracing::warn!(error = %error, "cannot delete a shipped audit spool segment");
            }
            self.spool.shipped(appended);
            shipped += rows;
        }
        Ok(shipped)
    }

    /// Inserts a segment's lines as one JSON array, parsed by the database in one statement:
    /// binding nine values per row through sqlx cost more than the rows' inserts. Fails with a
    /// storage error when a line is not JSON. Returns how many rows the segment held.
    async fn insert_as_json(&self, (array, rows): (String, usize)) -> Result<usize, Error> {
        if rows == 0 {
            return Ok(0);
        }
        let statement = if self.sqlite {
            INSERT_JSON_SQLITE
        } else {
            INSERT_JSON_POSTGRES
        };
        sqlx::query(statement)
            .bind(array)
            .execute(&self.pool)
            .await?;
        Ok(rows)
    }

    async fn insert(&self, rows: &[AuditRow]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin().await?;
        let marks = Placeholders::of(&transaction);
        for chunk in rows.chunks(Placeholders::rows_per_statement(AUDIT_COLUMNS)) {
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_text(marks, chunk.len())));
            for row in chunk {
                insert = bind_audit(insert, &row.id, &row.entry);
            }
            insert.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}

/// A segment's rows from one JSON array (`$1`), skipping ids already in the table.
const INSERT_JSON_SQLITE: &str = "INSERT INTO credential_audit (id, at, tenant, connection_id, \
     subject, action, outcome, run_id, version) \
     SELECT value ->> 'id', value ->> 'at', value ->> 'tenant', value ->> 'connection_id', \
     value ->> 'subject', value ->> 'action', value ->> 'outcome', value ->> 'run_id', \
     value ->> 'version' FROM jsonb_each(jsonb($1)) WHERE true ON CONFLICT (id) DO NOTHING";
const INSERT_JSON_POSTGRES: &str = "INSERT INTO credential_audit (id, at, tenant, connection_id, \
     subject, action, outcome, run_id, version) \
     SELECT id, at, tenant, connection_id, subject, action, outcome, run_id, version \
     FROM json_to_recordset($1::json) AS row(id text, at text, tenant text, connection_id text, \
     subject text, action text, outcome text, run_id text, version bigint) \
     ON CONFLICT (id) DO NOTHING";

/// The JSON array of a segment's lines, and how many lines it holds. Bytes that are not UTF-8
/// (a torn line) are replaced, so the database refuses the array as JSON and the rows are
/// taken one by one.
fn json_array(lines: &[u8]) -> (String, usize) {
    let mut array = Vec::with_capacity(lines.len() + 2);
    array.push(b'[');
    let mut rows = 0;
    for line in lines
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        if rows > 0 {
            array.push(b',');
        }
        array.extend_from_slice(line);
        rows += 1;
    }
    array.push(b']');
    let array = match String::from_utf8(array) {
        Ok(array) => array,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    };
    (array, rows)
}

/// The INSERT of `rows` audit rows that skips ids already in the table. Only placeholders are
/// formatted into the text; every value is bound.
pub(crate) fn insert_text(marks: Placeholders, rows: usize) -> String {
    format!(
        "INSERT INTO credential_audit (id, at, tenant, connection_id, subject, action, outcome, \
         run_id, version) VALUES {} ON CONFLICT (id) DO NOTHING",
        marks.rows(1, rows, AUDIT_COLUMNS)
    )
}
