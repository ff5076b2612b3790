//! The tables behind webhook ingestion: the durable event log (one row per partner event id)
//! and the tombstones events and deleted-records endpoints write into the record store.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::changes::{Change, log_changes};
use crate::error::Error;
use crate::store::Store;

/// What an event did; the `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    ReadPending,
    ReadStarted,
    Tombstoned,
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ReadPending => "read_pending",
            Outcome::ReadStarted => "read_started",
            Outcome::Tombstoned => "tombstoned",
            Outcome::Ignored => "ignored",
        }
    }
}

/// One received event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub entity: String,
    pub external_id: String,
    pub stream: String,
    /// RFC 3339 UTC, or empty.
    pub occurred_at: String,
    pub deleted: bool,
    pub received_at: String,
}

/// A stream of a connection with events waiting for a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRead {
    pub tenant_id: String,
    pub connection_id: String,
    pub stream: String,
}

/// Records the event with `outcome`; false (and nothing written) when its id was seen before.
pub async fn record_event(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    event: &StoredEvent,
    outcome: Outcome,
) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (tenant_id, connection_id, event_id, event_type, entity, \
         external_id, stream, occurred_at, deleted, outcome, run_id, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11) \
         ON CONFLICT (tenant_id, connection_id, event_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(&event.event_id)
    .bind(&event.event_type)
    .bind(&event.entity)
    .bind(&event.external_id)
    .bind(&event.stream)
    .bind(&event.occurred_at)
    .bind(i32::from(event.deleted))
    .bind(outcome.as_str())
    .bind(&event.received_at)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Whether the event id was received before.
pub async fn seen(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    event_id: &str,
) -> Result<bool, Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_events WHERE tenant_id = $1 AND connection_id = $2 \
         AND event_id = $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(event_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(found.is_some())
}

/// The newest partner time the store knows for a record: the stored payload's `cursor_field`
/// and every event about the record that changed something. `None` when it knows none.
pub async fn newest_known(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    external_id: &str,
    cursor_field: &str,
) -> Result<Option<DateTime<Utc>>, Error> {
    let mut newest: Option<DateTime<Utc>> = None;
    if !cursor_field.is_empty() {
        let payload: Option<String> = sqlx::query_scalar(
            "SELECT raw_payload_json FROM records WHERE tenant_id = $1 AND connection_id = $2 \
             AND entity = $3 AND external_id = $4",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .bind(external_id)
        .fetch_optional(store.pool())
        .await?;
        if let Some(payload) = payload
            && let Ok(payload) = serde_json::from_str::<Value>(&payload)
        {
            let value = if cursor_field.starts_with('/') {
                payload.pointer(cursor_field)
            } else {
                payload.get(cursor_field)
            };
            newest = value.and_then(partner_time);
        }
    }
    let rows = sqlx::query(
        "SELECT occurred_at FROM webhook_events WHERE tenant_id = $1 AND connection_id = $2 \
         AND entity = $3 AND external_id = $4 AND occurred_at <> '' AND outcome <> 'ignored'",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(entity)
    .bind(external_id)
    .fetch_all(store.pool())
    .await?;
    for row in rows {
        let text: String = row.try_get("occurred_at")?;
        if let Some(time) = parse_time(&text) {
            newest = Some(newest.map_or(time, |known| known.max(time)));
        }
    }
    Ok(newest)
}

/// Tombstones the live records among `external_ids` and logs their deletions on the change
/// feed, in one transaction; returns the ids that were live.
pub async fn tombstone(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    external_ids: &[String],
) -> Result<Vec<String>, Error> {
    let unique: HashSet<&String> = external_ids.iter().collect();
    let now = plugboard_runtime::storage::now_text();
    let mut transaction = store.pool().begin().await?;
    let mut tombstoned = Vec::new();
    for external_id in unique {
        let changed = sqlx::query(
            "UPDATE records SET deleted_at = $5 WHERE tenant_id = $1 AND connection_id = $2 \
             AND entity = $3 AND external_id = $4 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .bind(external_id)
        .bind(&now)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if changed > 0 {
            tombstoned.push(external_id.clone());
        }
    }
    tombstoned.sort();
    let changes: Vec<Change> = tombstoned
        .iter()
        .map(|external_id| Change {
            entity: entity.to_owned(),
            external_id: external_id.clone(),
            deleted: true,
        })
        .collect();
    log_changes(&mut transaction, tenant_id, connection_id, &changes, &now).await?;
    transaction.commit().await?;
    if !tombstoned.is_empty() {
        store.notify_committed();
    }
    Ok(tombstoned)
}

/// Streams with events waiting for a read, oldest first, at most `limit`.
pub async fn pending_reads(store: &Store, limit: i64) -> Result<Vec<PendingRead>, Error> {
    let rows = sqlx::query(
        "SELECT tenant_id, connection_id, stream, MIN(received_at) AS first_received \
         FROM webhook_events WHERE outcome = 'read_pending' \
         GROUP BY tenant_id, connection_id, stream ORDER BY first_received LIMIT $1",
    )
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PendingRead {
                tenant_id: row.try_get("tenant_id")?,
                connection_id: row.try_get("connection_id")?,
                stream: row.try_get("stream")?,
            })
        })
        .collect()
}

/// Marks the stream's events received up to `received_by` as read by `run_id`: the run
/// started after they arrived, so it reads what they announced.
pub async fn mark_read(
    store: &Store,
    pending: &PendingRead,
    received_by: &str,
    run_id: &str,
) -> Result<u64, Error> {
    let marked = sqlx::query(
        "UPDATE webhook_events SET outcome = 'read_started', run_id = $5 \
         WHERE tenant_id = $1 AND connection_id = $2 AND stream = $3 \
         AND outcome = 'read_pending' AND received_at <= $4",
    )
    .bind(&pending.tenant_id)
    .bind(&pending.connection_id)
    .bind(&pending.stream)
    .bind(received_by)
    .bind(run_id)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(marked)
}

/// Marks the connection's pending events of a stream the sync no longer reads as ignored.
pub async fn drop_pending(store: &Store, pending: &PendingRead) -> Result<u64, Error> {
    let dropped = sqlx::query(
        "UPDATE webhook_events SET outcome = 'ignored' WHERE tenant_id = $1 \
         AND connection_id = $2 AND stream = $3 AND outcome = 'read_pending'",
    )
    .bind(&pending.tenant_id)
    .bind(&pending.connection_id)
    .bind(&pending.stream)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(dropped)
}

/// The connection's events, newest first, at most `limit`: for tests and support.
pub async fn list_events(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    limit: i64,
) -> Result<Vec<(StoredEvent, String)>, Error> {
    let rows = sqlx::query(
        "SELECT event_id, event_type, entity, external_id, stream, occurred_at, deleted, \
         outcome, received_at FROM webhook_events WHERE tenant_id = $1 AND connection_id = $2 \
         ORDER BY received_at DESC, event_id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let deleted: i32 = row.try_get("deleted")?;
            Ok((
                StoredEvent {
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    entity: row.try_get("entity")?,
                    external_id: row.try_get("external_id")?,
                    stream: row.try_get("stream")?,
                    occurred_at: row.try_get("occurred_at")?,
                    deleted: deleted != 0,
                    received_at: row.try_get("received_at")?,
                },
                row.try_get("outcome")?,
            ))
        })
        .collect()
}

/// A partner time written as RFC 3339 text or epoch seconds (milliseconds past 10^11).
fn partner_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => parse_time(text),
        Value::Number(number) => {
            let number = number.as_i64()?;
            if number.abs() > 100_000_000_000 {
                DateTime::from_timestamp_millis(number)
            } else {
                DateTime::from_timestamp(number, 0)
            }
        }
        _ => None,
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}
