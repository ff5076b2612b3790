//! A starter partner: the sandbox `plugboard connector new` copies for a new connector, which
//! serves the scaffolded manifest as it is and passes the conformance kit, so the work starts
//! from a green suite. Replace its records, routes and auth with the partner's real ones.
//!
//! It speaks: `Authorization: Bearer <key>`; `GET /candidates?limit=&offset=&updated_since=`
//! answering `{"data": [...]}` sorted by (`updated_at`, `id`), the bound inclusive; and the
//! `/_sandbox/` contract (records, touch, faults, stats).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The API key the sandbox accepts (`conformance.yaml` has it).
pub const DEMO_API_KEY: &str = "starter-demo-key";

#[derive(Debug, Clone)]
pub struct StarterOptions {
    pub api_key: String,
    /// Candidates at start.
    pub records: usize,
}

impl Default for StarterOptions {
    fn default() -> StarterOptions {
        StarterOptions {
            api_key: DEMO_API_KEY.to_owned(),
            records: 40,
        }
    }
}

#[derive(Default)]
struct Faults {
    rate_limit_burst: u32,
    retry_after_seconds: u64,
    server_error_burst: u32,
}

#[derive(Default)]
struct World {
    records: Vec<Value>,
    malformed: Vec<Value>,
    faults: Faults,
    requests: u64,
}

struct Sandbox {
    options: StarterOptions,
    world: Mutex<World>,
}

impl Sandbox {
    fn world(&self) -> MutexGuard<'_, World> {
        // Plain data: a panic while holding the lock leaves nothing half-written.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Shared = Arc<Sandbox>;

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The sandbox's routes.
pub fn router(options: StarterOptions) -> Router {
    let seeded = (1..=options.records)
        .map(|id| {
            json!({
                "id": id,
                "first_name": format!("First{id}"),
                "last_name": format!("Last{id}"),
                "email": format!("person{id}@example.com"),
                // Two records per second of 2026-01-01, so records share timestamps.
                "updated_at": format!("2026-01-01T00:00:{:02}.000Z", (id / 2) % 60),
            })
        })
        .collect();
    let sandbox = Sandbox {
        options,
        world: Mutex::new(World {
            records: seeded,
            ..World::default()
        }),
    };
    Router::new()
        .route("/candidates", get(list))
        .route("/_sandbox/records/{stream}", get(records))
        .route("/_sandbox/touch", post(touch))
        .route("/_sandbox/faults", post(faults))
        .route("/_sandbox/stats", get(stats))
        .with_state(Arc::new(sandbox))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn list(
    State(sandbox): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut world = sandbox.world();
    world.requests += 1;
    let expected = format!("Bearer {}", sandbox.options.api_key);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return error(StatusCode::UNAUTHORIZED, "invalid api key");
    }
    if world.faults.rate_limit_burst > 0 {
        world.faults.rate_limit_burst -= 1;
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
        if let Ok(value) = HeaderValue::from_str(&world.faults.retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if world.faults.server_error_burst > 0 {
        world.faults.server_error_burst -= 1;
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    let number = |key: &str, default: usize| {
        params
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (offset, limit) = (number("offset", 0), number("limit", 100));
    let since = params.get("updated_since").cloned().unwrap_or_default();
    // RFC 3339 in one zone and precision compares as text.
    let mut matching: Vec<&Value> = world
        .records
        .iter()
        .chain(&world.malformed)
        .filter(|record| record["updated_at"].as_str().unwrap_or_default() >= since.as_str())
        .collect();
    matching.sort_by_key(|record| {
        (
            record["updated_at"].as_str().unwrap_or_default().to_owned(),
            record["id"].as_u64().unwrap_or(0),
        )
    });
    let data: Vec<&Value> = matching.into_iter().skip(offset).take(limit).collect();
    Json(json!({"data": data})).into_response()
}

async fn records(State(sandbox): State<Shared>, Path(stream): Path<String>) -> Response {
    if stream != "candidates" {
        return error(StatusCode::NOT_FOUND, "unknown stream; one of candidates");
    }
    let world = sandbox.world();
    Json(json!({"data": world.records, "malformed": world.malformed})).into_response()
}

#[derive(Deserialize)]
struct TouchRequest {
    ids: Vec<Value>,
    #[serde(default)]
    changes: Map<String, Value>,
}

/// Applies `changes` and gives every record one new `updated_at`.
async fn touch(State(sandbox): State<Shared>, Json(request): Json<TouchRequest>) -> Response {
    let mut world = sandbox.world();
    let at = now();
    for id in &request.ids {
        let Some(Value::Object(record)) = world.records.iter_mut().find(|r| r["id"] == *id) else {
            return error(StatusCode::NOT_FOUND, &format!("no candidate {id}"));
        };
        record.extend(request.changes.clone());
        record.insert("updated_at".to_owned(), json!(at));
    }
    Json(json!({"touched": request.ids, "at": at})).into_response()
}

#[derive(Deserialize)]
struct FaultsRequest {
    rate_limit_burst: Option<u32>,
    retry_after_seconds: Option<u64>,
    server_error_burst: Option<u32>,
    malformed: Option<bool>,
}

async fn faults(State(sandbox): State<Shared>, Json(request): Json<FaultsRequest>) -> Response {
    let mut world = sandbox.world();
    if let Some(burst) = request.rate_limit_burst {
        world.faults.rate_limit_burst = burst;
        world.faults.retry_after_seconds = request.retry_after_seconds.unwrap_or(1);
    }
    if let Some(burst) = request.server_error_burst {
        world.faults.server_error_burst = burst;
    }
    if let Some(on) = request.malformed {
        // One the connector refuses (no id), one the mapping refuses (no last name).
        world.malformed = if on {
            vec![
                json!({"first_name": "No", "last_name": "Id", "updated_at": now()}),
                json!({"id": 90_001, "first_name": "No", "updated_at": now()}),
            ]
        } else {
            Vec::new()
        };
    }
    Json(json!({"armed": true})).into_response()
}

async fn stats(State(sandbox): State<Shared>) -> Response {
    Json(json!({"requests": sandbox.world().requests})).into_response()
}
