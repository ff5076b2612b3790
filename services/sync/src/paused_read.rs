//! A complete read that a used-up partner quota paused, kept so the run that resumes it is
//! still a complete read.
//!
//! A complete read (a full refresh, or a stream's first read from no checkpoint) tombstones the
//! stored records it did not see, which it may only do once it has seen everything. A quota
//! pause ends the run mid-read; the run that resumes it reads on from the checkpoint, and on its
//! own would see only the rest. So the paused run keeps what it had seen (the ids of its
//! committed pages) with the checkpoint it stopped at, and the resuming run starts from both:
//! its read is complete again and ends with the full-refresh difference. A full refresh paused
//! before it reached some streams marks them to be read from the start.
//!
//! The saved state holds only while the stream's checkpoint is the one it was saved with: a
//! run that moved the checkpoint without it (a failed resume that committed pages, say) leaves
//! it stale, and a stale state is ignored, so the read is incremental and deletes nothing.
//! Missing or stale state errs the same safe way. The state is dropped when the stream's read
//! ends.

use std::collections::HashSet;

use plugboard_runtime::storage::now_text;
use sqlx::Row;

use crate::error::Error;
use crate::store::Store;

/// Where a stream's read starts, given what a paused complete read left.
#[derive(Debug, Default)]
pub struct Resumption {
    /// The checkpoint to read from; empty reads from the start.
    pub checkpoint: String,
    /// True when the read sees everything the partner has (with `seen`).
    pub complete: bool,
    /// The ids the paused part of a complete read committed.
    pub seen: HashSet<String>,
}

/// Where an incremental read of `stream` starts: from its checkpoint, unless a paused complete
/// read of it is waiting to be finished.
pub async fn resume(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    stream: &str,
) -> Result<Resumption, Error> {
    let checkpoint = store
        .load_checkpoint(tenant_id, connection_id, stream)
        .await?
        .unwrap_or_default();
    let saved = sqlx::query(
        "SELECT checkpoint, from_start, seen_json FROM paused_complete_reads \
         WHERE tenant_id = $1 AND connection_id = $2 AND stream = $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(stream)
    .fetch_optional(store.pool())
    .await?;
    let Some(saved) = saved else {
        return Ok(Resumption {
            complete: checkpoint.is_empty(),
            checkpoint,
            seen: HashSet::new(),
        });
    };
    if saved.try_get::<i64, _>("from_start")? != 0 {
        tracing::info!(
            connection_id,
            stream,
            "a paused full refresh had not reached this stream: reading it from the start"
        );
        return Ok(Resumption {
            checkpoint: String::new(),
            complete: true,
            seen: HashSet::new(),
        });
    }
    let saved_checkpoint: String = saved.try_get("checkpoint")?;
    if saved_checkpoint != checkpoint {
        tracing::warn!(
            connection_id,
            stream,
            "the stream moved on since its complete read paused; reading on incrementally"
        );
        return Ok(Resumption {
            complete: checkpoint.is_empty(),
            checkpoint,
            seen: HashSet::new(),
        });
    }
    let seen_json: String = saved.try_get("seen_json")?;
    let seen: HashSet<String> = serde_json::from_str(&seen_json).map_err(|error| {
        Error::Corrupt(format!(
            "the saved ids of a paused read of {stream} do not parse: {error}"
        ))
    })?;
    tracing::info!(
        connection_id,
        stream,
        seen = seen.len(),
        "resuming a complete read that a partner quota paused"
    );
    Ok(Resumption {
        checkpoint,
        complete: true,
        seen,
    })
}

/// Keeps a complete read paused in a stream, at a checkpoint, with the ids it committed
/// (`paused`), and marks `unreached` streams (of a full refresh) to be read from the start.
pub async fn save(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    paused: Option<(&str, &str, &HashSet<String>)>,
    unreached: &[&str],
) -> Result<(), Error> {
    let mut rows = Vec::new();
    if let Some((stream, checkpoint, seen)) = paused {
        let seen_json = serde_json::to_string(seen)
            .map_err(|error| Error::Corrupt(format!("cannot encode the ids seen: {error}")))?;
        rows.push((stream, checkpoint, 0_i64, seen_json));
    }
    let now = now_text();
    let mut transaction = store.pool().begin().await?;
    rows.extend(
        unreached
            .iter()
            .map(|stream| (*stream, "", 1_i64, "[]".to_owned())),
    );
    for (stream, checkpoint, from_start, seen_json) in rows {
        sqlx::query(
            "INSERT INTO paused_complete_reads \
             (tenant_id, connection_id, stream, checkpoint, from_start, seen_json, paused_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, connection_id, stream) DO UPDATE SET \
             checkpoint = excluded.checkpoint, from_start = excluded.from_start, \
             seen_json = excluded.seen_json, paused_at = excluded.paused_at",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(stream)
        .bind(checkpoint)
        .bind(from_start)
        .bind(seen_json)
        .bind(&now)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    tracing::info!(
        connection_id,
        stream = paused.map(|(stream, _, _)| stream).unwrap_or(""),
        seen = paused.map(|(_, _, seen)| seen.len()).unwrap_or(0),
        unreached = unreached.len(),
        "kept the paused complete read for the run that resumes it"
    );
    Ok(())
}

/// Drops what a paused read of `stream` left: its read has ended, or a full refresh starts
/// it again.
pub async fn forget(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    stream: &str,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM paused_complete_reads WHERE tenant_id = $1 AND connection_id = $2 \
         AND stream = $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(stream)
    .execute(store.pool())
    .await?;
    Ok(())
}
