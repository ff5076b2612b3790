//! `/_sandbox/` endpoints for tests and the dev demo: read records, change them, arm faults,
//! read counters. They need no authentication; the sandbox only ever listens on loopback.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ENTITIES;
use super::state::{Quota, Shared, now_millis, now_seconds};

/// `GET /_sandbox/records/{entity}`: `{"total", "data": [...] (by id), "malformed": [...]}`.
/// `malformed` lists the injected Candidate records that are not part of `data`.
pub async fn records(State(sandbox): State<Shared>, Path(entity): Path<String>) -> Response {
    let world = sandbox.world();
    let Some(records) = world.records(entity.as_str()) else {
        return not_found(&entity);
    };
    let malformed = if entity == "Candidate" {
        world.malformed.clone()
    } else {
        Vec::new()
    };
    Json(json!({"total": records.len(), "data": records, "malformed": malformed})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct TouchRequest {
    /// The entity; `stream` as the conformance kit says it (streams are named by entity).
    #[serde(alias = "stream")]
    pub entity: String,
    pub ids: Vec<i64>,
    /// Fields to set on every touched record.
    #[serde(default)]
    pub changes: Map<String, Value>,
}

/// `POST /_sandbox/touch`: applies `changes` to the records and sets `dateLastModified` to now.
/// Answers `{"touched": [ids], "dateLastModified": millis}`; 404 when an id does not exist.
pub async fn touch(State(sandbox): State<Shared>, Json(request): Json<TouchRequest>) -> Response {
    let mut world = sandbox.world();
    let Some(records) = world.records_mut(request.entity.as_str()) else {
        return not_found(&request.entity);
    };
    let mut by_id: HashMap<i64, &mut Value> = records
        .iter_mut()
        .filter_map(|record| Some((record.get("id")?.as_i64()?, record)))
        .collect();
    if let Some(missing) = request.ids.iter().find(|id| !by_id.contains_key(id)) {
        let message = format!("no {} with id {missing}", request.entity);
        return (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response();
    }
    let now = now_millis();
    for id in &request.ids {
        if let Some(Value::Object(record)) = by_id.get_mut(id).map(|record| &mut **record) {
            for (key, value) in &request.changes {
                record.insert(key.clone(), value.clone());
            }
            record.insert("dateLastModified".to_owned(), json!(now));
        }
    }
    Json(json!({"touched": request.ids, "dateLastModified": now})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DeleteRequest {
    pub entity: String,
    pub ids: Vec<i64>,
}

/// `POST /_sandbox/delete`: removes the records for good, as a hard delete in Bullhorn does:
/// they stop appearing in query and search results. Answers `{"deleted": [ids]}`; 404 when an
/// id does not exist.
pub async fn delete(State(sandbox): State<Shared>, Json(request): Json<DeleteRequest>) -> Response {
    let mut world = sandbox.world();
    let Some(records) = world.records_mut(request.entity.as_str()) else {
        return not_found(&request.entity);
    };
    let id_of = |record: &Value| record.get("id").and_then(Value::as_i64);
    if let Some(missing) = request
        .ids
        .iter()
        .find(|id| !records.iter().any(|record| id_of(record) == Some(**id)))
    {
        let message = format!("no {} with id {missing}", request.entity);
        return (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response();
    }
    records.retain(|record| !id_of(record).is_some_and(|id| request.ids.contains(&id)));
    Json(json!({"deleted": request.ids})).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct FaultsRequest {
    /// The next N entity requests answer 429.
    pub rate_limit_burst: Option<u32>,
    /// `Retry-After` of those 429s (default 1).
    pub retry_after_seconds: Option<u64>,
    /// The next N entity requests answer 500.
    pub server_error_burst: Option<u32>,
    /// Mix malformed records into Candidate results (one without `id`, one with mistyped
    /// fields), or stop doing so.
    pub malformed: Option<bool>,
    /// Invalidate every `BhRestToken`, as a session timeout would.
    #[serde(default)]
    pub expire_sessions: bool,
    /// Arm a daily quota of this many entity requests (0 removes it); the window starts now.
    pub daily_quota: Option<u32>,
    /// How long the quota's window lasts (default 86400, a day); a refused request's
    /// `Retry-After` is the time left in it.
    pub quota_reset_seconds: Option<u64>,
    /// Every query and search takes this long (0 for no delay).
    pub delay_ms: Option<u64>,
}

/// `POST /_sandbox/faults`: arms faults; fields left out keep their state. Answers the faults.
pub async fn faults(State(sandbox): State<Shared>, Json(request): Json<FaultsRequest>) -> Response {
    let mut world = sandbox.world();
    if let Some(burst) = request.rate_limit_burst {
        world.faults.rate_limit_burst = burst;
        world.faults.retry_after_seconds = request.retry_after_seconds.unwrap_or(1);
    } else if let Some(seconds) = request.retry_after_seconds {
        world.faults.retry_after_seconds = seconds;
    }
    if let Some(burst) = request.server_error_burst {
        world.faults.server_error_burst = burst;
    }
    if let Some(on) = request.malformed {
        world.set_malformed(on);
    }
    if request.expire_sessions {
        world.sessions.clear();
    }
    if let Some(limit) = request.daily_quota {
        world.faults.quota = (limit > 0).then(|| Quota {
            limit,
            reset_seconds: request.quota_reset_seconds.unwrap_or(86_400).max(1),
            used: 0,
            window_started: now_seconds(),
        });
    }
    if let Some(delay) = request.delay_ms {
        world.faults.delay_ms = delay;
    }
    Json(json!(world.faults)).into_response()
}

/// `GET /_sandbox/stats`: request counters.
pub async fn stats(State(sandbox): State<Shared>) -> Response {
    Json(json!(sandbox.world().stats)).into_response()
}

fn not_found(entity: &str) -> Response {
    let message = format!("unknown entity {entity}; one of {}", ENTITIES.join(", "));
    (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response()
}
