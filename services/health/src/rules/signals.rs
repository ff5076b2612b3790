//! Correctness signals: a run can succeed and still be wrong. Comparing what one stream did in
//! this run with what it did before finds the quiet failures customers notice last: a partner
//! that suddenly returns nothing, a cursor that no longer moves, pages served twice, fields that
//! appear or vanish. Each becomes a [`Warning`] with a reason, never a failed status.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::EntityFacts;
use super::freshness::plural;

/// A previous run must have read at least this many records for an empty run to be suspicious.
pub const ZERO_AFTER_AT_LEAST: u64 = 20;
/// A previous run must have read at least this many records for a drop to count.
pub const DROP_FROM_AT_LEAST: u64 = 100;
/// A drop counts when a run reads less than 1/DROP_FACTOR of the previous one.
pub const DROP_FACTOR: u64 = 10;
/// Completed runs in a row that read changed records without moving the cursor.
pub const STUCK_AFTER_RUNS: u32 = 3;
/// Records a run must read before a field it did not see counts as vanished: an incremental
/// run that read two records says little about fields partners leave out when empty.
pub const VANISHED_AFTER_RECORDS: u64 = 20;

/// What one stream reported for a run that completed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub entity: String,
    pub records_read: u64,
    /// Records that were new or changed (written to the store); the rest were read again.
    pub records_written: u64,
    pub checkpoint_before: String,
    pub checkpoint_after: String,
    pub repeated_pages: u32,
    /// Empty when the reporter does not collect field names.
    pub fields: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// ZERO_RECORDS, VOLUME_DROP, STUCK_CURSOR, REPEATED_PAGES or SCHEMA_DRIFT.
    pub code: String,
    pub entity: String,
    pub reason: String,
    pub action: String,
}

impl Warning {
    fn new(code: &str, entity: &str, reason: String, action: String) -> Warning {
        Warning {
            code: code.to_owned(),
            entity: entity.to_owned(),
            reason,
            action,
        }
    }
}

