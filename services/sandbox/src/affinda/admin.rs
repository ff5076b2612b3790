//! `/_sandbox/` endpoints for tests and the conformance kit: records, faults, counters. No
//! authentication: the sandbox only ever listens on loopback.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::Shared;

/// `GET /_sandbox/records/documents`: the parsed documents as the list serves them.
pub async fn records(State(sandbox): State<Shared>, Path(stream): Path<String>) -> Response {
    if stream != "documents" {
        let body = json!({"error": format!("unknown stream {stream}; one of documents")});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let world = sandbox.world();
    let data: Vec<&Value> = world
        .documents
        .iter()
        .filter(|stored| stored.pending.is_none())
        .map(|stored| &stored.document)
        .collect();
    Json(json!({"total": data.len(), "data": data, "malformed": world.malformed})).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct FaultsRequest {
    pub rate_limit_burst: Option<u32>,
    pub retry_after_seconds: Option<u64>,
    pub server_error_burst: Option<u32>,
    pub malformed: Option<bool>,
}

/// `POST /_sandbox/faults`: arms faults; fields left out keep their state.
pub async fn faults(State(sandbox): State<Shared>, Json(request): Json<FaultsRequest>) -> Response {
    let mut world = sandbox.world();
    if let Some(burst) = request.rate_limit_burst {
        world.faults.rate_limit_burst = burst;
        world.faults.retry_after_seconds = request.retry_after_seconds.unwrap_or(1);
    }
    if let Some(burst) = request.server_error_burst {
        world.faults.server_error_burst = burst;
    }
    if let Some(on) = request.malformed {
        world.set_malformed(on);
    }
    Json(json!(world.faults)).into_response()
}

/// `GET /_sandbox/stats`.
pub async fn stats(State(sandbox): State<Shared>) -> Response {
    Json(json!(sandbox.world().stats)).into_response()
}
