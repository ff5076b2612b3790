//! Quarantined records and their resolution by a later import.
//!
//! A record that could not be mapped is kept in quarantine with its reason. When a later page
//! imports the same record (same connection, stream and external id; a stream maps to one
//! entity), its unresolved entries are marked resolved, with when and by which run, in that
//! page's transaction: the import and the resolution are committed together or not at all.
//! `ListQuarantine` lists unresolved entries unless asked for every one. Rejects that came
//! without an external id cannot be matched and stay unresolved.

use plugboard_runtime::placeholders::{PARAMETER_BUDGET, Placeholders};
use sqlx::any::AnyArguments;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use crate::error::Error;
use crate::page_write::bind;
use crate::store::{QuarantineEntry, StoredRecord};

/// Parameters of the resolving statement besides the page's external ids.
const FIXED_PARAMETERS: usize = 5;

/// When an entry was resolved and by which run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub resolved_at: String,
    /// Empty for a page committed outside a run.
    pub run_id: String,
}

/// A quarantine entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub entry: QuarantineEntry,
    /// None while no later import has resolved it.
    pub resolution: Option<Resolution>,
}

/// Marks resolved the unresolved entries of `records`, the records a page of `stream` imports,
/// in the page's transaction; answers how many it resolved. One statement for a page (the
/// ids of a very large page are split to stay within the parameter budget).
pub(crate) async fn resolve_imported(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    stream: &str,
    records: &[StoredRecord],
    run_id: Option<&str>,
) -> Result<u64, Error> {
    if records.is_empty() || !any_unresolved(transaction, tenant_id, connection_id, stream).await? {
        return Ok(0);
    }
    let resolved_at = plugboard_runtime::storage::now_text();
    let marks = Placeholders::of(transaction);
    let mut resolved = 0;
    for chunk in records.chunks(PARAMETER_BUDGET - FIXED_PARAMETERS) {
        let sql = format!(
            "UPDATE quarantine SET resolved_at = {}, resolved_by_run_id = {} \
             WHERE tenant_id = {} AND connection_id = {} AND stream = {} \
             AND resolved_at IS NULL AND external_id IN ({})",
            marks.one(1),
            marks.one(2),
            marks.one(3),
            marks.one(4),
            marks.one(5),
            marks.list(FIXED_PARAMETERS + 1, chunk.len())
        );
        let mut arguments = AnyArguments::default();
        bind(&mut arguments, resolved_at.as_str())?;
        bind(&mut arguments, run_id.unwrap_or_default())?;
        bind(&mut arguments, tenant_id)?;
        bind(&mut arguments, connection_id)?;
        bind(&mut arguments, stream)?;
        for record in chunk {
            bind(&mut arguments, record.external_id.as_str())?;
        }
        // Built from constant text and placeholders only.
        let done = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut **transaction)
            .await?;
        resolved += done.rows_affected();
    }
    if resolved > 0 {
        tracing::debug!(
            tenant_id,
            connection_id,
            stream,
            run_id,
            resolved,
            "quarantined records resolved by their import"
        );
    }
    Ok(resolved)
}

/// True when the stream has an unresolved entry: one probe of the partial index
/// `quarantine_unresolved_by_record`, so that a page of a stream with nothing in quarantine (the
/// usual case) skips the update of its whole list of ids.
async fn any_unresolved(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    stream: &str,
) -> Result<bool, Error> {
    let found = sqlx::query(
        "SELECT 1 AS found FROM quarantine WHERE tenant_id = $1 AND connection_id = $2 \
         AND stream = $3 AND resolved_at IS NULL LIMIT 1",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(stream)
    .fetch_optional(&mut **transaction)
    .await?;
    Ok(found.is_some())
}

/// The quarantine of one store, for listing.
#[derive(Clone)]
pub struct Quarantine {
    pool: AnyPool,
}

impl Quarantine {
    pub(crate) fn new(pool: AnyPool) -> Quarantine {
        Quarantine { pool }
    }

    /// A page of the connection's entries in id order after `after_id`: unresolved ones only,
    /// or every one with `include_resolved`.
    pub async fn list(
        &self,
        tenant_id: &str,
        connection_id: &str,
        after_id: &str,
        limit: u32,
        include_resolved: bool,
    ) -> Result<Vec<Listed>, Error> {
        let unresolved_only = if include_resolved {
            ""
        } else {
            "AND resolved_at IS NULL "
        };
        let sql = format!(
            "SELECT id, run_id, stream, external_id, payload_json, reason, field_path, \
             quarantined_at, resolved_at, resolved_by_run_id FROM quarantine \
             WHERE tenant_id = $1 AND connection_id = $2 AND id > $3 {unresolved_only}\
             ORDER BY id LIMIT $4"
        );
        // Built from constant text only.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(connection_id)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let resolved_at: Option<String> = row.try_get("resolved_at")?;
                let run_id: Option<String> = row.try_get("resolved_by_run_id")?;
                Ok(Listed {
                    entry: QuarantineEntry {
                        id: row.try_get("id")?,
                        run_id: row.try_get("run_id")?,
                        stream: row.try_get("stream")?,
                        external_id: row.try_get("external_id")?,
                        payload_json: row.try_get("payload_json")?,
                        reason: row.try_get("reason")?,
                        field_path: row.try_get("field_path")?,
                        quarantined_at: row.try_get("quarantined_at")?,
                    },
                    resolution: resolved_at.map(|resolved_at| Resolution {
                        resolved_at,
                        run_id: run_id.unwrap_or_default(),
                    }),
                })
            })
            .collect()
    }
}
