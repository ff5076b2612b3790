//! A tenant's integrations: what sync knows of each connection, the status health gives it and
//! the category its connector's manifest declares, merged into the pinned JSON shape.
//!
//! The status comes from health. When health has no entry for a connection yet (it has reported
//! nothing), the gateway derives one from sync's last run: `paused` when the sync is paused,
//! `operational` only when the last run succeeded, `down` when it failed, and `degraded` while no
//! run has finished yet, always with a reason saying which case it is.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use plugboard_proto::health::v1::{GetStatusRequest, IntegrationHealth, IntegrationStatus};
use plugboard_proto::sync::v1::{ListSyncsRequest, RunState, SyncInfo};

use crate::error::Error;
use crate::mesh::{CALL_TIMEOUT, Mesh};

/// One integration as the API and the dashboard show it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Integration {
    /// The connection id.
    pub id: String,
    pub connector: String,
    /// From the connector's manifest, `unknown` when the registry does not know it.
    pub category: String,
    /// `operational`, `degraded`, `down`, `needs_reconnect` or `paused`.
    pub status: &'static str,
    pub status_reason: String,
    /// RFC 3339, `null` before the first successful run.
    pub last_sync_at: Option<String>,
    /// Canonical records held per entity.
    pub records: BTreeMap<String, u64>,
    /// What the customer can do, empty when nothing is needed. Not part of the JSON shape.
    #[serde(skip)]
    pub action: String,
    /// Freshness per entity against its target, for the dashboard. Not part of the JSON shape.
    #[serde(skip)]
    pub freshness: Vec<Freshness>,
    /// Correctness warnings from the last run, for the dashboard. Not part of the JSON shape.
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

/// How fresh one entity is, in words the dashboard shows.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Freshness {
    pub entity: String,
    pub within_target: bool,
    /// "4 minutes ago", or "never".
    pub age: String,
    /// "15 minutes".
    pub target: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Warning {
    pub code: String,
    pub entity: String,
    pub reason: String,
    pub action: String,
}

/// "42 seconds", "1 minute", "15 minutes", "3 hours", "2 days".
pub fn describe_seconds(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match seconds {
        0..60 => plural(seconds, "second"),
        60..7200 => plural(seconds / 60, "minute"),
        7200..172_800 => plural(seconds / 3600, "hour"),
        _ => plural(seconds / 86_400, "day"),
    }
}

fn dashboard_details(health: Option<&IntegrationHealth>) -> (Vec<Freshness>, Vec<Warning>) {
    let Some(health) = health else {
        return (Vec::new(), Vec::new());
    };
    let freshness = health
        .freshness
        .iter()
        .map(|entry| Freshness {
            entity: entry.entity.clone(),
            within_target: entry.within_target,
            age: if entry.last_success_at.is_empty() {
                "never".to_owned()
            } else {
                format!("{} ago", describe_seconds(entry.age_seconds))
            },
            target: describe_seconds(u64::from(entry.target_seconds)),
        })
        .collect();
    let warnings = health
        .warnings
        .iter()
        .map(|warning| Warning {
            code: warning.code.clone(),
            entity: warning.entity.clone(),
            reason: warning.reason.clone(),
            action: warning.action.clone(),
        })
        .collect();
    (freshness, warnings)
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Every integration of `tenant_id`, ordered by id. The tenant comes from the authenticated key
/// and travels in the signed service token, so sync and health answer for that tenant only.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
pub async fn list(mesh: &Mesh, tenant_id: &str) -> Result<Vec<Integration>, Error> {
    let mut sync = mesh.sync_for(tenant_id);
    let mut health = mesh.health_for(tenant_id);
    let (syncs, statuses, categories) = tokio::join!(
        sync.list_syncs(with_timeout(ListSyncsRequest::default())),
        health.get_status(with_timeout(GetStatusRequest {
            connection_id: String::new(),
        })),
        categories(mesh),
    );
    let syncs = syncs
        .map_err(|status| Error::upstream("sync", &status))?
        .into_inner()
        .syncs;
    let statuses = statuses
        .map_err(|status| Error::upstream("health", &status))?
        .into_inner();
    let statuses: HashMap<String, IntegrationHealth> = statuses
        .integrations
        .into_iter()
        .map(|entry| (entry.connection_id.clone(), entry))
        .collect();

    let mut integrations: Vec<Integration> = syncs
        .into_iter()
        .map(|info| {
            let category = categories
                .get(&info.connector)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned());
            let health = statuses.get(&info.connection_id);
            merge(info, health, category)
        })
        .collect();
    integrations.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(integrations)
}

