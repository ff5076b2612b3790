use chrono::TimeZone;

use super::*;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).single().unwrap() + chrono::Duration::minutes(minute)
}

fn outcome(kind: OutcomeKind, minute: i64) -> Outcome {
    Outcome {
        kind,
        reason: String::new(),
        records_quarantined: 0,
        at: at(minute),
    }
}

fn beating(facts: &mut Facts, minute: i64, paused: bool) {
    let heartbeat = HeartbeatSeen {
        at: at(minute),
        interval: Duration::from_secs(300),
    };
    facts.record_heartbeat(heartbeat, paused);
}

#[test]
fn heartbeat_only_is_operational_and_waiting_for_the_first_sync() {
    let mut facts = Facts::new("bullhorn");
    beating(&mut facts, 0, false);
    let assessment = assess(&facts, at(1));
    assert_eq!(assessment.status, Status::Operational);
    assert_eq!(assessment.reason, "waiting for the first sync");
    assert_eq!(assessment.action, "");
}

#[test]
fn a_successful_run_is_operational() {
    let mut facts = Facts::new("bullhorn");
    assert!(facts.record_outcome(outcome(OutcomeKind::Succeeded, 0)));
    let assessment = assess(&facts, at(1));
    assert_eq!(assessment.status, Status::Operational);
    assert_eq!(assessment.reason, "the last sync succeeded");
    assert_eq!(facts.last_success_at, Some(at(0)));
}

#[test]
fn paused_wins_over_everything() {
    let mut facts = Facts::new("bullhorn");
    for minute in 0..5 {
        facts.record_outcome(outcome(OutcomeKind::AuthFailed, minute));
    }
    beating(&mut facts, 0, true);
    let assessment = assess(&facts, at(600));
    assert_eq!(assessment.status, Status::Paused);
    assert!(!assessment.reason.is_empty());
    assert!(!assessment.action.is_empty());
}

#[test]
fn refused_credentials_need_a_reconnect_even_after_many_failures() {
    let mut facts = Facts::new("bullhorn");
    for minute in 0..4 {
        facts.record_outcome(outcome(OutcomeKind::Failed, minute));
    }
    facts.record_outcome(outcome(OutcomeKind::AuthFailed, 5));
    let assessment = assess(&facts, at(6));
    assert_eq!(assessment.status, Status::NeedsReconnect);
    assert_eq!(assessment.reason, "Bullhorn refused the saved credentials");
    assert_eq!(
        assessment.action,
        "Reconnect the integration with valid credentials"
    );
}

fn credential(id: &str, rejected: Option<&str>, minute: i64) -> CredentialReport {
    CredentialReport {
        report_id: id.to_owned(),
        rejected: rejected.map(str::to_owned),
        at: at(minute),
    }
}

#[test]
fn a_refused_grant_reported_by_credentials_needs_a_reconnect_until_it_is_valid_again() {
    let mut facts = Facts::new("oauth-demo");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 0));
    let refusal = "the authorization was revoked or has expired (invalid_grant)";
    assert!(facts.record_credential(credential("r1", Some(refusal), 1)));
    let assessment = assess(&facts, at(2));
    assert_eq!(assessment.status, Status::NeedsReconnect);
    assert_eq!(
        assessment.reason,
        format!("Oauth Demo refused the connection's authorization: {refusal}")
    );
    assert_eq!(
        assessment.action,
        "Reconnect the integration and approve access at Oauth Demo again"
    );
    // The same report again, or an older one, changes nothing.
    assert!(!facts.record_credential(credential("r1", None, 3)));
    assert!(!facts.record_credential(credential("r0", None, 0)));
    // Runs refused meanwhile do not outlive the reconnect.
    facts.record_outcome(outcome(OutcomeKind::AuthFailed, 4));
    assert!(facts.record_credential(credential("r2", None, 5)));
    assert_eq!(assess(&facts, at(6)).status, Status::Operational);
}

#[test]
fn a_run_that_reads_after_a_refusal_clears_it() {
    let mut facts = Facts::new("oauth-demo");
    facts.record_credential(credential("r1", Some("invalid_grant"), 1));
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 2));
    assert_eq!(assess(&facts, at(3)).status, Status::Operational);
}

