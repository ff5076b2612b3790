//! SQLite's write-ahead log checkpointed in the background, off the audit commit path.
//!
//! SQLite copies its write-ahead log back into the database file (a checkpoint, with an fsync)
//! inside whichever commit takes the log past 1,000 pages. Under leases that is an audit
//! batch's commit, so every lease waiting on it stalled: the lease bench's SQLite p99 was 4.8 to
//! 6.6 ms with those checkpoints and 1.5 to 3.0 ms without them (`benches/RESULTS.md`). The
//! audit writer's connection therefore does not checkpoint ([`NO_AUTOCHECKPOINT`]) and this
//! task does, every second, in passive mode: it never waits for the writer, and a commit never
//! waits for it. Other connections keep SQLite's automatic checkpoints.

use std::time::Duration;

use sqlx::AnyPool;

/// Run on the audit writer's SQLite connection.
pub(crate) const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0";

/// How often the log is checkpointed; a second of audit rows is far below 1,000 pages.
const EVERY: Duration = Duration::from_secs(1);

/// The checkpoint task; it stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    pub(crate) fn spawn(pool: AnyPool) -> Checkpointer {
        Checkpointer(tokio::spawn(checkpoint_forever(pool)))
    }
}

async fn checkpoint_forever(pool: AnyPool) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let checkpointed = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await;
        if let Err(error) = checkpointed {
            tracing::warn!(error = %error, "cannot checkpoint the SQLite write-ahead log");
        }
    }
}