/// One integration of `tenant_id`; `IntegrationNotFound` when it is not the tenant's.
pub async fn get(mesh: &Mesh, tenant_id: &str, id: &str) -> Result<Integration, Error> {
    if id.is_empty() {
        // An empty id means "all" to sync and health; it names no integration.
        return Err(Error::IntegrationNotFound(String::new()));
    }
    let mut sync = mesh.sync_for(tenant_id);
    let mut health = mesh.health_for(tenant_id);
    let (syncs, statuses, categories) = tokio::join!(
        sync.list_syncs(with_timeout(ListSyncsRequest {
            connection_id: id.to_owned(),
        })),
        health.get_status(with_timeout(GetStatusRequest {
            connection_id: id.to_owned(),
        })),
        categories(mesh),
    );
    let info = syncs
        .map_err(|status| Error::upstream("sync", &status))?
        .into_inner()
        .syncs
        .into_iter()
        // Sync answers for the one connection; checking again costs nothing.
        .find(|info| info.connection_id == id)
        .ok_or_else(|| Error::IntegrationNotFound(id.to_owned()))?;
    let health = match statuses {
        Ok(answer) => answer
            .into_inner()
            .integrations
            .into_iter()
            .find(|entry| entry.connection_id == id),
        // Health learns of a connection at its first report; until then sync's facts decide.
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(Error::upstream("health", &status)),
    };
    let category = categories
        .get(&info.connector)
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(merge(info, health.as_ref(), category))
}

/// Connector name to category. A registry failure only costs the categories, so it is logged
/// and the page still shows status and records.
async fn categories(mesh: &Mesh) -> HashMap<String, String> {
    match mesh.manifests().await {
        Ok(manifests) => manifests
            .iter()
            .filter(|manifest| !manifest.category.is_empty())
            .map(|manifest| (manifest.name.clone(), manifest.category.clone()))
            .collect(),
        Err(error) => {
            tracing::warn!(error = %error, "registry unavailable, categories unknown");
            HashMap::new()
        }
    }
}

/// Builds the view of one connection from sync's facts and health's verdict.
pub fn merge(info: SyncInfo, health: Option<&IntegrationHealth>, category: String) -> Integration {
    let health_status = health.and_then(|entry| status_name(entry.status()));
    let (status, status_reason, action) = match (health_status, health) {
        (Some(status), Some(entry)) => {
            let reason = if entry.reason.is_empty() {
                default_reason(status).to_owned()
            } else {
                entry.reason.clone()
            };
            (status, reason, entry.action.clone())
        }
        _ => derived_status(&info),
    };
    let records = info
        .records
        .iter()
        .map(|count| (count.entity.clone(), count.count))
        .collect();
    let (freshness, warnings) = dashboard_details(health);
    Integration {
        freshness,
        warnings,
        last_sync_at: rfc3339(&info.last_sync_at),
        id: info.connection_id,
        connector: info.connector,
        category,
        status,
        status_reason,
        records,
        action,
    }
}

fn status_name(status: IntegrationStatus) -> Option<&'static str> {
    match status {
        IntegrationStatus::Operational => Some("operational"),
        IntegrationStatus::Degraded => Some("degraded"),
        IntegrationStatus::Down => Some("down"),
        IntegrationStatus::NeedsReconnect => Some("needs_reconnect"),
        IntegrationStatus::Paused => Some("paused"),
        IntegrationStatus::Unspecified => None,
    }
}

fn default_reason(status: &str) -> &'static str {
    match status {
        "operational" => "syncing normally",
        "degraded" => "syncing with problems",
        "down" => "not syncing",
        "needs_reconnect" => "the partner refused the credentials",
        _ => "paused",
    }
}

