//! A partner quota used up mid-read: the run pauses with its checkpoint and resumes after the
//! reset, without reading again what it committed.
//!
//! The connector runtime tells a used-up quota (a 429 whose wait is longer than a read may sit
//! through, a daily quota, say) from a passing rate limit, and answers the read with
//! `PARTNER_QUOTA_EXHAUSTED` and the reset delay as a `RetryInfo` detail. The run then stops
//! after its last committed page (the page in hand is committed first), is recorded as paused
//! with its reason, and the sync gets `resumes_at`: the scheduler of any replica starts it
//! again then, from the checkpoint, even when the sync is otherwise manual. Health is told the
//! run paused and when it resumes. A complete read that pauses (a full refresh, a first read)
//! keeps what it had seen ([`crate::paused_read`]), so the run that resumes it still ends with
//! the full-refresh difference.

use plugboard_proto::error::{reason_of, retry_delay_of};
use plugboard_runtime::storage::format_time;

use crate::error::Error;
use crate::store::Store;

/// The connector's reason for a used-up partner quota.
pub const PARTNER_QUOTA_EXHAUSTED: &str = "PARTNER_QUOTA_EXHAUSTED";

/// When a connector says the quota is used up but not when it resets: try again in an hour.
const UNKNOWN_RESET: chrono::Duration = chrono::Duration::hours(1);

/// The error a failed connector read means: a used-up quota with its reset time, or a
/// dependency failure.
pub fn read_error(status: &tonic::Status) -> Error {
    if reason_of(status).as_deref() != Some(PARTNER_QUOTA_EXHAUSTED) {
        return Error::dependency("connector", status);
    }
    let wait = retry_delay_of(status)
        .and_then(|delay| chrono::Duration::from_std(delay).ok())
        .unwrap_or(UNKNOWN_RESET);
    Error::QuotaExhausted {
        resumes_at: format_time(chrono::Utc::now() + wait),
    }
}

/// Makes the tenant's sync due again at `resumes_at`, whatever its schedule.
pub async fn pause_until(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    resumes_at: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE syncs SET resumes_at = $3, next_run_at = $3 \
         WHERE tenant_id = $1 AND connection_id = $2",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(resumes_at)
    .execute(store.pool())
    .await?;
    tracing::info!(
        tenant_id,
        connection_id,
        resumes_at,
        "run paused until the partner quota resets"
    );
    Ok(())
}

/// Called by a run that starts: a pause is over. A manual sync is no longer due.
pub async fn resumed(store: &Store, tenant_id: &str, connection_id: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE syncs SET resumes_at = NULL, next_run_at = CASE \
         WHEN interval_seconds = 0 AND cron = '' THEN NULL ELSE next_run_at END \
         WHERE tenant_id = $1 AND connection_id = $2 AND resumes_at IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .execute(store.pool())
    .await?;
    Ok(())
}
