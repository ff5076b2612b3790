//! The page of one integration: status with reason and action, freshness, warnings, recent
//! runs with their counts, quarantined records with reasons, the 90-day uptime bar and
//! incidents; and its actions (run now, pause, resume).
//!
//! Every handler first looks the connection up among the session tenant's integrations, so an
//! id guessed from another tenant is a 404, the same as an id that does not exist; the calls
//! that follow are signed for the session's tenant as well.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

use plugboard_proto::health::v1::{GetUptimeRequest, IntegrationStatus, ListIncidentsRequest};
use plugboard_proto::sync::v1::{
    ListQuarantineRequest, ListRunsRequest, PauseSyncRequest, ResumeSyncRequest, RunInfo, RunState,
    TriggerRunRequest,
};

use crate::dashboard::{
    SessionTenant, check_same_origin, message_page, page, redirect_to, status_label,
};
use crate::error::Error;
use crate::integrations::{self, Integration};
use crate::mesh::CALL_TIMEOUT;
use crate::routes::AppState;

/// Runs and quarantined records shown on the page.
const RECENT: u32 = 10;

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

#[derive(Serialize)]
struct RunRow {
    run_id: String,
    state: &'static str,
    started_at: String,
    finished_at: String,
    error: String,
    read: u64,
    written: u64,
    unchanged: u64,
    quarantined: u64,
}

impl From<RunInfo> for RunRow {
    fn from(run: RunInfo) -> RunRow {
        let sum = |pick: fn(&plugboard_proto::sync::v1::StreamProgress) -> u64| {
            run.streams.iter().map(pick).sum()
        };
        RunRow {
            state: match run.state() {
                RunState::Running => "running",
                RunState::Succeeded => "succeeded",
                RunState::Failed => "failed",
                RunState::Paused => "paused",
                RunState::Unspecified => "unknown",
            },
            read: sum(|s| s.records_read),
            written: sum(|s| s.records_written),
            unchanged: sum(|s| s.records_unchanged),
            quarantined: sum(|s| s.records_quarantined),
            run_id: run.run_id,
            started_at: run.started_at,
            finished_at: run.finished_at,
            error: run.error,
        }
    }
}

#[derive(Serialize)]
struct DayCell {
    date: String,
    /// ok, partial, bad or none (no runs).
    level: &'static str,
    label: String,
}

#[derive(Serialize)]
struct IncidentView {
    title: String,
    opened_at: String,
    resolved_at: String,
    worst: &'static str,
    timeline: Vec<(String, &'static str, String)>,
}

fn status_name(status: IntegrationStatus) -> &'static str {
    match status {
        IntegrationStatus::Operational => "operational",
        IntegrationStatus::Degraded => "degraded",
        IntegrationStatus::Down => "down",
        IntegrationStatus::NeedsReconnect => "needs_reconnect",
        IntegrationStatus::Paused => "paused",
        IntegrationStatus::Unspecified => "unknown",
    }
}

/// The integration if it is the tenant's; `IntegrationNotFound` otherwise.
async fn owned(state: &AppState, tenant_id: &str, id: &str) -> Result<Integration, Error> {
    integrations::get(&state.mesh, tenant_id, id).await
}

/// `GET /integrations/{id}`.
pub async fn show(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(id): Path<String>,
) -> Response {
    match render(&state, &tenant_id, &id).await {
        Ok(body) => page(StatusCode::OK, body),
        Err(error) => message_page(&state.templates, &error),
    }
}