#[test]
fn one_or_two_failures_degrade_and_three_are_down() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 0));
    let mut failed = outcome(OutcomeKind::Failed, 1);
    failed.reason = "Bullhorn answered 503".to_owned();
    facts.record_outcome(failed.clone());
    let assessment = assess(&facts, at(2));
    assert_eq!(assessment.status, Status::Degraded);
    assert_eq!(
        assessment.reason,
        "the last sync failed: Bullhorn answered 503; it will be retried"
    );

    failed.at = at(2);
    facts.record_outcome(failed.clone());
    assert_eq!(assess(&facts, at(3)).status, Status::Degraded);

    failed.at = at(3);
    facts.record_outcome(failed);
    let assessment = assess(&facts, at(4));
    assert_eq!(assessment.status, Status::Down);
    assert_eq!(
        assessment.reason,
        "the last 3 syncs failed: Bullhorn answered 503"
    );
    assert_eq!(facts.last_success_at, Some(at(0)));

    // One success ends the streak.
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 5));
    assert_eq!(facts.consecutive_failures, 0);
    assert_eq!(assess(&facts, at(6)).status, Status::Operational);
}

#[test]
fn quarantined_records_degrade_and_say_how_many() {
    let mut facts = Facts::new("bullhorn");
    let mut run = outcome(OutcomeKind::Partial, 0);
    run.records_quarantined = 4;
    facts.record_outcome(run);
    let assessment = assess(&facts, at(1));
    assert_eq!(assessment.status, Status::Degraded);
    assert!(
        assessment
            .reason
            .contains("4 records could not be imported"),
        "{}",
        assessment.reason
    );
    assert!(assessment.action.contains("quarantined records"));
    // With the reporter's own reason, that reason says it, once.
    let mut told = Facts::new("bullhorn");
    let mut run = outcome(OutcomeKind::Partial, 2);
    run.records_quarantined = 150;
    run.reason = "150 of 150 Candidate records could not be mapped and were quarantined".into();
    told.record_outcome(run);
    let reason = assess(&told, at(3)).reason;
    assert_eq!(
        reason,
        "the last sync completed, but 150 of 150 Candidate records could not be mapped and were \
         quarantined"
    );
    // A partial run still completed: it is the latest success.
    assert_eq!(facts.last_success_at, Some(at(0)));
    assert_eq!(facts.consecutive_failures, 0);
}

#[test]
fn a_silent_scheduler_degrades_after_three_missed_heartbeats() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 0));
    beating(&mut facts, 0, false);
    // Interval is five minutes: fifteen minutes of silence is still fine.
    assert_eq!(assess(&facts, at(15)).status, Status::Operational);
    let assessment = assess(&facts, at(16));
    assert_eq!(assessment.status, Status::Degraded);
    assert_eq!(assessment.reason, "no sync has run for 16 minutes");
}

#[test]
fn no_heartbeat_interval_means_no_silence_rule() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 0));
    facts.record_heartbeat(
        HeartbeatSeen {
            at: at(0),
            interval: Duration::ZERO,
        },
        false,
    );
    assert_eq!(assess(&facts, at(10_000)).status, Status::Operational);
}

#[test]
fn a_late_outcome_changes_nothing() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 10));
    assert!(!facts.record_outcome(outcome(OutcomeKind::Failed, 5)));
    assert_eq!(facts.consecutive_failures, 0);
    assert_eq!(assess(&facts, at(11)).status, Status::Operational);
}

#[test]
fn names_read_like_names_and_statuses_round_trip() {
    assert_eq!(display_name("bullhorn"), "Bullhorn");
    assert_eq!(display_name("sap-fieldglass"), "Sap Fieldglass");
    assert_eq!(display_name(""), "The partner");
    for status in [
        Status::Operational,
        Status::Degraded,
        Status::Down,
        Status::NeedsReconnect,
        Status::Paused,
    ] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(
        OutcomeKind::parse("auth_failed"),
        Some(OutcomeKind::AuthFailed)
    );
    assert_eq!(OutcomeKind::parse("unknown"), None);
}

#[test]
fn late_entities_degrade_with_the_entity_age_and_target() {
    let mut facts = Facts::new("bullhorn");
    assert!(facts.record_outcome(outcome(OutcomeKind::Succeeded, 0)));
    let jobs = StreamReport {
        entity: "job".to_owned(),
        records_read: 4,
        ..StreamReport::default()
    };
    facts.record_streams(&[jobs], at(0));
    assert_eq!(assess(&facts, at(10)).status, Status::Operational);
    let late = assess(&facts, at(42));
    assert_eq!(late.status, Status::Degraded);
    assert_eq!(
        late.reason,
        "jobs were last synced 42 minutes ago; the target is 15 minutes"
    );
    assert!(!late.action.is_empty());
    let relaxed = Targets::parse("job=3600").unwrap();
    assert_eq!(
        assess_with(&facts, &relaxed, at(42)).status,
        Status::Operational
    );
}

