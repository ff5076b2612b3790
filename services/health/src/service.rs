//! Taking reports in and answering for status: plain async functions over the store.
//!
//! A report is recorded and the integration's status recomputed in the same write; reading the
//! status (and the periodic [`HealthService::sweep`]) recomputes it again, because silence and
//! late data become visible only with time. `since` moves only when the status itself changes;
//! each change is logged, opens, updates or resolves an incident in the same transaction, and
//! is published after commit to [`HealthService::watch_committed`] (once per change across
//! replicas) and [`HealthService::watch`] (this replica's watchers, with changes other
//! replicas committed relayed by [`crate::fanout`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_proto::health::v1::{
    CredentialCondition, CredentialReport, Heartbeat, RunOutcome, RunOutcomeKind,
};
use plugboard_runtime::storage::format_time;
use sqlx::AnyConnection;
use tokio::sync::broadcast;
use tracing::{debug, info};

use crate::error::Error;
use crate::incidents::{self, Incident};
use crate::rules::freshness::{self, Freshness};
use crate::rules::uptime::{self, Day};
use crate::rules::{
    self, Assessment, Facts, HeartbeatSeen, Outcome, OutcomeKind, RequestSummary, Status,
    StreamReport, Targets, Warning,
};
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
    pub warnings: Vec<Warning>,
    pub freshness: Vec<Freshness>,
}

/// A status change, as published to watchers after it was committed.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    pub tenant: String,
    /// None for a new integration.
    pub previous: Option<Status>,
    pub view: IntegrationView,
}

/// Status events kept for slow watchers before they lag (and get a fresh snapshot instead).
const EVENT_BUFFER: usize = 256;
/// Incidents listed when the caller names no limit.
pub const DEFAULT_INCIDENT_LIMIT: u32 = 50;

#[derive(Debug, Clone)]
pub struct HealthService {
    store: Store,
    targets: Targets,
    /// Changes for watchers: committed here, or relayed from another replica.
    events: broadcast::Sender<StatusEvent>,
    /// Changes this replica committed, for the work done once per change (webhooks, fan-out).
    committed: broadcast::Sender<StatusEvent>,
}

impl HealthService {
    pub fn new(store: Store, targets: Targets) -> HealthService {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (committed, _) = broadcast::channel(EVENT_BUFFER);
        HealthService {
            store,
            targets,
            events,
            committed,
        }
    }

    /// Every status change of every tenant from now on, whichever replica committed it;
    /// callers filter by tenant.
    pub fn watch(&self) -> broadcast::Receiver<StatusEvent> {
        self.events.subscribe()
    }

    /// The status changes this replica committed, each exactly once across replicas.
    pub fn watch_committed(&self) -> broadcast::Receiver<StatusEvent> {
        self.committed.subscribe()
    }

    /// Hands a change another replica committed to this replica's watchers.
    pub fn announce(&self, event: StatusEvent) {
        // No subscriber is fine: nobody is watching here right now.
        let _ = self.events.send(event);
    }

