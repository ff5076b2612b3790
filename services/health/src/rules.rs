//! What an integration's status is, and why: pure functions of what was reported and the time.
//!
//! The order of the rules is the order of what matters to the customer: a paused integration is
//! paused whatever else is true; refused credentials need the customer before anything else can
//! help; repeated failures mean down; a single failure, quarantined records, a partner that
//! answered many requests with errors or slowly, or a silent scheduler mean degraded, and so
//! does an entity older than its freshness target. Every status
//! but operational carries a plain-language reason and the action the customer can take.
//!
//! Submodules hold the other pure rules: [`freshness`] (targets per entity), [`signals`]
//! (correctness warnings), [`partner`] (error rate and latency of the partner's answers),
//! [`incidents`] (when incidents open and resolve) and [`uptime`].

pub mod freshness;
pub mod incidents;
pub mod partner;
pub mod signals;
pub mod uptime;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use freshness::Targets;
pub use partner::{PartnerFacts, RequestSummary};
pub use signals::{StreamReport, Warning};

/// Consecutive failed runs after which an integration is down.
pub const DOWN_AFTER_FAILURES: u32 = 3;
/// Missed heartbeat intervals after which the scheduler counts as silent.
pub const MISSED_HEARTBEATS: u32 = 3;

/// The action while a retry will most likely fix things: say so rather than leave it blank.
const RETRYING: &str = "Nothing yet: the next sync retries automatically";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Operational,
    Degraded,
    Down,
    NeedsReconnect,
    Paused,
}

impl Status {
    /// The storage and log name, also used by the gateway's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Operational => "operational",
            Status::Degraded => "degraded",
            Status::Down => "down",
            Status::NeedsReconnect => "needs_reconnect",
            Status::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Operational,
            Status::Degraded,
            Status::Down,
            Status::NeedsReconnect,
            Status::Paused,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    /// Completed, but records were quarantined or the partner throttled heavily.
    Partial,
    Failed,
    /// The partner refused the credentials.
    AuthFailed,
    /// Ended without an error, but what it read is not believable (sync's honest-outcome
    /// rules): neither a success nor fresh data.
    Suspect,
    /// Stopped for a used-up partner quota; resumes by itself after the reset.
    QuotaPaused,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Partial => "partial",
            OutcomeKind::Failed => "failed",
            OutcomeKind::AuthFailed => "auth_failed",
            OutcomeKind::Suspect => "suspect",
            OutcomeKind::QuotaPaused => "quota_paused",
        }
    }

    pub fn parse(text: &str) -> Option<OutcomeKind> {
        [
            OutcomeKind::Succeeded,
            OutcomeKind::Partial,
            OutcomeKind::Failed,
            OutcomeKind::AuthFailed,
            OutcomeKind::Suspect,
            OutcomeKind::QuotaPaused,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// Partial runs completed, so they count as success for failure streaks.
    pub fn completed(self) -> bool {
        matches!(self, OutcomeKind::Succeeded | OutcomeKind::Partial)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// What the reporter said, plain language; may be empty.
    pub reason: String,
    pub records_quarantined: u64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatSeen {
    pub at: DateTime<Utc>,
    /// Expected time between heartbeats; zero when the reporter gave none.
    pub interval: Duration,
}

/// What is known about one entity (canonical entity, or stream when the entity is unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityFacts {
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_records_read: Option<u64>,
    /// Whether that read was a full one (from no cursor: a first sync or a full refresh), which
    /// reads every record where an incremental one reads the changes.
    #[serde(default)]
    pub last_read_full: bool,
    /// Completed runs in a row that read records without moving the cursor.
    pub stuck_runs: u32,
    /// Partner field names last seen; empty when never reported.
    pub fields: BTreeSet<String>,
}

/// Everything reported about one integration that its status depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub connector: String,
    pub paused: bool,
    pub last_outcome: Option<Outcome>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_heartbeat: Option<HeartbeatSeen>,
    /// Per entity, from the streams of completed runs.
    pub entities: BTreeMap<String, EntityFacts>,
    /// Correctness warnings raised by the last completed run.
    pub warnings: Vec<Warning>,
    /// What the credentials service last reported about the connection's access.
    pub credential: CredentialFacts,
    /// The partner's display name and how it answered in the last run.
    pub partner: PartnerFacts,
}

/// The credentials service's last word on a connection's access.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialFacts {
    /// Set while the partner refuses the grant: what it said, in plain words.
    #[serde(default)]
    pub rejected: Option<String>,
    /// The last report applied, so a report delivered twice counts once.
    #[serde(default)]
    pub last_report_id: String,
    #[serde(default)]
    pub last_report_at: Option<DateTime<Utc>>,
}

/// One report from credentials: the connection's access is `rejected` (with a reason) or
/// valid again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    pub report_id: String,
    pub rejected: Option<String>,
    pub at: DateTime<Utc>,
}