/// Takes in one stream of a completed run at `at`: returns the entity's new facts and the
/// warnings this run raises. `partner` is the display name used in sentences.
pub fn observe(
    previous: Option<&EntityFacts>,
    report: &StreamReport,
    partner: &str,
    at: DateTime<Utc>,
) -> (EntityFacts, Vec<Warning>) {
    let entity = report.entity.as_str();
    let things = plural(entity);
    let mut warnings = Vec::new();
    // Volumes compare like with like: a full read (no cursor before it) reads every record, an
    // incremental one the changes since, so an incremental read after a full one always looks
    // like a collapse.
    let read_full = report.checkpoint_before.is_empty();
    let previous_read = previous
        .filter(|facts| facts.last_read_full == read_full)
        .and_then(|facts| facts.last_records_read);

    if let Some(before) = previous_read {
        if report.records_read == 0 && before >= ZERO_AFTER_AT_LEAST {
            warnings.push(Warning::new(
                "ZERO_RECORDS",
                entity,
                format!("the last sync read no {things} from {partner}; the one before read {before}"),
                format!("If {things} still change in {partner}, check the permissions and filters of the connected {partner} user"),
            ));
        } else if report.records_read > 0
            && before >= DROP_FROM_AT_LEAST
            && report.records_read.saturating_mul(DROP_FACTOR) < before
        {
            warnings.push(Warning::new(
                "VOLUME_DROP",
                entity,
                format!("the last sync read {} {things} from {partner}, down from {before}", report.records_read),
                format!("If that many {things} were not expected to stop changing, check the connected {partner} user's access"),
            ));
        }
    }

    let cursor_known = !report.checkpoint_before.is_empty() && !report.checkpoint_after.is_empty();
    // Only changed records count: an inclusive cursor boundary and a look-back window read the
    // records at or just before the cursor again on every run, unchanged, and an idle stream's
    // cursor rightly stays put. A changed record that does not move the cursor does say that
    // the cursor is not being advanced (a cursor field missing or unreadable in the records).
    let stuck = cursor_known
        && report.records_written > 0
        && report.checkpoint_before == report.checkpoint_after;
    let stuck_runs = if stuck {
        previous
            .map_or(0, |facts| facts.stuck_runs)
            .saturating_add(1)
    } else {
        0
    };
    if stuck_runs >= STUCK_AFTER_RUNS {
        warnings.push(Warning::new(
            "STUCK_CURSOR",
            entity,
            format!("the {things} cursor has not moved for {stuck_runs} syncs although new or changed {things} were read, so the same {things} are read again and again"),
            "Contact support with this integration's id; newer changes may be missed".to_owned(),
        ));
    }

    if report.repeated_pages > 0 {
        let pages = if report.repeated_pages == 1 {
            "page"
        } else {
            "pages"
        };
        warnings.push(Warning::new(
            "REPEATED_PAGES",
            entity,
            format!("{partner} served {} {pages} of {things} twice in the last sync; some {things} may have been skipped", report.repeated_pages),
            "None needed now; the next sync reads them again. Contact support if this repeats".to_owned(),
        ));
    }

    let previous_fields = previous.map(|facts| &facts.fields);
    let full_sample = report.records_read >= VANISHED_AFTER_RECORDS;
    if let Some(old) = previous_fields
        && !old.is_empty()
        && !report.fields.is_empty()
    {
        let appeared: Vec<&str> = report.fields.difference(old).map(String::as_str).collect();
        let vanished: Vec<&str> = if full_sample {
            old.difference(&report.fields).map(String::as_str).collect()
        } else {
            Vec::new()
        };
        let mut parts = Vec::new();
        if !appeared.is_empty() {
            parts.push(format!("new fields {}", appeared.join(", ")));
        }
        if !vanished.is_empty() {
            parts.push(format!("no longer the fields {}", vanished.join(", ")));
        }
        if !parts.is_empty() {
            warnings.push(Warning::new(
                "SCHEMA_DRIFT",
                entity,
                format!("{partner} {things} now have {}", parts.join(" and ")),
                format!(
                    "Check the field mapping for {things}; data from a vanished field stays empty"
                ),
            ));
        }
    }

    let facts = EntityFacts {
        last_success_at: Some(at),
        last_records_read: Some(report.records_read),
        last_read_full: read_full,
        stuck_runs,
        // A small sample adds what it saw; only a full one may forget a field.
        fields: match previous_fields {
            Some(old) if !full_sample => old.union(&report.fields).cloned().collect(),
            _ if report.fields.is_empty() => previous_fields.cloned().unwrap_or_default(),
            _ => report.fields.clone(),
        },
    };
    (facts, warnings)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).single().unwrap()
    }

    /// A report of `read` records, all of them new or changed.
    fn report(read: u64, before: &str, after: &str) -> StreamReport {
        StreamReport {
            entity: "job".to_owned(),
            records_read: read,
            records_written: read,
            checkpoint_before: before.to_owned(),
            checkpoint_after: after.to_owned(),
            ..StreamReport::default()
        }
    }

    fn codes(warnings: &[Warning]) -> Vec<&str> {
        warnings.iter().map(|w| w.code.as_str()).collect()
    }

    #[test]
    fn an_incremental_read_is_not_compared_with_the_full_read_before_it() {
        // A first sync (or a full refresh) reads everything; the next incremental run reads
        // what changed. Neither a drop nor a zero is news.
        let (full, _) = observe(None, &report(150, "", "b"), "Bullhorn", at());
        let (after, warnings) = observe(Some(&full), &report(1, "b", "c"), "Bullhorn", at());
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_, warnings) = observe(Some(&full), &report(0, "b", "b"), "Bullhorn", at());
        assert!(warnings.is_empty(), "{warnings:?}");
        // Incremental reads are still compared with each other, and full ones with full ones.
        let (busy, _) = observe(Some(&after), &report(400, "c", "d"), "Bullhorn", at());
        let (_, warnings) = observe(Some(&busy), &report(2, "d", "e"), "Bullhorn", at());
        assert_eq!(codes(&warnings), ["VOLUME_DROP"]);
        let (_, warnings) = observe(Some(&full), &report(3, "", "b"), "Bullhorn", at());
        assert_eq!(codes(&warnings), ["VOLUME_DROP"]);
    }

    #[test]
    fn an_empty_run_after_a_full_one_warns_but_not_after_a_quiet_one() {
        let (many, first) = observe(None, &report(120, "a", "b"), "Bullhorn", at());
        assert!(first.is_empty(), "nothing to compare the first run with");
        let (_, warnings) = observe(Some(&many), &report(0, "b", "b"), "Bullhorn", at());
        assert_eq!(codes(&warnings), ["ZERO_RECORDS"]);
        assert!(warnings[0].reason.contains("no jobs"));
        assert!(warnings[0].reason.contains("120"));
        assert!(!warnings[0].action.is_empty());

        let (few, _) = observe(None, &report(3, "a", "b"), "Bullhorn", at());
        let (_, warnings) = observe(Some(&few), &report(0, "b", "b"), "Bullhorn", at());
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_steep_drop_in_volume_warns() {
        let (big, _) = observe(None, &report(1000, "a", "b"), "Bullhorn", at());
        let (_, warnings) = observe(Some(&big), &report(40, "b", "c"), "Bullhorn", at());
        assert_eq!(codes(&warnings), ["VOLUME_DROP"]);
        assert!(warnings[0].reason.contains("down from 1000"));
        let (_, mild) = observe(Some(&big), &report(400, "b", "c"), "Bullhorn", at());
        assert!(mild.is_empty());
    }

    #[test]
    fn a_cursor_that_stays_put_while_reading_warns_after_three_runs() {
        let mut facts = None;
        let mut last = Vec::new();
        for run in 1..=3 {
            let (next, warnings) =
                observe(facts.as_ref(), &report(5, "t1", "t1"), "Bullhorn", at());
            assert_eq!(next.stuck_runs, run);
            facts = Some(next);
            last = warnings;
            if run < 3 {
                assert!(last.is_empty());
            }
        }
        assert_eq!(codes(&last), ["STUCK_CURSOR"]);
        // Moving again clears the streak; an empty read at the same cursor is not stuck.
        let (moved, warnings) = observe(facts.as_ref(), &report(5, "t1", "t2"), "Bullhorn", at());
        assert_eq!(moved.stuck_runs, 0);
        assert!(warnings.is_empty());
        let (idle, _) = observe(Some(&moved), &report(0, "t2", "t2"), "Bullhorn", at());
        assert_eq!(idle.stuck_runs, 0);
    }

    #[test]
    fn records_read_again_at_an_unmoved_cursor_are_not_a_stuck_cursor() {
        // The inclusive boundary (and any look-back) reads the record at the cursor again on
        // every run of a stream nothing changed in: unchanged, so nothing is written.
        let again = StreamReport {
            records_written: 0,
            ..report(1, "t1", "t1")
        };
        let mut facts = None;
        for _ in 1..=5 {
            let (next, warnings) = observe(facts.as_ref(), &again, "Bullhorn", at());
            assert_eq!(next.stuck_runs, 0);
            assert!(warnings.is_empty(), "{warnings:?}");
            facts = Some(next);
        }
    }

    #[test]
    fn repeated_pages_and_schema_drift_warn_with_the_details() {
        let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let mut first = report(30, "a", "b");
        first.fields = fields(&["id", "title", "salary"]);
        let (facts, _) = observe(None, &first, "Bullhorn", at());
        let mut second = report(30, "b", "c");
        second.fields = fields(&["id", "title", "payRate"]);
        second.repeated_pages = 2;
        let (after, warnings) = observe(Some(&facts), &second, "Bullhorn", at());
        assert_eq!(codes(&warnings), ["REPEATED_PAGES", "SCHEMA_DRIFT"]);
        assert!(warnings[0].reason.contains("2 pages"));
        assert!(warnings[1].reason.contains("new fields payRate"));
        assert!(warnings[1].reason.contains("no longer the fields salary"));
        assert_eq!(after.fields, second.fields);
        // A run that reports no fields keeps the known ones and raises no drift.
        let (kept, warnings) = observe(Some(&after), &report(30, "c", "d"), "Bullhorn", at());
        assert_eq!(kept.fields, second.fields);
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_small_run_reports_new_fields_but_not_missing_ones() {
        let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let mut full = report(30, "a", "b");
        full.fields = fields(&["id", "title", "salary"]);
        let (facts, _) = observe(None, &full, "Bullhorn", at());
        // Two records changed since: one without a salary, one with a field never seen.
        let mut small = report(2, "b", "c");
        small.fields = fields(&["id", "title", "customText20"]);
        let (after, warnings) = observe(Some(&facts), &small, "Bullhorn", at());
        assert_eq!(codes(&warnings), ["SCHEMA_DRIFT"]);
        assert_eq!(
            warnings[0].reason,
            "Bullhorn jobs now have new fields customText20"
        );
        let known: Vec<&str> = after.fields.iter().map(String::as_str).collect();
        assert_eq!(known, ["customText20", "id", "salary", "title"]);
        // The same small sample again raises nothing.
        let (_, again) = observe(Some(&after), &small, "Bullhorn", at());
        assert!(again.is_empty(), "{again:?}");
    }
}
