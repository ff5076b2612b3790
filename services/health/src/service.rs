//! Taking reports in and answering for status: plain async functions over the store.
//!
//! A report is recorded and the integration's status recomputed in the same write; reading the
//! status recomputes it again, because silence (missed heartbeats) becomes visible only with
//! time. `since` moves only when the status itself changes, and each change is logged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_proto::health::v1::{Heartbeat, RunOutcome, RunOutcomeKind};
use plugboard_runtime::storage::format_time;
use sqlx::AnyConnection;
use tracing::{debug, info};

use crate::error::Error;
use crate::rules::{self, Assessment, Facts, HeartbeatSeen, Outcome, OutcomeKind, Status};
use crate::store::{self, Integration, RunRecord, Store};

/// Attempts before concurrent writers for one connection give up with a retryable error.
const WRITE_ATTEMPTS: usize = 5;
/// Reporter-supplied reasons are kept to this many characters.
const MAX_REASON_CHARS: usize = 1000;

/// One integration's status as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationView {
    pub connection_id: String,
    pub connector: String,
    pub assessment: Assessment,
    /// When the status last changed (RFC 3339).
    pub since: String,
    /// RFC 3339 or empty when there was none yet.
    pub last_success_at: String,
    pub last_run_at: String,
}

#[derive(Debug, Clone)]
pub struct HealthService {
    store: Store,
}

impl HealthService {
    pub fn new(store: Store) -> HealthService {
        HealthService { store }
    }

    /// Records a finished run for `tenant`. A run reported twice (same run id) counts once.
    pub async fn report_run(
        &self,
        tenant: &str,
        run: &RunOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        required("run_outcome.connection_id", &run.connection_id)?;
        required("run_outcome.connector", &run.connector)?;
        let kind = outcome_kind(run.kind())?;
        let finished_at = if run.finished_at.is_empty() {
            now
        } else {
            DateTime::parse_from_rfc3339(&run.finished_at)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|e| Error::InvalidReport {
                    field: "run_outcome.finished_at",
                    problem: format!("must be an RFC 3339 time: {e}"),
                })?
        };
        // Without a run id a retried report cannot be recognised; it then counts twice.
        let run_id = if run.run_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            run.run_id.clone()
        };
        let reason: String = run.reason.trim().chars().take(MAX_REASON_CHARS).collect();
        let record = RunRecord {
            run_id: &run_id,
            connector: &run.connector,
            kind,
            reason: &reason,
            records_written: i64::try_from(run.records_written).unwrap_or(i64::MAX),
            records_quarantined: i64::try_from(run.records_quarantined).unwrap_or(i64::MAX),
            finished_at,
        };
        let now_text = format_time(now);

        for _ in 0..WRITE_ATTEMPTS {
            let mut transaction = self.store.begin().await?;
            store::lock(&mut transaction, tenant, &run.connection_id).await?;
            let fresh = store::insert_run(
                &mut transaction,
                tenant,
                &run.connection_id,
                &record,
                &now_text,
            )
            .await?;
            if !fresh {
                debug!(connection_id = %run.connection_id, run_id, "run already reported");
                return Ok(());
            }
            let mut state =
                current_or_new(&mut transaction, tenant, &run.connection_id, &run.connector)
                    .await?;
            state.facts.connector.clone_from(&run.connector);
            state.facts.record_outcome(Outcome {
                kind,
                reason: reason.clone(),
                records_quarantined: run.records_quarantined,
                at: finished_at,
            });
            let change = reassess(&mut state, now);
            if store::save(&mut transaction, &state, &now_text).await? {
                store::commit(transaction).await?;
                log_change(&state, change);
                return Ok(());
            }
            // Only a first report racing another first report lands here (the row lock queues
            // everything else); dropping the transaction rolls it back and the retry queues.
        }
        Err(Error::Contended {
            connection_id: run.connection_id.clone(),
        })
    }

    /// Records that the scheduler saw the connection (and whether it is paused).
    pub async fn report_heartbeat(
        &self,
        tenant: &str,
        heartbeat: &Heartbeat,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        required("heartbeat.connection_id", &heartbeat.connection_id)?;
        required("heartbeat.connector", &heartbeat.connector)?;
        let seen = HeartbeatSeen {
            at: now,
            interval: Duration::from_secs(u64::from(heartbeat.interval_seconds)),
        };
        let now_text = format_time(now);
        for _ in 0..WRITE_ATTEMPTS {
            let mut transaction = self.store.begin().await?;
            store::lock(&mut transaction, tenant, &heartbeat.connection_id).await?;
            let mut state = current_or_new(
                &mut transaction,
                tenant,
                &heartbeat.connection_id,
                &heartbeat.connector,
            )
            .await?;
            state.facts.connector.clone_from(&heartbeat.connector);
            state.facts.record_heartbeat(seen, heartbeat.paused);
            let change = reassess(&mut state, now);
            if store::save(&mut transaction, &state, &now_text).await? {
                store::commit(transaction).await?;
                log_change(&state, change);
                return Ok(());
            }
            // Only a first report racing another first report lands here; the retry sees the
            // row and queues on its lock.
        }
        Err(Error::Contended {
            connection_id: heartbeat.connection_id.clone(),
        })
    }

    /// The tenant's integrations, or only `connection_id` when it is not empty.
    pub async fn status(
        &self,
        tenant: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntegrationView>, Error> {
        let mut connection = self.store.acquire().await?;
        let integrations = if connection_id.is_empty() {
            store::list(&mut connection, tenant).await?
        } else {
            let found = store::load(&mut connection, tenant, connection_id).await?;
            vec![found.ok_or_else(|| Error::IntegrationNotFound {
                connection_id: connection_id.to_owned(),
            })?]
        };

        let now_text = format_time(now);
        let mut views = Vec::with_capacity(integrations.len());
        for mut state in integrations {
            let change = reassess(&mut state, now);
            // Only silence can change a status between reports; persist that change so `since`
            // holds. Losing the race to a report is fine: the report stored fresher state.
            if change.is_some() && store::save(&mut connection, &state, &now_text).await? {
                log_change(&state, change);
            }
            views.push(view(&state, now));
        }
        Ok(views)
    }
}