#[test]
fn every_problem_status_names_an_action() {
    let mut facts = Facts::new("bullhorn");
    for minute in 0..3 {
        facts.record_outcome(outcome(OutcomeKind::Failed, minute));
        let assessment = assess(&facts, at(minute));
        assert_ne!(assessment.status, Status::Operational);
        assert!(!assessment.action.is_empty(), "{assessment:?}");
    }
}

#[test]
fn streams_of_a_run_raise_warnings_that_the_next_run_replaces() {
    let mut facts = Facts::new("bullhorn");
    let read = |n: u64| StreamReport {
        entity: "job".to_owned(),
        records_read: n,
        ..StreamReport::default()
    };
    facts.record_streams(&[read(200)], at(0));
    facts.record_streams(&[read(0)], at(5));
    assert_eq!(facts.warnings.len(), 1);
    assert_eq!(facts.warnings[0].code, "ZERO_RECORDS");
    assert!(facts.warnings[0].reason.contains("Bullhorn"));
    facts.record_streams(&[read(0)], at(10));
    assert!(facts.warnings.is_empty());
}

#[test]
fn a_suspect_run_is_degraded_with_its_reason_and_moves_nothing() {
    let mut facts = Facts::new("bullhorn");
    assert!(facts.record_outcome(outcome(OutcomeKind::Succeeded, 0)));
    for minute in 1..=4 {
        let mut suspect = outcome(OutcomeKind::Suspect, minute);
        suspect.reason = "a full read of JobOrder returned no records where the previous full \
                          read returned 2500"
            .to_owned();
        assert!(facts.record_outcome(suspect));
    }
    let assessment = assess(&facts, at(5));
    assert_eq!(assessment.status, Status::Degraded, "{assessment:?}");
    assert!(
        assessment.reason.contains("cannot be trusted"),
        "{}",
        assessment.reason
    );
    assert!(assessment.reason.contains("2500"), "{}", assessment.reason);
    assert!(!assessment.action.is_empty());
    // Not a success, and not a failure streak either.
    assert_eq!(facts.last_success_at, Some(at(0)));
    assert_eq!(facts.consecutive_failures, 0);
}

fn troubled_requests() -> RequestSummary {
    RequestSummary {
        total: 20,
        errors: 8,
        server_errors: 8,
        ..RequestSummary::default()
    }
}

#[test]
fn a_partner_erring_in_a_completed_run_degrades_and_a_clean_run_clears_it() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 0));
    facts.record_partner("", Some(troubled_requests()));
    let assessment = assess(&facts, at(1));
    assert_eq!(assessment.status, Status::Degraded);
    assert!(
        assessment
            .reason
            .starts_with("Bullhorn answered 40% of requests with errors in the last run"),
        "{}",
        assessment.reason
    );
    assert!(!assessment.action.is_empty());

    let clean = RequestSummary {
        total: 20,
        ..RequestSummary::default()
    };
    facts.record_outcome(outcome(OutcomeKind::Succeeded, 5));
    facts.record_partner("", Some(clean));
    assert_eq!(assess(&facts, at(6)).status, Status::Operational);
}

#[test]
fn a_failed_run_says_it_failed_before_what_the_partner_answered() {
    let mut facts = Facts::new("bullhorn");
    facts.record_outcome(outcome(OutcomeKind::Failed, 0));
    facts.record_partner("", Some(troubled_requests()));
    let assessment = assess(&facts, at(1));
    assert!(
        assessment.reason.starts_with("the last sync failed"),
        "{assessment:?}"
    );
}

#[test]
fn reasons_use_the_manifest_display_name_once_reported() {
    let mut facts = Facts::new("sap-fieldglass");
    facts.record_outcome(outcome(OutcomeKind::AuthFailed, 0));
    assert_eq!(
        assess(&facts, at(1)).reason,
        "Sap Fieldglass refused the saved credentials"
    );
    facts.record_partner("SAP Fieldglass", None);
    assert_eq!(
        assess(&facts, at(1)).reason,
        "SAP Fieldglass refused the saved credentials"
    );
    // A later report without a name keeps the known one.
    facts.record_partner("", None);
    assert_eq!(facts.partner_name(), "SAP Fieldglass");
}
