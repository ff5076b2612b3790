//! Counts the partner requests of one read, so health can tell a partner that errs or answers
//! slowly from one that works.
//!
//! Every request goes through [`crate::http::Http`], reached from logins, pages, deletes and
//! session renewals alike; threading a counter through each of those signatures would touch
//! every caller for one number. Instead a read runs inside [`PartnerCalls::scope`] and the
//! HTTP layer records each attempt into the read's counter through a task-local, which is a
//! no-op for requests outside a read (check, write, webhooks).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plugboard_proto::common::v1::PartnerRequests;
use plugboard_proto::partner_requests::Answered;

tokio::task_local! {
    static CURRENT: PartnerCalls;
}

/// The requests of one read since they were last taken.
#[derive(Debug, Clone, Default)]
pub struct PartnerCalls {
    counted: Arc<Mutex<PartnerRequests>>,
}

impl PartnerCalls {
    /// Runs `future` with every partner request it makes counted here.
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        CURRENT.scope(self.clone(), future).await
    }

    /// The requests counted since the last take, leaving none.
    pub fn take(&self) -> PartnerRequests {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PartnerRequests> {
        // Plain counters; a panic elsewhere cannot leave them half-written.
        self.counted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records one request in the read it belongs to, if any.
pub fn record(answered: Answered, latency: Duration) {
    // Outside a read (check, write, webhook) nobody counts: that is not an error.
    let _ = CURRENT.try_with(|calls| calls.lock().record(answered, latency));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_count_inside_the_scope_only() {
        record(Answered::Status(200), Duration::from_millis(5));
        let calls = PartnerCalls::default();
        calls
            .scope(async {
                record(Answered::Status(200), Duration::from_millis(5));
                record(Answered::Status(500), Duration::from_millis(5));
            })
            .await;
        let taken = calls.take();
        assert_eq!((taken.total, taken.status_5xx), (2, 1));
        assert_eq!(calls.take().total, 0, "taking leaves none");
    }
}
