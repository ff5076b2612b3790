//! The change log behind `WatchChanges`.
//!
//! Every record a page commit writes (new or changed content) gets a row numbered per tenant in
//! the same transaction, so the log never shows a change that was rolled back and never misses
//! one that was committed. Positions come from a per-tenant counter row updated under its row
//! lock, so replicas committing at once never hand out the same position.
//!
//! Watchers poll the log after their last position: at once when this replica commits, and at
//! least every second for commits of other replicas.

use std::sync::Arc;
use std::time::Duration;

use plugboard_proto::sync::v1::WatchChangesResponse;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{Notify, mpsc};
use tonic::Status;

use crate::error::Error;
use crate::record_codec;

/// How often a watcher looks for changes committed by other replicas.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const BATCH: i64 = 500;

/// A written record, to be logged.
#[derive(Debug, Clone)]
pub struct Change {
    pub entity: String,
    pub external_id: String,
    /// The partner no longer has the record.
    pub deleted: bool,
}

/// What a watcher asked for.
#[derive(Debug, Clone, Default)]
pub struct WatchFilter {
    pub after_position: u64,
    pub connection_id: String,
    pub entity: String,
}

/// Logs `changes` of one page inside its transaction.
pub async fn log_changes(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    changes: &[Change],
    changed_at: &str,
) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO change_positions (tenant_id, last_position) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE \
         SET last_position = change_positions.last_position + excluded.last_position \
         RETURNING last_position",
    )
    .bind(tenant_id)
    .bind(count)
    .fetch_one(&mut **transaction)
    .await?;
    let first = last - count + 1;
    crate::page_write::insert_changes(
        transaction,
        tenant_id,
        connection_id,
        changes,
        first,
        changed_at,
    )
    .await?;
    Ok(())
}

/// Reads the log and streams it to watchers.
#[derive(Clone)]
pub struct ChangeFeed {
    pool: AnyPool,
    committed: Arc<Notify>,
}

impl ChangeFeed {
    pub fn new(pool: AnyPool, committed: Arc<Notify>) -> ChangeFeed {
        ChangeFeed { pool, committed }
    }

    /// Streams the tenant's changes after `filter.after_position` until the receiver is dropped.
    pub fn watch(
        &self,
        tenant_id: String,
        filter: WatchFilter,
    ) -> mpsc::Receiver<Result<WatchChangesResponse, Status>> {
        let (sender, receiver) = mpsc::channel(64);
        let feed = self.clone();
        tokio::spawn(async move {
            let mut position = filter.after_position;
            loop {
                // Registered before reading, so a commit between the read and the wait wakes us.
                let committed = feed.committed.notified();
                let batch = match feed.read_after(&tenant_id, position, &filter).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender
                            .send(Err(plugboard_proto::error::to_status(&error)))
                            .await;
                        return;
                    }
                };
                if batch.is_empty() {
                    tokio::select! {
                        () = committed => {}
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                        () = sender.closed() => return,
                    }
                    continue;
                }
                for change in batch {
                    position = change.position;
                    if sender.send(Ok(change)).await.is_err() {
                        return;
                    }
                }
            }
        });
        receiver
    }

    async fn read_after(
        &self,
        tenant_id: &str,
        after_position: u64,
        filter: &WatchFilter,
    ) -> Result<Vec<WatchChangesResponse>, Error> {
        // Filtered rows still advance the position, so a filtered watcher does not re-read them.
        let rows = sqlx::query(
            "SELECT c.position, c.connection_id, c.entity, c.external_id, c.changed_at, c.deleted, \
             r.content_hash, r.body_json, r.custom_fields_json, r.raw_payload_json, r.updated_at \
             FROM changes c LEFT JOIN records r ON r.tenant_id = c.tenant_id \
             AND r.connection_id = c.connection_id AND r.entity = c.entity \
             AND r.external_id = c.external_id \
             WHERE c.tenant_id = $1 AND c.position > $2 \
             AND ($3 = '' OR c.connection_id = $3) AND ($4 = '' OR c.entity = $4) \
             ORDER BY c.position LIMIT $5",
        )
        .bind(tenant_id)
        .bind(i64::try_from(after_position).unwrap_or(i64::MAX))
        .bind(&filter.connection_id)
        .bind(&filter.entity)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from_row).collect()
    }
}

fn change_from_row(row: &sqlx::any::AnyRow) -> Result<WatchChangesResponse, Error> {
    let position: i64 = row.try_get("position")?;
    let connection_id: String = row.try_get("connection_id")?;
    let entity: String = row.try_get("entity")?;
    let external_id: String = row.try_get("external_id")?;
    let content_hash: Option<String> = row.try_get("content_hash")?;
    let deleted: i32 = row.try_get("deleted")?;
    let record = match content_hash {
        Some(content_hash) => Some(record_codec::from_stored(
            crate::store::StoredRecord {
                entity: entity.clone(),
                external_id: external_id.clone(),
                content_hash,
                body_json: row.try_get("body_json")?,
                custom_fields_json: row.try_get("custom_fields_json")?,
                raw_payload_json: row.try_get("raw_payload_json")?,
                updated_at: row.try_get("updated_at")?,
            },
            &connection_id,
        )?),
        None => None,
    };
    Ok(WatchChangesResponse {
        position: u64::try_from(position).unwrap_or(0),
        connection_id,
        entity,
        external_id,
        record,
        changed_at: row.try_get("changed_at")?,
        deleted: deleted != 0,
    })
}
