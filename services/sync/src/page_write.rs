//! A page's records and change-log rows written in a few multi-row statements instead of one
//! per record: the commit of a 500-record page was 1,000 statements. Parameters are written as
//! [`Placeholders`] says (anonymous on SQLite, where numbered ones cost the square of their
//! count to bind), so a page takes two or three statements on either backend.
//!
//! Multi-row statements cannot touch one key twice (PostgreSQL refuses an `ON CONFLICT` that
//! would), so a page that carries a record twice is cut before the repeat and written in order,
//! with the same outcome as record after record.

use std::collections::HashSet;

use plugboard_runtime::placeholders::Placeholders;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, AssertSqlSafe, Row, Transaction};

use crate::changes::Change;
use crate::error::Error;
use crate::store::StoredRecord;

/// Adds `value` to a statement's arguments (also used by [`crate::quarantine`]).
pub(crate) fn bind<'q, T>(arguments: &mut AnyArguments, value: T) -> Result<(), Error>
where
    T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
{
    arguments
        .add(value)
        .map_err(|error| Error::Storage(sqlx::Error::Encode(error)))
}

/// Runs of `records` with no key twice, each at most `longest` long.
fn runs_without_repeats(records: &[StoredRecord], longest: usize) -> Vec<&[StoredRecord]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut keys: HashSet<(&str, &str)> = HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let key = (record.entity.as_str(), record.external_id.as_str());
        if index - start == longest || keys.contains(&key) {
            runs.push(&records[start..index]);
            start = index;
            keys.clear();
        }
        keys.insert(key);
    }
    if start < records.len() {
        runs.push(&records[start..]);
    }
    runs
}

/// Upserts `records` by (tenant, connection, entity, external id); answers, per record in
/// order, whether it was written (new, changed content, or coming back from a tombstone).
pub async fn upsert_records(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    records: &[StoredRecord],
) -> Result<Vec<bool>, Error> {
    const COLUMNS: usize = 9;
    let mut written = Vec::with_capacity(records.len());
    let longest = Placeholders::rows_per_statement(COLUMNS);
    let marks = Placeholders::of(transaction);
    for run in runs_without_repeats(records, longest) {
        // First, so a record stored under another hash scheme with the same content has the
        // incoming hash when the upsert compares them (see `rehash`).
        crate::rehash::adopt_hashes(transaction, tenant_id, connection_id, run).await?;
        // An unchanged record is skipped by the WHERE and so not returned.
        let sql = format!(
            "INSERT INTO records (tenant_id, connection_id, entity, external_id, content_hash, \
             body_json, custom_fields_json, raw_payload_json, updated_at) VALUES {} \
             ON CONFLICT (tenant_id, connection_id, entity, external_id) DO UPDATE SET \
             content_hash = excluded.content_hash, body_json = excluded.body_json, \
             custom_fields_json = excluded.custom_fields_json, \
             raw_payload_json = excluded.raw_payload_json, updated_at = excluded.updated_at, \
             deleted_at = NULL \
             WHERE records.content_hash <> excluded.content_hash \
             OR records.deleted_at IS NOT NULL \
             RETURNING entity, external_id",
            marks.rows(1, run.len(), COLUMNS)
        );
        let mut arguments = AnyArguments::default();
        for record in run {
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, connection_id)?;
            bind(&mut arguments, record.entity.as_str())?;
            bind(&mut arguments, record.external_id.as_str())?;
            bind(&mut arguments, record.content_hash.as_str())?;
            bind(&mut arguments, record.body_json.as_str())?;
            bind(&mut arguments, record.custom_fields_json.as_str())?;
            bind(&mut arguments, record.raw_payload_json.as_str())?;
            bind(&mut arguments, record.updated_at.as_str())?;
        }
        // Built from constant text and numbered placeholders only.
        let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .fetch_all(&mut **transaction)
            .await?;
        let mut changed: HashSet<(String, String)> = HashSet::with_capacity(rows.len());
        for row in &rows {
            changed.insert((row.try_get("entity")?, row.try_get("external_id")?));
        }
        written.extend(
            run.iter().map(|record| {
                changed.contains(&(record.entity.clone(), record.external_id.clone()))
            }),
        );
    }
    Ok(written)
}

/// Appends `changes` to the tenant's change log at positions `first`, `first + 1`, ….
pub async fn insert_changes(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    changes: &[Change],
    first: i64,
    changed_at: &str,
) -> Result<(), Error> {
    const COLUMNS: usize = 7;
    let per_statement = Placeholders::rows_per_statement(COLUMNS);
    let marks = Placeholders::of(transaction);
    for (chunk_index, chunk) in changes.chunks(per_statement).enumerate() {
        let sql = format!(
            "INSERT INTO changes (tenant_id, position, connection_id, entity, external_id, \
             changed_at, deleted) VALUES {}",
            marks.rows(1, chunk.len(), COLUMNS)
        );
        let mut arguments = AnyArguments::default();
        let chunk_first = first + i64::try_from(chunk_index * per_statement).unwrap_or(0);
        for (offset, change) in chunk.iter().enumerate() {
            bind(&mut arguments, tenant_id)?;
            bind(
                &mut arguments,
                chunk_first + i64::try_from(offset).unwrap_or(0),
            )?;
            bind(&mut arguments, connection_id)?;
            bind(&mut arguments, change.entity.as_str())?;
            bind(&mut arguments, change.external_id.as_str())?;
            bind(&mut arguments, changed_at)?;
            bind(&mut arguments, i32::from(change.deleted))?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut **transaction)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> StoredRecord {
        StoredRecord {
            entity: "candidate".to_owned(),
            external_id: id.to_owned(),
            content_hash: String::new(),
            body_json: String::new(),
            custom_fields_json: String::new(),
            raw_payload_json: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_repeated_record_starts_a_new_statement() {
        let records: Vec<StoredRecord> = ["1", "2", "1", "3", "3"].map(record).to_vec();
        let runs: Vec<Vec<&str>> = runs_without_repeats(&records, 400)
            .iter()
            .map(|run| run.iter().map(|r| r.external_id.as_str()).collect())
            .collect();
        assert_eq!(runs, vec![vec!["1", "2"], vec!["1", "3"], vec!["3"]]);
        let many: Vec<StoredRecord> = (0..13).map(|n| record(&n.to_string())).collect();
        assert_eq!(runs_without_repeats(&many, 6).len(), 3);
    }
}
