//! What a run's outcome is, said honestly: a run that ended without an error is not yet a
//! success.
//!
//! The rules, in the order they are checked:
//!
//! - a run that stopped for a used-up partner quota is `QuotaPaused`, its reason saying when it
//!   resumes ([`crate::quota`]);
//! - a run that failed is `Failed` (or `AuthFailed` when the partner refused the saved
//!   credentials); a partner that answered HTTP 403 (forbidden) gets a reason saying the
//!   connected user lacks access, not "unavailable";
//! - a run that read nothing on a complete read of a stream (no checkpoint: a first read or a
//!   full refresh) where the last earlier complete read of that stream read at least
//!   [`EMPTY_AFTER_AT_LEAST`] records is `Suspect`: a partner that suddenly lists nothing is far
//!   likelier broken (a filter, a permission, an outage answering 200 with an empty list) than
//!   emptied, and the run deleted nothing on its word ([`crate::stream_end`]);
//! - a run that quarantined records is `Partial`;
//! - anything else is `Succeeded`.
//!
//! Incremental reads that find nothing are normal (nothing changed) and stay successes;
//! health's own warnings compare their volumes.

use std::collections::HashMap;

use plugboard_proto::health::v1::RunOutcomeKind;

use crate::error::Error;
use crate::store::{RunRecord, RunState};

/// A complete read of a stream that read nothing is suspect when the last earlier complete read
/// of the stream read at least this many records.
pub const EMPTY_AFTER_AT_LEAST: u64 = 100;

/// The connector error reason of a partner's HTTP 403 (see the connector runtime's errors).
const PARTNER_FORBIDDEN: &str = "PARTNER_FORBIDDEN";

/// A run's outcome for health, with its plain-language reason (empty for a success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kind: RunOutcomeKind,
    pub reason: String,
}

/// Judges `run`, which ended with `error` (if any), against `baselines`: per stream, the
/// records read by its last earlier complete read ([`baselines`]).
pub fn judge(
    partner: &str,
    run: &RunRecord,
    error: Option<&Error>,
    baselines: &HashMap<String, u64>,
) -> Verdict {
    if let Some(error) = error {
        return failed(partner, error);
    }
    let empty: Vec<String> = run
        .streams
        .iter()
        .filter(|stream| stream.checkpoint_before.is_empty() && stream.records_read == 0)
        .filter_map(|stream| {
            let before = *baselines.get(&stream.stream)?;
            (before >= EMPTY_AFTER_AT_LEAST).then(|| {
                format!(
                    "a full read of {} returned no records where the previous full read \
                     returned {before}",
                    stream.stream
                )
            })
        })
        .collect();
    if !empty.is_empty() {
        return Verdict {
            kind: RunOutcomeKind::Suspect,
            reason: format!(
                "{partner} answered, but {}; nothing was deleted. Check the connected user's \
                 permissions and filters at {partner}",
                empty.join(", and ")
            ),
        };
    }
    // Per stream, so the reason says where and how much: "150 of 150 Candidate records".
    let quarantined: Vec<String> = run
        .streams
        .iter()
        .filter(|stream| stream.records_quarantined > 0)
        .map(|stream| {
            format!(
                "{} of {} {} records",
                stream.records_quarantined, stream.records_read, stream.stream
            )
        })
        .collect();
    if !quarantined.is_empty() {
        return Verdict {
            kind: RunOutcomeKind::Partial,
            reason: format!(
                "{} could not be mapped and were quarantined",
                quarantined.join(", ")
            ),
        };
    }
    Verdict {
        kind: RunOutcomeKind::Succeeded,
        reason: String::new(),
    }
}

fn failed(partner: &str, error: &Error) -> Verdict {
    if let Error::QuotaExhausted { resumes_at } = error {
        return Verdict {
            kind: RunOutcomeKind::QuotaPaused,
            reason: format!(
                "{partner}'s request quota is used up; the sync stopped after its last \
                 committed page and resumes by itself at {resumes_at}"
            ),
        };
    }
    if error.is_credentials_rejected() {
        return Verdict {
            kind: RunOutcomeKind::AuthFailed,
            reason: format!("{partner} refused the saved credentials"),
        };
    }
    let forbidden = matches!(
        error,
        Error::Dependency { reason: Some(reason), .. } if reason == PARTNER_FORBIDDEN
    );
    let reason = if forbidden {
        format!(
            "{partner} refused access (HTTP 403 forbidden): the connected user is not allowed to \
             read this data; nothing was read or changed"
        )
    } else {
        error.to_string()
    };
    Verdict {
        kind: RunOutcomeKind::Failed,
        reason,
    }
}

