//! What one stream's read tells health beyond its counts: the partner field names its records
//! carried (so fields that appear or vanish between runs show as schema drift), the pages the
//! partner served again, and the partner requests the connector made for it.
//!
//! [`crate::page_guard`] stops a run whose connector serves the page before again; a page that
//! repeats one from further back (A, B, A) gets past it, its records merely rewritten unchanged,
//! and is counted here instead: a paginator that wanders is a warning, not a failure.

use std::collections::{BTreeSet, HashSet};

use plugboard_proto::common::v1::PartnerRequests;
use plugboard_proto::connector::v1::ReadResponse;

/// Field names kept per stream; a partner with more sends a report this long, not longer.
const MAX_FIELDS: usize = 500;
/// Longer names are not field names worth reporting (a key made of data).
const MAX_FIELD_CHARS: usize = 100;

/// The signals of one stream within a run, gathered page by page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSignals {
    /// Pages whose every record an earlier page of this read already carried.
    pub repeated_pages: u32,
    /// Top-level field names of the partner's records.
    pub fields: BTreeSet<String>,
    /// The partner requests the read made, summed over its pages.
    pub partner_requests: PartnerRequests,
    seen_ids: HashSet<String>,
}

impl StreamSignals {
    /// Takes in one page as the connector sent it, before it is committed.
    pub fn observe(&mut self, page: &ReadResponse) {
        if let Some(requests) = &page.partner_requests {
            self.partner_requests.merge(requests);
        }
        let mut new_ids = 0;
        for record in &page.records {
            if self.seen_ids.insert(record.external_id.clone()) {
                new_ids += 1;
            }
            self.collect_fields(&record.payload_json);
        }
        if !page.records.is_empty() && new_ids == 0 {
            self.repeated_pages += 1;
        }
    }

    fn collect_fields(&mut self, payload_json: &str) {
        if self.fields.len() >= MAX_FIELDS {
            return;
        }
        // The connector sent it as a JSON object; anything else has no field names to give.
        let Ok(serde_json::Value::Object(object)) = serde_json::from_str(payload_json) else {
            return;
        };
        for name in object.keys() {
            if self.fields.len() >= MAX_FIELDS {
                break;
            }
            if name.chars().count() <= MAX_FIELD_CHARS && !self.fields.contains(name) {
                self.fields.insert(name.clone());
            }
        }
    }
}

/// The partner requests of a whole run: the sum over its streams; None when none was counted.
pub fn run_requests<'a>(
    streams: impl IntoIterator<Item = &'a StreamSignals>,
) -> Option<PartnerRequests> {
    let mut total = PartnerRequests::default();
    for stream in streams {
        total.merge(&stream.partner_requests);
    }
    (total.total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use plugboard_proto::connector::v1::RawRecord;
    use plugboard_proto::partner_requests::Answered;

    use super::*;

    fn page(records: &[(&str, &str)], errors: u32) -> ReadResponse {
        let mut requests = PartnerRequests::default();
        requests.record(Answered::Status(200), Duration::from_millis(40));
        for _ in 0..errors {
            requests.record(Answered::Status(500), Duration::from_millis(40));
        }
        ReadResponse {
            records: records
                .iter()
                .map(|(id, payload)| RawRecord {
                    external_id: (*id).to_owned(),
                    payload_json: (*payload).to_owned(),
                })
                .collect(),
            partner_requests: Some(requests),
            ..ReadResponse::default()
        }
    }

    #[test]
    fn field_names_are_the_union_of_the_records_top_level_keys() {
        let mut signals = StreamSignals::default();
        signals.observe(&page(
            &[("1", r#"{"id":1,"title":"Nurse","pay":{"rate":3}}"#)],
            0,
        ));
        signals.observe(&page(
            &[("2", r#"{"id":2,"status":"Open"}"#), ("3", "[1,2]")],
            0,
        ));
        let fields: Vec<&str> = signals.fields.iter().map(String::as_str).collect();
        assert_eq!(fields, ["id", "pay", "status", "title"]);
    }

    #[test]
    fn a_page_of_records_read_before_counts_as_repeated() {
        let mut signals = StreamSignals::default();
        signals.observe(&page(&[("1", "{}"), ("2", "{}")], 0));
        signals.observe(&page(&[("3", "{}"), ("4", "{}")], 0));
        // A, B, A: past the page guard, which compares with the page before only.
        signals.observe(&page(&[("2", "{}"), ("1", "{}")], 0));
        // One new record among old ones is an overlap, not a repeated page; the empty last
        // page is neither.
        signals.observe(&page(&[("4", "{}"), ("5", "{}")], 0));
        signals.observe(&page(&[], 0));
        assert_eq!(signals.repeated_pages, 1);
    }

    #[test]
    fn partner_requests_sum_over_pages_and_streams() {
        let mut jobs = StreamSignals::default();
        jobs.observe(&page(&[("1", "{}")], 2));
        jobs.observe(&page(&[("2", "{}")], 0));
        let mut candidates = StreamSignals::default();
        candidates.observe(&page(&[("1", "{}")], 1));
        let run = run_requests([&jobs, &candidates]).unwrap();
        assert_eq!((run.total, run.status_5xx, run.status_2xx), (6, 3, 3));
        assert_eq!(run_requests([&StreamSignals::default()]), None);
    }
}
