//! The partner's own health as the connector saw it in the last run: how often it answered
//! with an error and how slowly it answered. A run can complete with every record read and
//! still have needed retry after retry, which is the partner failing slowly; customers want to
//! hear that before the run that fails outright.

use plugboard_proto::common::v1::PartnerRequests;
use serde::{Deserialize, Serialize};

/// Fewer requests than this say too little about a rate to judge it.
pub const MIN_REQUESTS: u32 = 5;
/// The share of requests answered with an error, in percent, from which a run counts as
/// troubled: one retried blip in a run of ten pages is below it, a partner failing every third
/// request is above.
pub const ERROR_PERCENT: u32 = 20;
/// The 95th-percentile answer time, in milliseconds, above which the partner counts as slow:
/// a page that takes longer than this is felt by every run of a large stream.
pub const SLOW_P95_MILLIS: u32 = 5_000;

/// What the last run's partner requests came to, as kept with the integration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub total: u32,
    /// 4xx other than 429, 5xx, and no answer.
    pub errors: u32,
    pub server_errors: u32,
    pub transport_errors: u32,
    pub rate_limited: u32,
    /// Bucket bounds; None without answers.
    pub p50_millis: Option<u32>,
    pub p95_millis: Option<u32>,
}

impl RequestSummary {
    pub fn of(requests: &PartnerRequests) -> RequestSummary {
        RequestSummary {
            total: requests.total,
            errors: requests.errors(),
            server_errors: requests.status_5xx,
            transport_errors: requests.transport_errors,
            rate_limited: requests.status_429,
            p50_millis: requests.latency_percentile_millis(50),
            p95_millis: requests.latency_percentile_millis(95),
        }
    }
}

/// The partner's part of an integration's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerFacts {
    /// The manifest's display name; empty until a reporter gave it.
    #[serde(default)]
    pub display_name: String,
    /// The partner requests of the last reported run; None when it did not count them.
    #[serde(default)]
    pub last_run: Option<RequestSummary>,
}

/// What is wrong with the partner's answers in the last run, if anything: a reason and the
/// action, for a degraded status.
pub fn trouble(summary: &RequestSummary, partner: &str) -> Option<(String, String)> {
    if summary.total < MIN_REQUESTS {
        return None;
    }
    let percent = summary.errors.saturating_mul(100) / summary.total;
    if percent >= ERROR_PERCENT {
        let mut kinds = Vec::new();
        if summary.server_errors > 0 {
            kinds.push(count(
                summary.server_errors,
                "server error",
                "server errors",
            ));
        }
        if summary.transport_errors > 0 {
            kinds.push(count(
                summary.transport_errors,
                "request unanswered",
                "requests unanswered",
            ));
        }
        let refused = summary.errors - summary.server_errors - summary.transport_errors;
        if refused > 0 {
            kinds.push(count(refused, "request refused", "requests refused"));
        }
        let reason = format!(
            "{partner} answered {percent}% of requests with errors in the last run ({} of {}: \
             {}); the sync retried them",
            summary.errors,
            summary.total,
            kinds.join(", ")
        );
        let action = format!(
            "Nothing yet: the next sync retries automatically. If this continues, check \
             {partner}'s service status"
        );
        return Some((reason, action));
    }
    match summary.p95_millis {
        Some(p95) if p95 > SLOW_P95_MILLIS => {
            let reason = format!(
                "{partner} answered slowly in the last run: the slowest 5% of its answers took \
                 more than {} seconds each",
                SLOW_P95_MILLIS / 1000
            );
            let action = format!(
                "Nothing yet: syncs take longer but still complete. If this continues, check \
                 {partner}'s service status"
            );
            Some((reason, action))
        }
        _ => None,
    }
}

fn count(number: u32, one: &str, many: &str) -> String {
    if number == 1 {
        format!("1 {one}")
    } else {
        format!("{number} {many}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use plugboard_proto::partner_requests::Answered;

    use super::*;

    fn requests(ok: u32, server_errors: u32, refused: u32, latency: Duration) -> PartnerRequests {
        let mut requests = PartnerRequests::default();
        for _ in 0..ok {
            requests.record(Answered::Status(200), latency);
        }
        for _ in 0..server_errors {
            requests.record(Answered::Status(502), Duration::from_millis(30));
        }
        for _ in 0..refused {
            requests.record(Answered::Status(403), Duration::from_millis(30));
        }
        requests
    }

    #[test]
    fn a_high_error_rate_is_trouble_with_the_share_and_the_kinds() {
        let summary = RequestSummary::of(&requests(20, 10, 2, Duration::from_millis(80)));
        let (reason, action) = trouble(&summary, "Bullhorn").unwrap();
        assert_eq!(
            reason,
            "Bullhorn answered 37% of requests with errors in the last run (12 of 32: 10 \
             server errors, 2 requests refused); the sync retried them"
        );
        assert!(action.contains("Bullhorn's service status"), "{action}");
    }

    #[test]
    fn a_blip_or_too_few_requests_are_no_trouble() {
        let blip = RequestSummary::of(&requests(19, 1, 0, Duration::from_millis(80)));
        assert_eq!(trouble(&blip, "Bullhorn"), None);
        let few = RequestSummary::of(&requests(2, 2, 0, Duration::from_millis(80)));
        assert_eq!(trouble(&few, "Bullhorn"), None);
    }

    #[test]
    fn rate_limits_are_not_errors() {
        let mut paced = requests(10, 0, 0, Duration::from_millis(80));
        for _ in 0..10 {
            paced.record(Answered::Status(429), Duration::from_millis(5));
        }
        assert_eq!(trouble(&RequestSummary::of(&paced), "Bullhorn"), None);
    }

    #[test]
    fn a_slow_partner_is_trouble_a_quick_one_is_not() {
        let slow = RequestSummary::of(&requests(10, 0, 0, Duration::from_secs(8)));
        let (reason, _) = trouble(&slow, "Bullhorn").unwrap();
        assert!(reason.starts_with("Bullhorn answered slowly"), "{reason}");
        assert!(reason.contains("more than 5 seconds"), "{reason}");
        let quick = RequestSummary::of(&requests(10, 0, 0, Duration::from_millis(4_000)));
        assert_eq!(trouble(&quick, "Bullhorn"), None);
    }
}
