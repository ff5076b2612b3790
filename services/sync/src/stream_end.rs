//! The deletions a read finds, committed in the transaction of the stream's last page.
//!
//! A read learns of deletions two ways: the partner's deleted-records endpoint lists them
//! along the way, and a complete read (from no checkpoint) proves that stored records it did
//! not see are gone. Both are known for sure only once the read has reached its end without an
//! error, and both must land with the checkpoint that ends the read: committed apart, a crash
//! between the two would advance the checkpoint past deletions never applied.

use std::collections::HashSet;

use sqlx::{Any, Transaction};

use crate::changes::Change;
use crate::error::Error;

/// What a stream's last page commits besides its own records.
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd<'a> {
    /// The canonical entity of the stream's records.
    pub entity: &'a str,
    /// Ids the partner's deleted-records endpoint listed during the read.
    pub reported_deleted: &'a [String],
    /// Every id a complete read saw, last page included; `None` for an incremental read,
    /// whose absent records prove nothing.
    pub seen: Option<&'a HashSet<String>>,
}

/// Tombstones what `end` says is gone, inside `transaction`; returns the deletions to log.
pub(crate) async fn apply(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    end: &StreamEnd<'_>,
    now: &str,
) -> Result<Vec<Change>, Error> {
    let mut gone: Vec<String> = end.reported_deleted.to_vec();
    if let Some(seen) = end.seen {
        gone.extend(missing(transaction, tenant_id, connection_id, end.entity, seen).await?);
    }
    gone.sort();
    gone.dedup();
    let mut deletions = Vec::new();
    for external_id in gone {
        let tombstoned = sqlx::query(
            "UPDATE records SET deleted_at = $5 WHERE tenant_id = $1 AND connection_id = $2 \
             AND entity = $3 AND external_id = $4 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(end.entity)
        .bind(&external_id)
        .bind(now)
        .execute(&mut **transaction)
        .await?
        .rows_affected();
        if tombstoned > 0 {
            deletions.push(Change {
                entity: end.entity.to_owned(),
                external_id,
                deleted: true,
            });
        }
    }
    if !deletions.is_empty() {
        tracing::info!(
            connection_id,
            entity = end.entity,
            deleted = deletions.len(),
            "records gone at the partner tombstoned with the read's last page"
        );
    }
    Ok(deletions)
}

/// The live records of `entity` a complete read did not see.
async fn missing(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    seen: &HashSet<String>,
) -> Result<Vec<String>, Error> {
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT external_id FROM records WHERE tenant_id = $1 AND connection_id = $2 \
         AND entity = $3 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(entity)
    .fetch_all(&mut **transaction)
    .await?;
    if seen.is_empty() {
        // A partner answering a complete read with nothing is far likelier broken than
        // empty; deleting everything on its word would be the worse mistake.
        if !live.is_empty() {
            tracing::warn!(
                connection_id,
                entity,
                live = live.len(),
                "a complete read returned no records; not deleting the stored ones"
            );
        }
        return Ok(Vec::new());
    }
    Ok(live.into_iter().filter(|id| !seen.contains(id)).collect())
}