/// Per stream, the records read by the newest complete read (no checkpoint before) among
/// `earlier` runs that succeeded and read something; newest first, as the store lists them.
/// An empty complete read is not a baseline, so a partner that keeps answering empty keeps
/// being suspect.
pub fn baselines(current_run_id: &str, earlier: &[RunRecord]) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    for run in earlier
        .iter()
        .filter(|run| run.run_id != current_run_id && run.state == RunState::Succeeded)
    {
        for stream in &run.streams {
            if stream.checkpoint_before.is_empty() && stream.records_read > 0 {
                found
                    .entry(stream.stream.clone())
                    .or_insert(stream.records_read);
            }
        }
    }
    found
}

/// "bullhorn" → "Bullhorn", "sap-fieldglass" → "Sap Fieldglass", for sentences.
pub fn display_name(connector: &str) -> String {
    connector
        .split(['-', '_'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use plugboard_proto::error::ErrorKind;

    use super::*;
    use crate::store::StreamCounters;

    fn run(id: &str, state: RunState, streams: &[(&str, &str, u64)]) -> RunRecord {
        RunRecord {
            run_id: id.to_owned(),
            tenant_id: "t".to_owned(),
            connection_id: "c".to_owned(),
            state,
            started_at: String::new(),
            finished_at: None,
            error: None,
            streams: streams
                .iter()
                .map(|(stream, before, read)| StreamCounters {
                    stream: (*stream).to_owned(),
                    checkpoint_before: (*before).to_owned(),
                    records_read: *read,
                    ..StreamCounters::default()
                })
                .collect(),
        }
    }

    #[test]
    fn an_empty_full_read_after_a_big_one_is_suspect_with_its_reason() {
        let earlier = [
            run("r3", RunState::Succeeded, &[("JobOrder", "", 0)]),
            run("r2", RunState::Succeeded, &[("JobOrder", "c1", 7)]),
            run("r1", RunState::Succeeded, &[("JobOrder", "", 2500)]),
        ];
        let now = run("r4", RunState::Succeeded, &[("JobOrder", "", 0)]);
        let verdict = judge("Bullhorn", &now, None, &baselines("r4", &earlier));
        assert_eq!(verdict.kind, RunOutcomeKind::Suspect);
        assert!(verdict.reason.contains("JobOrder"), "{}", verdict.reason);
        assert!(verdict.reason.contains("2500"), "{}", verdict.reason);
    }

    #[test]
    fn empty_incremental_reads_and_small_baselines_stay_successes() {
        let earlier = [run("r1", RunState::Succeeded, &[("JobOrder", "", 99)])];
        let empty_full = run("r2", RunState::Succeeded, &[("JobOrder", "", 0)]);
        let baseline = baselines("r2", &earlier);
        assert_eq!(
            judge("Bullhorn", &empty_full, None, &baseline).kind,
            RunOutcomeKind::Succeeded
        );
        let big = [run("r1", RunState::Succeeded, &[("JobOrder", "", 5000)])];
        let empty_incremental = run("r2", RunState::Succeeded, &[("JobOrder", "c9", 0)]);
        assert_eq!(
            judge("Bullhorn", &empty_incremental, None, &baselines("r2", &big)).kind,
            RunOutcomeKind::Succeeded
        );
        // A failed earlier run is no baseline.
        let failed = [run("r1", RunState::Failed, &[("JobOrder", "", 5000)])];
        assert!(baselines("r2", &failed).is_empty());
    }

    #[test]
    fn a_used_up_quota_pauses_with_its_eta() {
        let error = Error::QuotaExhausted {
            resumes_at: "2026-12-05T00:00:00.000Z".to_owned(),
        };
        let now = run("r1", RunState::Paused, &[]);
        let verdict = judge("Bullhorn", &now, Some(&error), &HashMap::new());
        assert_eq!(verdict.kind, RunOutcomeKind::QuotaPaused);
        assert!(
            verdict.reason.contains("2026-12-05T00:00:00.000Z"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn a_forbidden_partner_fails_with_a_plain_reason() {
        let error = Error::Dependency {
            service: "connector",
            kind: ErrorKind::PermissionDenied,
            reason: Some(PARTNER_FORBIDDEN.to_owned()),
            message: "the partner refused the request with http 403: {}".to_owned(),
        };
        let now = run("r1", RunState::Failed, &[]);
        let verdict = judge("Bullhorn", &now, Some(&error), &HashMap::new());
        assert_eq!(verdict.kind, RunOutcomeKind::Failed);
        assert!(verdict.reason.contains("403"), "{}", verdict.reason);
        assert!(verdict.reason.contains("not allowed"), "{}", verdict.reason);
    }
}
