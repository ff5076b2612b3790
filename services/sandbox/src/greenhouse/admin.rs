//! `/_sandbox/` endpoints for tests and the conformance kit: read records, change them, arm
//! faults, read counters (signed webhooks are in [`super::webhooks`]). No authentication: the sandbox only ever
//! listens on loopback.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::STREAMS;
use super::api::error;
use super::state::{Shared, cursor_field, now_rfc3339};

/// `GET /_sandbox/records/{stream}`: `{"total", "data": [...] (by id), "malformed": [...]}`.
pub async fn records(State(sandbox): State<Shared>, Path(stream): Path<String>) -> Response {
    let world = sandbox.world();
    let Some(records) = world.records.get(stream.as_str()) else {
        return unknown(&stream);
    };
    let malformed = if stream == "candidates" {
        world.malformed.clone()
    } else {
        Vec::new()
    };
    Json(json!({"total": records.len(), "data": records, "malformed": malformed})).into_response()
}

#[derive(Debug, Deserialize)]
pub struct TouchRequest {
    pub stream: String,
    pub ids: Vec<Value>,
    #[serde(default)]
    pub changes: Map<String, Value>,
}

/// `POST /_sandbox/touch`: applies `changes` and moves the stream's cursor field to now.
pub async fn touch(State(sandbox): State<Shared>, Json(request): Json<TouchRequest>) -> Response {
    let mut world = sandbox.world();
    let Some(records) = world.records.get_mut(request.stream.as_str()) else {
        return unknown(&request.stream);
    };
    let field = cursor_field(&request.stream);
    let now = now_rfc3339();
    for id in &request.ids {
        let Some(Value::Object(record)) = records.iter_mut().find(|r| r["id"] == *id) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no {} with id {id}", request.stream),
            );
        };
        for (key, value) in &request.changes {
            record.insert(key.clone(), value.clone());
        }
        record.insert(field.to_owned(), json!(now));
    }
    Json(json!({"touched": request.ids, "at": now})).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct FaultsRequest {
    pub rate_limit_burst: Option<u32>,
    pub retry_after_seconds: Option<u64>,
    pub server_error_burst: Option<u32>,
    pub malformed: Option<bool>,
    pub deleted_endpoint_fails: Option<bool>,
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
    if let Some(on) = request.deleted_endpoint_fails {
        world.faults.deleted_endpoint_fails = on;
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

fn unknown(stream: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("unknown stream {stream}; one of {}", STREAMS.join(", ")),
    )
}
