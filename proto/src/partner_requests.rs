//! Counting partner requests the same way everywhere: the connector runtime records them, sync
//! sums them, health reads rates and percentiles from them.

use std::time::Duration;

use crate::common::v1::{LatencyBucket, PartnerRequests};

/// Upper bounds of the latency buckets, in milliseconds; the last has no bound.
pub const LATENCY_BOUNDS_MILLIS: [u32; 11] = [
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    u32::MAX,
];

/// How the partner answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The HTTP status code of the answer.
    Status(u16),
    /// No answer: the connection failed or timed out.
    Transport,
}

impl PartnerRequests {
    /// Counts one request answered so, after `latency` (ignored without an answer).
    pub fn record(&mut self, answered: Answered, latency: Duration) {
        self.total = self.total.saturating_add(1);
        let status = match answered {
            Answered::Transport => {
                self.transport_errors = self.transport_errors.saturating_add(1);
                return;
            }
            Answered::Status(status) => status,
        };
        let class = match status {
            429 => &mut self.status_429,
            200..=399 => &mut self.status_2xx,
            400..=499 => &mut self.status_4xx,
            _ => &mut self.status_5xx,
        };
        *class = class.saturating_add(1);
        let millis = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
        let bound = LATENCY_BOUNDS_MILLIS
            .into_iter()
            .find(|bound| millis <= *bound)
            .unwrap_or(u32::MAX);
        self.add_latency(bound, 1);
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &PartnerRequests) {
        self.total = self.total.saturating_add(other.total);
        self.status_2xx = self.status_2xx.saturating_add(other.status_2xx);
        self.status_4xx = self.status_4xx.saturating_add(other.status_4xx);
        self.status_429 = self.status_429.saturating_add(other.status_429);
        self.status_5xx = self.status_5xx.saturating_add(other.status_5xx);
        self.transport_errors = self.transport_errors.saturating_add(other.transport_errors);
        for bucket in &other.latency {
            self.add_latency(bucket.le_millis, bucket.count);
        }
    }

    /// Requests that failed at the partner: 4xx other than 429, 5xx, and no answer. A 429 is
    /// the partner pacing us, waited out and counted apart.
    pub fn errors(&self) -> u32 {
        self.status_4xx
            .saturating_add(self.status_5xx)
            .saturating_add(self.transport_errors)
    }

    /// The smallest bucket bound under which at least `percent` of the answers arrived; None
    /// without answers.
    pub fn latency_percentile_millis(&self, percent: u32) -> Option<u32> {
        let answered: u64 = self.latency.iter().map(|b| u64::from(b.count)).sum();
        if answered == 0 {
            return None;
        }
        // Ceiling, so p95 of 20 answers is the 19th, not the 18th.
        let wanted = (answered * u64::from(percent)).div_ceil(100).max(1);
        let mut buckets: Vec<&LatencyBucket> = self.latency.iter().collect();
        buckets.sort_by_key(|bucket| bucket.le_millis);
        let mut seen = 0;
        buckets.into_iter().find_map(|bucket| {
            seen += u64::from(bucket.count);
            (seen >= wanted).then_some(bucket.le_millis)
        })
    }

    fn add_latency(&mut self, le_millis: u32, count: u32) {
        match self.latency.iter_mut().find(|b| b.le_millis == le_millis) {
            Some(bucket) => bucket.count = bucket.count.saturating_add(count),
            None => {
                self.latency.push(LatencyBucket { le_millis, count });
                self.latency.sort_by_key(|bucket| bucket.le_millis);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fall_into_their_class_and_bucket() {
        let mut requests = PartnerRequests::default();
        requests.record(Answered::Status(200), Duration::from_millis(20));
        requests.record(Answered::Status(201), Duration::from_millis(300));
        requests.record(Answered::Status(404), Duration::from_millis(30));
        requests.record(Answered::Status(429), Duration::from_millis(10));
        requests.record(Answered::Status(503), Duration::from_millis(40));
        requests.record(Answered::Transport, Duration::from_secs(30));
        assert_eq!(requests.total, 6);
        assert_eq!(
            (
                requests.status_2xx,
                requests.status_4xx,
                requests.status_429,
                requests.status_5xx,
                requests.transport_errors
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(requests.errors(), 3);
        let bounds: Vec<(u32, u32)> = requests
            .latency
            .iter()
            .map(|b| (b.le_millis, b.count))
            .collect();
        assert_eq!(bounds, [(25, 2), (50, 2), (500, 1)]);
    }

    #[test]
    fn merged_counts_add_up_and_percentiles_read_the_buckets() {
        let mut fast = PartnerRequests::default();
        for _ in 0..19 {
            fast.record(Answered::Status(200), Duration::from_millis(80));
        }
        let mut slow = PartnerRequests::default();
        slow.record(Answered::Status(200), Duration::from_secs(7));
        let mut run = PartnerRequests::default();
        run.merge(&slow);
        run.merge(&fast);
        assert_eq!(run.total, 20);
        assert_eq!(run.latency_percentile_millis(50), Some(100));
        // 19 of 20 answers took at most 100 ms: p95 is the 19th, p99 the 20th.
        assert_eq!(run.latency_percentile_millis(95), Some(100));
        assert_eq!(run.latency_percentile_millis(99), Some(10_000));
        assert_eq!(
            PartnerRequests::default().latency_percentile_millis(95),
            None
        );
    }
}