async fn render(state: &AppState, tenant_id: &str, id: &str) -> Result<String, Error> {
    let integration = owned(state, tenant_id, id).await?;
    let mut sync = state.mesh.sync_for(tenant_id);
    let mut sync_again = state.mesh.sync_for(tenant_id);
    let mut health = state.mesh.health_for(tenant_id);
    let mut health_again = state.mesh.health_for(tenant_id);
    let (runs, quarantine, uptime, incidents) = tokio::join!(
        sync.list_runs(with_timeout(ListRunsRequest {
            connection_id: id.to_owned(),
            limit: RECENT,
        })),
        sync_again.list_quarantine(with_timeout(ListQuarantineRequest {
            connection_id: id.to_owned(),
            page_size: RECENT,
            page_token: String::new(),
            // What still needs a look: not records a later run imported after all.
            include_resolved: false,
        })),
        health.get_uptime(with_timeout(GetUptimeRequest {
            connection_id: id.to_owned(),
            days: 90,
        })),
        health_again.list_incidents(with_timeout(ListIncidentsRequest {
            connection_id: id.to_owned(),
            limit: RECENT,
        })),
    );
    let runs: Vec<RunRow> = runs
        .map_err(|status| Error::upstream("sync", &status))?
        .into_inner()
        .runs
        .into_iter()
        .map(RunRow::from)
        .collect();
    let quarantine = quarantine
        .map_err(|status| Error::upstream("sync", &status))?
        .into_inner()
        .records;
    // Health learns of a connection at its first report; until then there is no history.
    let (days, uptime_permille) = match uptime {
        Ok(response) => {
            let response = response.into_inner();
            let days: Vec<DayCell> = response.days.into_iter().map(day_cell).collect();
            (days, Some(response.uptime_permille))
        }
        Err(status) if status.code() == tonic::Code::NotFound => (Vec::new(), None),
        Err(status) => return Err(Error::upstream("health", &status)),
    };
    let incidents: Vec<IncidentView> = incidents
        .map_err(|status| Error::upstream("health", &status))?
        .into_inner()
        .incidents
        .into_iter()
        .map(|incident| IncidentView {
            worst: status_label(status_name(incident.worst_status())),
            timeline: incident
                .timeline
                .iter()
                .map(|update| {
                    (
                        update.at.clone(),
                        status_label(status_name(update.status())),
                        update.reason.clone(),
                    )
                })
                .collect(),
            title: incident.title,
            opened_at: incident.opened_at,
            resolved_at: incident.resolved_at,
        })
        .collect();
    let webhook_path = state
        .store
        .webhook_endpoint(id)
        .await?
        .filter(|endpoint| endpoint.tenant_id == tenant_id)
        .map(|endpoint| crate::webhooks::delivery_path(&endpoint.connector, id));
    // Only a connector whose manifest declares webhooks gets the form; for the others enabling
    // would be refused anyway.
    let manifest = crate::connect::manifest(state, &integration.connector)
        .await
        .ok();
    let receives_webhooks = manifest.as_ref().is_some_and(|m| m.receives_webhooks);
    let partner_name = manifest
        .map(|m| m.display_name)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| integration.connector.clone());
    let uptime_text = uptime_permille.map(|permille| format!("{:.1}%", f64::from(permille) / 10.0));
    state.templates.render(
        "integration.html",
        context! {
            tenant_id => tenant_id,
            status_label => status_label(integration.status),
            integration => context! {
                id => integration.id,
                connector => integration.connector,
                category => integration.category,
                status => integration.status,
                status_reason => integration.status_reason,
                action => integration.action,
                last_sync_at => integration.last_sync_at,
                records => integration.records.into_iter().collect::<Vec<_>>(),
                freshness => integration.freshness,
                warnings => integration.warnings,
            },
            paused => integration.status == "paused",
            runs => runs,
            quarantine => quarantine.into_iter().map(|record| context! {
                external_id => record.external_id,
                stream => record.stream,
                reason => record.reason,
                field_path => record.field_path,
                quarantined_at => record.quarantined_at,
            }).collect::<Vec<_>>(),
            days => days,
            uptime => uptime_text,
            incidents => incidents,
            webhook_path => webhook_path,
            receives_webhooks => receives_webhooks,
            partner_name => partner_name,
        },
    )
}

fn day_cell(day: plugboard_proto::health::v1::UptimeDay) -> DayCell {
    let (level, label) = if day.runs == 0 {
        ("none", format!("{}: no syncs", day.date))
    } else {
        let level = match day.uptime_permille {
            1000 => "ok",
            900..=999 => "partial",
            _ => "bad",
        };
        let label = format!(
            "{}: {} syncs, {} failed ({:.1}%)",
            day.date,
            day.runs,
            day.failed_runs,
            f64::from(day.uptime_permille) / 10.0
        );
        (level, label)
    };
    DayCell {
        date: day.date,
        level,
        label,
    }
}

/// What an action button asks for.
#[derive(Clone, Copy)]
pub enum Action {
    Run,
    Pause,
    Resume,
}

async fn act(state: &AppState, tenant_id: &str, id: &str, action: Action) -> Result<(), Error> {
    owned(state, tenant_id, id).await?;
    let mut sync = state.mesh.sync_for(tenant_id);
    let connection_id = id.to_owned();
    let result = match action {
        Action::Run => sync
            .trigger_run(with_timeout(TriggerRunRequest { connection_id }))
            .await
            .map(|_| ()),
        Action::Pause => sync
            .pause_sync(with_timeout(PauseSyncRequest { connection_id }))
            .await
            .map(|_| ()),
        Action::Resume => sync
            .resume_sync(with_timeout(ResumeSyncRequest { connection_id }))
            .await
            .map(|_| ()),
    };
    result.map_err(|status| Error::upstream("sync", &status))
}

async fn post_action(
    state: AppState,
    tenant_id: String,
    id: String,
    headers: HeaderMap,
    action: Action,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return message_page(&state.templates, &error);
    }
    match act(&state, &tenant_id, &id, action).await {
        Ok(()) => {
            tracing::info!(tenant_id = %tenant_id, connection_id = %id, "dashboard action");
            redirect_to(&format!("/integrations/{}", encode(&id)))
        }
        Err(error) => message_page(&state.templates, &error),
    }
}

/// `POST /integrations/{id}/run`.
pub async fn run_now(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    post_action(state, tenant_id, id, headers, Action::Run).await
}

/// `POST /integrations/{id}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    post_action(state, tenant_id, id, headers, Action::Pause).await
}

/// `POST /integrations/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    post_action(state, tenant_id, id, headers, Action::Resume).await
}

/// Percent-encodes a path segment (ids are usually plain, but need not be).
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