/// A status change: from what (none for a new integration) to what.
type Change = Option<(Option<Status>, Status)>;

/// Recomputes the status; moves `since` only when the status changes.
fn reassess(state: &mut Integration, now: DateTime<Utc>) -> Change {
    let assessment = rules::assess(&state.facts, now);
    state.status_reason.clone_from(&assessment.reason);
    let previous = (state.revision > 0).then_some(state.status);
    if previous == Some(assessment.status) {
        return None;
    }
    state.status = assessment.status;
    state.since = format_time(now);
    Some((previous, assessment.status))
}

fn log_change(state: &Integration, change: Change) {
    if let Some((from, to)) = change {
        info!(
            tenant = %state.tenant,
            connection_id = %state.connection_id,
            connector = %state.facts.connector,
            from = from.map_or("none", Status::as_str),
            to = to.as_str(),
            reason = %state.status_reason,
            "integration status changed"
        );
    }
}

fn view(state: &Integration, now: DateTime<Utc>) -> IntegrationView {
    let facts = &state.facts;
    IntegrationView {
        connection_id: state.connection_id.clone(),
        connector: facts.connector.clone(),
        assessment: rules::assess(facts, now),
        since: state.since.clone(),
        last_success_at: facts.last_success_at.map(format_time).unwrap_or_default(),
        last_run_at: facts
            .last_outcome
            .as_ref()
            .map(|outcome| format_time(outcome.at))
            .unwrap_or_default(),
    }
}

async fn current_or_new(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
    connector: &str,
) -> Result<Integration, Error> {
    let current = store::load(connection, tenant, connection_id).await?;
    Ok(current.unwrap_or_else(|| Integration {
        tenant: tenant.to_owned(),
        connection_id: connection_id.to_owned(),
        facts: Facts::new(connector),
        // Placeholders: `reassess` sets both before the first write, because revision 0
        // counts as a change.
        status: Status::Operational,
        status_reason: String::new(),
        since: String::new(),
        revision: 0,
    }))
}

fn required(field: &'static str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::InvalidReport {
            field,
            problem: "must not be empty".to_owned(),
        });
    }
    Ok(())
}

fn outcome_kind(kind: RunOutcomeKind) -> Result<OutcomeKind, Error> {
    match kind {
        RunOutcomeKind::Succeeded => Ok(OutcomeKind::Succeeded),
        RunOutcomeKind::Partial => Ok(OutcomeKind::Partial),
        RunOutcomeKind::Failed => Ok(OutcomeKind::Failed),
        RunOutcomeKind::AuthFailed => Ok(OutcomeKind::AuthFailed),
        RunOutcomeKind::Unspecified => Err(Error::InvalidReport {
            field: "run_outcome.kind",
            problem: "must be succeeded, partial, failed or auth_failed".to_owned(),
        }),
    }
}
