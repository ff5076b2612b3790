//! Harvest's endpoints: listing with `Link` paging and `*_after` filters, reading, creating and
//! updating candidates. Every call passes the gate first, in order: Basic auth (401), armed 429
//! burst, armed 500 burst, then the request budget (429 with `Retry-After`).

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::state::{Shared, cursor_field, now_rfc3339};

/// Harvest's default and largest `per_page`.
const DEFAULT_PER_PAGE: usize = 100;
const MAX_PER_PAGE: usize = 500;

type Params = HashMap<String, String>;

pub async fn list_candidates(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    list(&sandbox, "candidates", "updated_after", &params, &headers)
}

pub async fn list_jobs(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    list(&sandbox, "jobs", "updated_after", &params, &headers)
}

pub async fn list_applications(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    list(
        &sandbox,
        "applications",
        "last_activity_after",
        &params,
        &headers,
    )
}

fn list(
    sandbox: &Shared,
    stream: &str,
    filter: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    if let Err(response) = admit(sandbox, headers, Some(stream)) {
        return *response;
    }
    let per_page = match params.get("per_page").map(|v| v.parse::<usize>()) {
        None => DEFAULT_PER_PAGE,
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "per_page must be 1 to 500",
            );
        }
    };
    let page = match params.get("page").map(|v| v.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "page must be at least 1"),
    };
    let after = match params.get(filter) {
        None => None,
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(time) => Some(time.timestamp_millis()),
            Err(_) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("{filter} must be an ISO-8601 timestamp"),
                );
            }
        },
    };
    let world = sandbox.world();
    let field = cursor_field(stream);
    let mut matching: Vec<&Value> = world
        .records
        .get(stream)
        .map(|records| records.iter().collect())
        .unwrap_or_default();
    if stream == "candidates" {
        matching.extend(world.malformed.iter());
    }
    // `*_after` includes its bound, as Harvest's does.
    matching.retain(|record| {
        after.is_none_or(|after| {
            record[field]
                .as_str()
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
                .is_some_and(|time| time.timestamp_millis() >= after)
        })
    });
    let last = matching.len().div_ceil(per_page).max(1);
    let data: Vec<&Value> = matching
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .copied()
        .collect();
    let link = |n: usize| {
        let mut query: Vec<(String, String)> = params
            .iter()
            .filter(|(key, _)| key.as_str() != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        query.push(("page".to_owned(), n.to_string()));
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        format!("<{}/v1/{stream}?{}>", origin(headers), encoded.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    links.push(format!("{}; rel=\"last\"", link(last)));
    let mut response = Json(json!(data)).into_response();
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

pub async fn get_candidate(
    State(sandbox): State<Shared>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers, Some("candidates")) {
        return *response;
    }
    let world = sandbox.world();
    match world.records["candidates"]
        .iter()
        .find(|c| c["id"] == json!(id))
    {
        Some(candidate) => Json(candidate.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Resource not found"),
    }
}

/// `POST /v1/candidates`: needs `On-Behalf-Of`; answers 201 with the new candidate.
pub async fn create_candidate(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers, Some("candidates")) {
        return *response;
    }
    if headers.get("On-Behalf-Of").is_none() {
        return error(StatusCode::FORBIDDEN, "On-Behalf-Of header is required");
    }
    let Some(fields) = body.as_object() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "body must be an object");
    };
    for required in ["first_name", "last_name"] {
        if !fields.get(required).is_some_and(Value::is_string) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{required} is required"),
            );
        }
    }
    let mut world = sandbox.world();
    world.stats.writes += 1;
    let candidates = world.records.entry("candidates").or_default();
    let id = candidates
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .max()
        .unwrap_or(50_000_000)
        + 1;
    let now = now_rfc3339();
    let mut candidate = Map::new();
    candidate.insert("id".to_owned(), json!(id));
    for (key, value) in fields {
        candidate.insert(key.clone(), value.clone());
    }
    for key in ["created_at", "updated_at", "last_activity"] {
        candidate.insert(key.to_owned(), json!(now));
    }
    let candidate = Value::Object(candidate);
    candidates.push(candidate.clone());
    (StatusCode::CREATED, Json(candidate)).into_response()
}

/// `PATCH /v1/candidates/{id}`: merges the given fields.
pub async fn update_candidate(
    State(sandbox): State<Shared>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers, Some("candidates")) {
        return *response;
    }
    if headers.get("On-Behalf-Of").is_none() {
        return error(StatusCode::FORBIDDEN, "On-Behalf-Of header is required");
    }
    let mut world = sandbox.world();
    world.stats.writes += 1;
    let Some(Value::Object(candidate)) = world
        .records
        .get_mut("candidates")
        .and_then(|all| all.iter_mut().find(|c| c["id"] == json!(id)))
    else {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    };
    if let Some(fields) = body.as_object() {
        for (key, value) in fields {
            candidate.insert(key.clone(), value.clone());
        }
    }
    candidate.insert("updated_at".to_owned(), json!(now_rfc3339()));
    Json(Value::Object(candidate.clone())).into_response()
}

/// Authentication, faults and the request budget, for the test fixture's endpoints too.
pub(super) fn admit_request(
    sandbox: &Shared,
    headers: &HeaderMap,
    stream: Option<&str>,
) -> Result<(), Box<Response>> {
    admit(sandbox, headers, stream)
}

/// Authentication, faults and the request budget.
fn admit(sandbox: &Shared, headers: &HeaderMap, stream: Option<&str>) -> Result<(), Box<Response>> {
    let mut world = sandbox.world();
    world.stats.requests += 1;
    if let Some(stream) = stream {
        *world
            .stats
            .stream_requests
            .entry(stream.to_owned())
            .or_default() += 1;
    }
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:", sandbox.options.api_key))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == expected);
    if !authorized {
        world.stats.unauthorized += 1;
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "Invalid Basic Auth credentials",
        )));
    }
    if world.faults.rate_limit_burst > 0 {
        world.faults.rate_limit_burst -= 1;
        world.stats.rate_limited += 1;
        return Err(Box::new(too_many(world.faults.retry_after_seconds)));
    }
    if world.faults.server_error_burst > 0 {
        world.faults.server_error_burst -= 1;
        world.stats.server_errors += 1;
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
        )));
    }
    if let Some((requests, window)) = sandbox.options.rate_limit {
        let now = Instant::now();
        if now.duration_since(world.window.0) >= window {
            world.window = (now, 0);
        }
        if world.window.1 >= requests {
            world.stats.rate_limited += 1;
            let left = window.saturating_sub(now.duration_since(world.window.0));
            return Err(Box::new(too_many(left.as_secs().max(1))));
        }
        world.window.1 += 1;
    }
    Ok(())
}

fn too_many(retry_after: u64) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

/// `http://host:port` as the caller reached the sandbox.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Percent-encodes a query value (timestamps carry `:` and `+`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