impl Facts {
    pub fn new(connector: &str) -> Facts {
        Facts {
            connector: connector.to_owned(),
            paused: false,
            last_outcome: None,
            last_success_at: None,
            consecutive_failures: 0,
            last_heartbeat: None,
            entities: BTreeMap::new(),
            warnings: Vec::new(),
            credential: CredentialFacts::default(),
            partner: PartnerFacts::default(),
        }
    }

    /// The partner as sentences name it: the manifest's display name once a reporter gave it.
    pub fn partner_name(&self) -> String {
        if self.partner.display_name.is_empty() {
            display_name(&self.connector)
        } else {
            self.partner.display_name.clone()
        }
    }

    /// Takes in what a run said about the partner: its display name (kept when empty) and its
    /// requests (None when the run did not count them, which forgets the last run's).
    pub fn record_partner(&mut self, display_name: &str, requests: Option<RequestSummary>) {
        if !display_name.trim().is_empty() {
            self.partner.display_name = display_name.trim().to_owned();
        }
        self.partner.last_run = requests;
    }

    /// Takes in a credentials report. A repeated one, or one older than the last taken, changes
    /// nothing; returns whether it was taken.
    pub fn record_credential(&mut self, report: CredentialReport) -> bool {
        let credential = &mut self.credential;
        let stale = credential.last_report_id == report.report_id
            || credential
                .last_report_at
                .is_some_and(|last| report.at < last);
        if stale {
            return false;
        }
        credential.rejected = report.rejected;
        credential.last_report_id = report.report_id;
        credential.last_report_at = Some(report.at);
        true
    }

    /// Takes in the streams of a completed run finished at `at`: entity freshness moves, and
    /// the run's correctness warnings replace the previous run's.
    pub fn record_streams(&mut self, streams: &[StreamReport], at: DateTime<Utc>) {
        let partner = self.partner_name();
        let mut warnings = Vec::new();
        for stream in streams.iter().filter(|stream| !stream.entity.is_empty()) {
            let (facts, raised) =
                signals::observe(self.entities.get(&stream.entity), stream, &partner, at);
            self.entities.insert(stream.entity.clone(), facts);
            warnings.extend(raised);
        }
        self.warnings = warnings;
    }