/// The status when health has not judged the connection yet.
fn derived_status(info: &SyncInfo) -> (&'static str, String, String) {
    if info.paused {
        return ("paused", "the sync is paused".to_owned(), String::new());
    }
    let Some(run) = info.last_run.as_ref() else {
        return ("degraded", "no sync has run yet".to_owned(), String::new());
    };
    match run.state() {
        RunState::Succeeded => (
            "operational",
            "the last sync succeeded".to_owned(),
            String::new(),
        ),
        RunState::Failed if run.error.is_empty() => {
            ("down", "the last sync failed".to_owned(), String::new())
        }
        RunState::Failed => (
            "down",
            format!("the last sync failed: {}", run.error),
            String::new(),
        ),
        RunState::Paused => (
            "degraded",
            format!("the last sync paused: {}", run.error),
            String::new(),
        ),
        RunState::Running if !info.last_sync_at.is_empty() => (
            "operational",
            "a sync is running; the previous one succeeded".to_owned(),
            String::new(),
        ),
        RunState::Running => (
            "degraded",
            "the first sync is running".to_owned(),
            String::new(),
        ),
        RunState::Unspecified => (
            "degraded",
            "no sync has finished yet".to_owned(),
            String::new(),
        ),
    }
}

/// `None` for the empty text sync sends before the first success, or for text that is not a time.
fn rfc3339(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(time) => Some(plugboard_runtime::storage::format_time(
            time.with_timezone(&chrono::Utc),
        )),
        Err(error) => {
            tracing::warn!(value = text, error = %error, "sync sent a last_sync_at that is not rfc 3339");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use plugboard_proto::sync::v1::{EntityCount, RunInfo};

    use super::*;

    fn info(state: Option<RunState>, last_sync_at: &str) -> SyncInfo {
        SyncInfo {
            connection_id: "c1".to_owned(),
            connector: "bullhorn".to_owned(),
            last_sync_at: last_sync_at.to_owned(),
            records: vec![EntityCount {
                entity: "job".to_owned(),
                count: 4,
            }],
            last_run: state.map(|state| RunInfo {
                state: state as i32,
                error: "partner said 500".to_owned(),
                ..RunInfo::default()
            }),
            ..SyncInfo::default()
        }
    }

    #[test]
    fn health_verdict_wins_and_keeps_its_reason() {
        let health = IntegrationHealth {
            connection_id: "c1".to_owned(),
            status: IntegrationStatus::NeedsReconnect as i32,
            reason: "bullhorn refused the client secret".to_owned(),
            action: "reconnect bullhorn".to_owned(),
            ..IntegrationHealth::default()
        };
        let view = merge(
            info(Some(RunState::Succeeded), ""),
            Some(&health),
            "ats".to_owned(),
        );
        assert_eq!(view.status, "needs_reconnect");
        assert_eq!(view.status_reason, "bullhorn refused the client secret");
        assert_eq!(view.action, "reconnect bullhorn");
        assert_eq!(view.records.get("job"), Some(&4));
    }

    #[test]
    fn without_health_the_last_run_decides() {
        let at = "2026-12-03T10:00:00+01:00";
        let cases = [
            (Some(RunState::Succeeded), at, "operational"),
            (Some(RunState::Failed), at, "down"),
            (Some(RunState::Running), at, "operational"),
            (Some(RunState::Running), "", "degraded"),
            (None, "", "degraded"),
        ];
        for (state, last_sync_at, expected) in cases {
            let view = merge(info(state, last_sync_at), None, "ats".to_owned());
            assert_eq!(view.status, expected, "{state:?} {last_sync_at:?}");
            assert!(!view.status_reason.is_empty());
        }
        let failed = merge(info(Some(RunState::Failed), ""), None, "ats".to_owned());
        assert!(failed.status_reason.contains("partner said 500"));
        let mut paused = info(Some(RunState::Succeeded), at);
        paused.paused = true;
        assert_eq!(merge(paused, None, "ats".to_owned()).status, "paused");
    }

    #[test]
    fn times_are_normalised_to_utc_or_null() {
        assert_eq!(
            rfc3339("2026-12-03T10:00:00+01:00").as_deref(),
            Some("2026-12-03T09:00:00.000Z")
        );
        assert_eq!(rfc3339(""), None);
        assert_eq!(rfc3339("yesterday"), None);
    }
}
