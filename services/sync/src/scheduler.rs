//! Starts scheduled syncs when they are due.
//!
//! Every replica runs a scheduler; the run lease makes sure a due sync runs once even when
//! several replicas see it due at the same tick. A sync is due at its `next_run_at`, which the
//! scheduler moves to the next occurrence of its schedule ([`crate::schedule`]: an interval
//! from now, or the cron expression's next time after now, in UTC) before it starts the run.

use std::time::Duration;

use plugboard_runtime::storage::{format_time, now_text};

use crate::error::Error;
use crate::runner::{ReadMode, Runner};
use crate::schedule::Schedule;
use crate::store::Store;

pub async fn run(store: Store, runner: Runner, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = start_due(&store, &runner).await {
            tracing::warn!(error = %error, "scheduler pass failed");
        }
    }
}

/// One pass: starts every sync due now. Public so tests can drive the scheduler tick by tick.
pub async fn start_due(store: &Store, runner: &Runner) -> Result<(), Error> {
    for sync in store.due_syncs(&now_text()).await? {
        let connection_id = sync.connection_id.clone();
        let schedule = match Schedule::of(&sync) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::warn!(connection_id, error = %error, "scheduled sync skipped");
                continue;
            }
        };
        let next = schedule.next_after(chrono::Utc::now()).map(format_time);
        if let Some(next) = &next {
            store
                .set_next_run(&sync.tenant_id, &sync.connection_id, next)
                .await?;
        }
        match runner.start(sync, ReadMode::Incremental).await {
            Ok(run_id) => {
                tracing::debug!(run_id, connection_id, next = ?next, "scheduled run started")
            }
            Err(Error::RunInProgress { .. }) => {
                tracing::debug!(connection_id, "scheduled run skipped: one is in progress")
            }
            Err(error) => {
                tracing::warn!(connection_id, error = %error, "scheduled run not started")
            }
        }
    }
    Ok(())
}
