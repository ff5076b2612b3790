//! Retention of settled pushes: a push is the record of its idempotency key, kept while a
//! caller may still retry it, then purged so the outbox does not grow for ever.
//!
//! Every replica runs the purge; deleting rows that another replica deleted first is a no-op,
//! so they need no coordination.

use std::time::Duration;

use plugboard_runtime::storage::format_time;

use crate::error::Error;
use crate::outbox::Outbox;

/// How often settled pushes past the retention are looked for.
const PURGE_TICK: Duration = Duration::from_secs(3600);
/// Rows deleted per statement, so a first purge of a large outbox never holds a long lock.
const PURGE_BATCH: i64 = 1000;

/// Purges settled pushes older than `keep` every [`PURGE_TICK`], for ever.
pub async fn run(outbox: Outbox, keep: Duration) {
    let mut interval = tokio::time::interval(PURGE_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match purge(&outbox, keep, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => {
                tracing::info!(purged, ?keep, "settled pushes past their retention purged")
            }
            Err(error) => tracing::warn!(error = %error, "cannot purge settled pushes"),
        }
    }
}

/// One purge at `now`: every settled push last changed more than `keep` before it.
pub async fn purge(
    outbox: &Outbox,
    keep: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, Error> {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let Some(before) = now.checked_sub_signed(keep) else {
        return Ok(0);
    };
    let before = format_time(before);
    let mut purged = 0;
    loop {
        let batch = outbox.purge_settled(&before, PURGE_BATCH).await?;
        purged += batch;
        if batch < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}
