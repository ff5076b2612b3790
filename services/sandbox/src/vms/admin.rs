//! `/_sandbox/` endpoints the conformance kit and the end-to-end tests drive: read records
//! (`{"data", "malformed"}`), change them (`touch`: changes applied, cursor moved to now), arm
//! faults (`rate_limit_burst`, `retry_after_seconds`, `server_error_burst`, `malformed`,
//! `expire_sessions`) and read counters. No authentication: sandboxes listen on loopback only.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::state::id_text;
use super::{Shared, error, now_rfc3339};

/// Records a partner serves while the malformed fault is on, by stream (made when armed, so
/// their cursor values are recent).
pub type MalformedRecords = fn() -> BTreeMap<String, Vec<Value>>;

/// The admin routes, for a partner whose malformed records `malformed` makes.
pub fn routes(malformed: MalformedRecords) -> Router<Shared> {
    Router::new()
        .route("/_sandbox/records/{stream}", get(records))
        .route("/_sandbox/touch", post(touch))
        .route(
            "/_sandbox/faults",
            post(move |state: State<Shared>, body: Json<FaultsRequest>| {
                faults(state, body, malformed)
            }),
        )
        .route("/_sandbox/stats", get(stats))
}

async fn records(State(vms): State<Shared>, Path(stream): Path<String>) -> Response {
    if vms.partner.stream(&stream).is_none() {
        return unknown(&vms, &stream);
    }
    let world = vms.world();
    let data = world.records.get(&stream).cloned().unwrap_or_default();
    let malformed = world.malformed.get(&stream).cloned().unwrap_or_default();
    Json(json!({"total": data.len(), "data": data, "malformed": malformed})).into_response()
}

#[derive(Debug, Deserialize)]
struct TouchRequest {
    stream: String,
    ids: Vec<Value>,
    #[serde(default)]
    changes: Map<String, Value>,
}

async fn touch(State(vms): State<Shared>, Json(request): Json<TouchRequest>) -> Response {
    let Some(spec) = vms.partner.stream(&request.stream) else {
        return unknown(&vms, &request.stream);
    };
    let mut world = vms.world();
    let now = now_rfc3339();
    let records = world.records.entry(request.stream.clone()).or_default();
    for id in &request.ids {
        let wanted = id_text(id);
        let Some(Value::Object(record)) = records
            .iter_mut()
            .find(|record| id_text(&record[spec.id_field]) == wanted)
        else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no {} with id {wanted}", request.stream),
            );
        };
        record.extend(request.changes.clone());
        record.insert(spec.cursor_field.to_owned(), json!(now));
    }
    Json(json!({"touched": request.ids, "at": now})).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct FaultsRequest {
    rate_limit_burst: Option<u32>,
    retry_after_seconds: Option<u64>,
    server_error_burst: Option<u32>,
    malformed: Option<bool>,
    #[serde(default)]
    expire_sessions: bool,
}

async fn faults(
    State(vms): State<Shared>,
    Json(request): Json<FaultsRequest>,
    malformed: MalformedRecords,
) -> Response {
    let mut world = vms.world();
    if let Some(burst) = request.rate_limit_burst {
        world.faults.rate_limit_burst = burst;
        world.faults.retry_after_seconds = request.retry_after_seconds.unwrap_or(1);
    }
    if let Some(burst) = request.server_error_burst {
        world.faults.server_error_burst = burst;
    }
    if let Some(on) = request.malformed {
        world.faults.malformed = on;
        world.malformed = if on { malformed() } else { BTreeMap::new() };
    }
    if request.expire_sessions {
        // Every token issued so far stops working, as when the partner's tokens lapse.
        world.tokens.clear();
    }
    Json(json!(world.faults)).into_response()
}

async fn stats(State(vms): State<Shared>) -> Response {
    Json(json!(vms.world().stats)).into_response()
}

fn unknown(vms: &Shared, stream: &str) -> Response {
    let names: Vec<&str> = vms.partner.streams.iter().map(|s| s.name).collect();
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("unknown stream {stream}; one of {}", names.join(", ")),
    )
}