    /// Takes in a finished run. A run that finished before the latest known one arrived late
    /// and changes nothing; returns whether it was taken.
    pub fn record_outcome(&mut self, outcome: Outcome) -> bool {
        if let Some(last) = &self.last_outcome
            && outcome.at < last.at
        {
            return false;
        }
        if outcome.kind.completed() {
            self.consecutive_failures = 0;
            self.last_success_at = Some(outcome.at);
            // A run that read from the partner proves its access works, even if credentials'
            // word of the reconnect has not arrived yet.
            if self
                .credential
                .last_report_at
                .is_none_or(|reported| outcome.at > reported)
            {
                self.credential.rejected = None;
            }
        } else if !matches!(
            outcome.kind,
            OutcomeKind::Suspect | OutcomeKind::QuotaPaused
        ) {
            // A suspect or quota-paused run is no success, but no failure either: the partner
            // answered.
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
        self.last_outcome = Some(outcome);
        true
    }

    pub fn record_heartbeat(&mut self, heartbeat: HeartbeatSeen, paused: bool) {
        self.last_heartbeat = Some(heartbeat);
        self.paused = paused;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub status: Status,
    /// Plain language, never empty.
    pub reason: String,
    /// What the customer can do; empty when nothing is needed from them.
    pub action: String,
}

impl Assessment {
    fn new(status: Status, reason: String, action: &str) -> Assessment {
        Assessment {
            status,
            reason,
            action: action.to_owned(),
        }
    }
}

/// The status of an integration with these facts at `now`, with the default freshness targets.
pub fn assess(facts: &Facts, now: DateTime<Utc>) -> Assessment {
    assess_with(facts, &Targets::default(), now)
}

/// The status of an integration with these facts and freshness targets at `now`.
pub fn assess_with(facts: &Facts, targets: &Targets, now: DateTime<Utc>) -> Assessment {
    let partner = facts.partner_name();
    if facts.paused {
        return Assessment::new(
            Status::Paused,
            "the integration is paused, so no sync runs".to_owned(),
            "Resume the integration to start syncing again",
        );
    }
    if let Some(refusal) = &facts.credential.rejected {
        return Assessment::new(
            Status::NeedsReconnect,
            format!(
                "{partner} refused the connection's authorization{}",
                detail(refusal)
            ),
            &format!("Reconnect the integration and approve access at {partner} again"),
        );
    }
    if let Some(outcome) = &facts.last_outcome {
        // A refusal from before credentials last said the access is valid (a reconnect since)
        // is history.
        let refused_since_reconnect = facts
            .credential
            .last_report_at
            .is_none_or(|reported| outcome.at > reported);
        if outcome.kind == OutcomeKind::AuthFailed && refused_since_reconnect {
            return Assessment::new(
                Status::NeedsReconnect,
                format!("{partner} refused the saved credentials"),
                "Reconnect the integration with valid credentials",
            );
        }
        if facts.consecutive_failures >= DOWN_AFTER_FAILURES {
            let reason = format!(
                "the last {} syncs failed{}",
                facts.consecutive_failures,
                detail(&outcome.reason)
            );
            let action = format!(
                "Check that {partner} is reachable and the connected account is active; the \
                 sync keeps retrying"
            );
            return Assessment::new(Status::Down, reason, &action);
        }
        if outcome.kind == OutcomeKind::Failed {
            let reason = format!(
                "the last sync failed{}; it will be retried",
                detail(&outcome.reason)
            );
            return Assessment::new(Status::Degraded, reason, RETRYING);
        }
        if outcome.kind == OutcomeKind::Partial {
            return partial(outcome, &partner);
        }
        if outcome.kind == OutcomeKind::QuotaPaused {
            let reason = format!(
                "the sync is waiting for the partner's request quota to reset{}",
                detail(&outcome.reason)
            );
            return Assessment::new(
                Status::Degraded,
                reason,
                "None needed: the sync resumes by itself where it stopped once the quota resets",
            );
        }
        if outcome.kind == OutcomeKind::Suspect {
            let reason = format!(
                "the last sync ended without an error, but its result cannot be trusted{}",
                detail(&outcome.reason)
            );
            let action = format!(
                "Check that the connected {partner} user can still see the data and that no \
                 filter hides it; the stored records were kept"
            );
            return Assessment::new(Status::Degraded, reason, &action);
        }
    }
    let troubled = facts.partner.last_run.as_ref();
    if let Some((reason, action)) = troubled.and_then(|run| partner::trouble(run, &partner)) {
        return Assessment::new(Status::Degraded, reason, &action);
    }
    let freshness = freshness::freshness(&facts.entities, targets, now);
    if let Some(late) = freshness::stalest(&freshness) {
        let reason = format!(
            "{} were last synced {} ago; the target is {}",
            freshness::plural(&late.entity),
            describe(late.age),
            describe(late.target)
        );
        return Assessment::new(
            Status::Degraded,
            reason,
            "Run the sync now; contact support if the data stays late",
        );
    }
    if let Some(silence) = silence(facts, now) {
        let reason = format!("no sync has run for {}", describe(silence));
        return Assessment::new(
            Status::Degraded,
            reason,
            "Run the sync now; contact support if no sync starts",
        );
    }
    let reason = match &facts.last_outcome {
        None => "waiting for the first sync".to_owned(),
        Some(_) => "the last sync succeeded".to_owned(),
    };
    Assessment::new(Status::Operational, reason, "")
}

fn partial(outcome: &Outcome, partner: &str) -> Assessment {
    if outcome.records_quarantined > 0 {
        let count = outcome.records_quarantined;
        let records = if count == 1 { "record" } else { "records" };
        // Sync's reason already says which and how many; it is not said twice.
        let reason = match outcome.reason.trim() {
            "" => format!(
                "the last sync completed, but {count} {records} could not be imported and were \
                 quarantined"
            ),
            said => format!("the last sync completed, but {said}"),
        };
        let action = format!("Review the quarantined records and correct them in {partner}");
        return Assessment::new(Status::Degraded, reason, &action);
    }
    let reason = format!(
        "the last sync completed only in part{}",
        detail(&outcome.reason)
    );
    Assessment::new(Status::Degraded, reason, RETRYING)
}

/// How long the scheduler has been silent, when that is longer than it promised.
fn silence(facts: &Facts, now: DateTime<Utc>) -> Option<Duration> {
    let heartbeat = facts.last_heartbeat?;
    if heartbeat.interval.is_zero() {
        return None;
    }
    let age = now.signed_duration_since(heartbeat.at).to_std().ok()?;
    (age > heartbeat.interval * MISSED_HEARTBEATS).then_some(age)
}

fn describe(age: Duration) -> String {
    let minutes = age.as_secs() / 60;
    match minutes {
        0 => format!("{} seconds", age.as_secs()),
        1 => "1 minute".to_owned(),
        2..120 => format!("{minutes} minutes"),
        _ => format!("{} hours", minutes / 60),
    }
}

/// ": <reason>" when the reporter gave one.
fn detail(reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// "bullhorn" → "Bullhorn", "sap-fieldglass" → "Sap Fieldglass": good enough for a sentence
/// while no reporter has given the manifest's display name ([`Facts::partner_name`]).
pub fn display_name(connector: &str) -> String {
    let words: Vec<String> = connector
        .split(['-', '_'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect();
    if words.is_empty() {
        "The partner".to_owned()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests;