    /// The integration's current view as stored, or None when the tenant has no such
    /// integration.
    pub async fn view_of(
        &self,
        tenant: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IntegrationView>, Error> {
        let mut connection = self.store.acquire().await?;
        let state = store::load(&mut connection, tenant, connection_id).await?;
        Ok(state.map(|state| self.view(&state, now)))
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
        let streams: Vec<StreamReport> = run
            .streams
            .iter()
            .map(|stream| StreamReport {
                entity: if stream.entity.is_empty() {
                    stream.stream.clone()
                } else {
                    stream.entity.clone()
                },
                records_read: stream.records_read,
                records_written: stream.records_written,
                checkpoint_before: stream.checkpoint_before.clone(),
                checkpoint_after: stream.checkpoint_after.clone(),
                repeated_pages: stream.repeated_pages,
                fields: stream.fields.iter().cloned().collect(),
            })
            .collect();
        let now_text = format_time(now);

        for _ in 0..WRITE_ATTEMPTS {
            let mut transaction = self.store.begin().await?;
            store::lock(&mut transaction, tenant, &run.connection_id).await?;
            store::prune_runs(
                &mut transaction,
                tenant,
                &run.connection_id,
                now - chrono::Duration::days(i64::from(uptime::RETENTION_DAYS)),
            )
            .await?;
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
            let taken = state.facts.record_outcome(Outcome {
                kind,
                reason: reason.clone(),
                records_quarantined: run.records_quarantined,
                at: finished_at,
            });
            if taken {
                state.facts.record_partner(
                    &run.connector_display_name,
                    run.partner_requests.as_ref().map(RequestSummary::of),
                );
            }
            if taken && kind.completed() {
                state.facts.record_streams(&streams, finished_at);
            }
            if self.persist(transaction, &mut state, now).await? {
                return Ok(());
            }
            // Only a first report racing another first report lands here (the row lock queues
            // everything else); dropping the transaction rolls it back and the retry queues.
        }
        Err(Error::Contended {
            connection_id: run.connection_id.clone(),
        })
    }

    /// Records what credentials learned about the connection's access. A report delivered
    /// twice (same report id) counts once.
    pub async fn report_credential(
        &self,
        tenant: &str,
        report: &CredentialReport,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        required("credential.connection_id", &report.connection_id)?;
        required("credential.connector", &report.connector)?;
        required("credential.report_id", &report.report_id)?;
        let reason: String = report
            .reason
            .trim()
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        let rejected = match report.condition() {
            CredentialCondition::Rejected => Some(reason),
            CredentialCondition::Valid => None,
            CredentialCondition::Unspecified => {
                return Err(Error::InvalidReport {
                    field: "credential.condition",
                    problem: "must be valid or rejected".to_owned(),
                });
            }
        };
        let at = if report.at.is_empty() {
            now
        } else {
            DateTime::parse_from_rfc3339(&report.at)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|e| Error::InvalidReport {
                    field: "credential.at",
                    problem: format!("must be an RFC 3339 time: {e}"),
                })?
        };
        for _ in 0..WRITE_ATTEMPTS {
            let mut transaction = self.store.begin().await?;
            store::lock(&mut transaction, tenant, &report.connection_id).await?;
            let mut state = current_or_new(
                &mut transaction,
                tenant,
                &report.connection_id,
                &report.connector,
            )
            .await?;
            let taken = state.facts.record_credential(rules::CredentialReport {
                report_id: report.report_id.clone(),
                rejected: rejected.clone(),
                at,
            });
            if !taken {
                debug!(connection_id = %report.connection_id, "credential report already taken");
                return Ok(());
            }
            if self.persist(transaction, &mut state, now).await? {
                return Ok(());
            }
        }
        Err(Error::Contended {
            connection_id: report.connection_id.clone(),
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
            if self.persist(transaction, &mut state, now).await? {
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
        let integrations = {
            let mut connection = self.store.acquire().await?;
            if connection_id.is_empty() {
                store::list(&mut connection, tenant).await?
            } else {
                let found = store::load(&mut connection, tenant, connection_id).await?;
                vec![found.ok_or_else(|| Error::IntegrationNotFound {
                    connection_id: connection_id.to_owned(),
                })?]
            }
        };

        let mut views = Vec::with_capacity(integrations.len());
        for state in integrations {
            // Only time (silence, late data) can change a status between reports; persist that
            // change so `since`, incidents and watchers hold.
            let changed =
                rules::assess_with(&state.facts, &self.targets, now).status != state.status;
            let state = if changed {
                self.refresh(tenant, &state.connection_id, now)
                    .await?
                    .unwrap_or(state)
            } else {
                state
            };
            views.push(self.view(&state, now));
        }
        Ok(views)
    }

    /// Re-assesses every integration of every tenant; returns how many changed status.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let all = {
            let mut connection = self.store.acquire().await?;
            store::list_all(&mut connection).await?
        };
        let mut changed = 0;
        for state in all {
            if rules::assess_with(&state.facts, &self.targets, now).status != state.status {
                self.refresh(&state.tenant, &state.connection_id, now)
                    .await?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The tenant's incidents, newest first; of one connection when `connection_id` is set.
    pub async fn incidents(
        &self,
        tenant: &str,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<Incident>, Error> {
        let limit = if limit == 0 {
            DEFAULT_INCIDENT_LIMIT
        } else {
            limit.min(500)
        };
        let mut connection = self.store.acquire().await?;
        incidents::list(&mut connection, tenant, connection_id, i64::from(limit)).await
    }

    /// Uptime per day of one of the tenant's integrations for the last `days` days.
    pub async fn uptime(
        &self,
        tenant: &str,
        connection_id: &str,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Day>, Error> {
        let days = if days == 0 {
            uptime::RETENTION_DAYS
        } else {
            days.min(uptime::RETENTION_DAYS)
        };
        let mut connection = self.store.acquire().await?;
        // Another tenant's connection (or an unknown one) is not found, never an empty bar.
        if store::load(&mut connection, tenant, connection_id)
            .await?
            .is_none()
        {
            return Err(Error::IntegrationNotFound {
                connection_id: connection_id.to_owned(),
            });
        }
        let since = now - chrono::Duration::days(i64::from(days));
        let runs = store::runs_since(&mut connection, tenant, connection_id, since).await?;
        Ok(uptime::daily(&runs, now.date_naive(), days))
    }

    /// Re-assesses one integration under its row lock and persists a change; returns the
    /// state as stored afterwards (None when it vanished or writers kept overtaking).
    async fn refresh(
        &self,
        tenant: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Integration>, Error> {
        for _ in 0..WRITE_ATTEMPTS {
            let mut transaction = self.store.begin().await?;
            store::lock(&mut transaction, tenant, connection_id).await?;
            let Some(mut state) = store::load(&mut transaction, tenant, connection_id).await?
            else {
                return Ok(None);
            };
            if self.persist(transaction, &mut state, now).await? {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// Reassesses `state`, saves it, records an incident step for a status change, commits and
    /// publishes the change. False when another writer saved first (nothing was written).
    async fn persist(
        &self,
        mut transaction: sqlx::Transaction<'static, sqlx::Any>,
        state: &mut Integration,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let now_text = format_time(now);
        let change = reassess(state, &self.targets, now);
        if !store::save(&mut transaction, state, &now_text).await? {
            return Ok(false);
        }
        if let Some((from, to)) = change {
            incidents::apply(
                &mut transaction,
                &incidents::Change {
                    tenant: &state.tenant,
                    connection_id: &state.connection_id,
                    connector: &state.facts.connector,
                    partner: &state.facts.partner_name(),
                    from,
                    to,
                    reason: &state.status_reason,
                    at: &now_text,
                },
            )
            .await?;
        }
        store::commit(transaction).await?;
        // Bump the revision as the write did, so a caller reusing `state` stays consistent.
        state.revision += 1;
        if let Some((from, _)) = change {
            log_change(state, change);
            let event = StatusEvent {
                tenant: state.tenant.clone(),
                previous: from,
                view: self.view(state, now),
            };
            // No subscriber is fine: nobody is watching right now.
            let _ = self.committed.send(event.clone());
            let _ = self.events.send(event);
        }
        Ok(true)
    }

    fn view(&self, state: &Integration, now: DateTime<Utc>) -> IntegrationView {
        let facts = &state.facts;
        IntegrationView {
            connection_id: state.connection_id.clone(),
            connector: facts.connector.clone(),
            assessment: rules::assess_with(facts, &self.targets, now),
            since: state.since.clone(),
            last_success_at: facts.last_success_at.map(format_time).unwrap_or_default(),
            last_run_at: facts
                .last_outcome
                .as_ref()
                .map(|outcome| format_time(outcome.at))
                .unwrap_or_default(),
            warnings: facts.warnings.clone(),
            freshness: freshness::freshness(&facts.entities, &self.targets, now),
        }
    }
}

/// A status change: from what (none for a new integration) to what.
type Change = Option<(Option<Status>, Status)>;

/// Recomputes the status; moves `since` only when the status changes.
fn reassess(state: &mut Integration, targets: &Targets, now: DateTime<Utc>) -> Change {
    let assessment = rules::assess_with(&state.facts, targets, now);
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
        RunOutcomeKind::Suspect => Ok(OutcomeKind::Suspect),
        RunOutcomeKind::QuotaPaused => Ok(OutcomeKind::QuotaPaused),
        RunOutcomeKind::Unspecified => Err(Error::InvalidReport {
            field: "run_outcome.kind",
            problem: "must be succeeded, partial, failed or auth_failed".to_owned(),
        }),
    }
}
