//! Entity endpoints under `restUrl`: `query/{entity}`, `search/{entity}` and `ping`.
//!
//! Every call needs a live `BhRestToken` (query parameter or header) and passes the fault and
//! rate-limit gate first, in that order: 401, armed 429 burst, the armed daily quota (429 with
//! `Retry-After` until its reset), armed 500 burst, then the per-second budget (429 with
//! `Retry-After: 1`). An armed delay slows query and search down before all that.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ENTITIES;
use super::auth::bullhorn_error;
use super::filter::{self, Condition};
use super::schema;
use super::state::{Shared, now_seconds};

/// Records per page when `count` is not given.
const DEFAULT_COUNT: usize = 20;
/// Bullhorn caps `count` at 500.
pub const MAX_COUNT: usize = 500;

type Params = HashMap<String, String>;

/// `GET {restUrl}ping`: session check, as Bullhorn's `/ping`.
pub async fn ping(
    State(sandbox): State<Shared>,
    Path(corp): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&sandbox, &corp, &params, &headers, None) {
        return *response;
    }
    let expires = (now_seconds() + sandbox.options.session_ttl.as_secs()) * 1000;
    Json(json!({"sessionExpires": expires})).into_response()
}

/// `GET {restUrl}query/{entity}?where=&fields=&orderBy=&start=&count=`.
pub async fn query(
    State(sandbox): State<Shared>,
    Path((corp, entity)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    slow_down(&sandbox).await;
    if let Err(response) = admit(&sandbox, &corp, &params, &headers, Some(&entity)) {
        return *response;
    }
    let Some(clause) = params.get("where") else {
        return bad_request("'where' is required for query.");
    };
    match filter::parse_where(clause) {
        Ok(conditions) => list(&sandbox, &entity, &conditions, &params, "orderBy", false),
        Err(message) => bad_request(&message),
    }
}

/// `GET {restUrl}search/{entity}?query=&fields=&sort=&start=&count=`.
pub async fn search(
    State(sandbox): State<Shared>,
    Path((corp, entity)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    slow_down(&sandbox).await;
    if let Err(response) = admit(&sandbox, &corp, &params, &headers, Some(&entity)) {
        return *response;
    }
    let Some(text) = params.get("query") else {
        return bad_request("'query' is required for search.");
    };
    match filter::parse_search(text) {
        Ok(conditions) => list(&sandbox, &entity, &conditions, &params, "sort", true),
        Err(message) => bad_request(&message),
    }
}

/// Takes the armed `delay_ms` before answering, outside the lock.
async fn slow_down(sandbox: &Shared) {
    let delay = sandbox.world().faults.delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
}

/// Authentication, faults and the rate budget for one entity request.
fn admit(
    sandbox: &Shared,
    corp: &str,
    params: &Params,
    headers: &HeaderMap,
    entity: Option<&str>,
) -> Result<(), Box<Response>> {
    let mut world = sandbox.world();
    world.stats.requests += 1;
    if let Some(entity) = entity {
        *world
            .stats
            .entity_requests
            .entry(entity.to_owned())
            .or_default() += 1;
    }
    let session = params
        .get("BhRestToken")
        .map(String::as_str)
        .or_else(|| headers.get("BhRestToken").and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .to_owned();
    let now = Instant::now();
    let live = corp == sandbox.options.corp_token
        && world
            .sessions
            .get(&session)
            .is_some_and(|expires| *expires > now);
    if !live {
        world.stats.unauthorized += 1;
        return Err(Box::new(bullhorn_error(
            StatusCode::UNAUTHORIZED,
            "Bad 'BhRestToken' or timed-out.",
            "errors.authentication.invalidRestToken",
        )));
    }
    // Sessions expire after idling, so each use extends them.
    world
        .sessions
        .insert(session, now + sandbox.options.session_ttl);

    if world.faults.rate_limit_burst > 0 {
        world.faults.rate_limit_burst -= 1;
        world.stats.rate_limited += 1;
        return Err(Box::new(too_many_requests(
            world.faults.retry_after_seconds,
        )));
    }
    if let Some(quota) = &mut world.faults.quota
        && let Err(resets_in) = quota.take(now_seconds())
    {
        world.stats.quota_refused += 1;
        return Err(Box::new(too_many_requests(resets_in)));
    }
    if world.faults.server_error_burst > 0 {
        world.faults.server_error_burst -= 1;
        world.stats.server_errors += 1;
        return Err(Box::new(bullhorn_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred.",
            "errors.internal",
        )));
    }
    if let Some(budget) = sandbox.options.requests_per_second {
        let second = now_seconds();
        if world.window.0 != second {
            world.window = (second, 0);
        }
        world.window.1 += 1;
        if world.window.1 > budget {
            world.stats.rate_limited += 1;
            return Err(Box::new(too_many_requests(1)));
        }
    }
    Ok(())
}

fn list(
    sandbox: &Shared,
    entity: &str,
    conditions: &[Condition],
    params: &Params,
    sort_param: &str,
    scored: bool,
) -> Response {
    let Some(known) = schema::fields(entity).filter(|_| ENTITIES.contains(&entity)) else {
        return bullhorn_error(
            StatusCode::NOT_FOUND,
            &format!("Entity '{entity}' not supported by this sandbox."),
            "errors.entity.notFound",
        );
    };
    for condition in conditions {
        let root = condition.field().split('.').next().unwrap_or_default();
        if !known.contains(root) {
            return bad_request(&format!("Invalid field '{root}' for {entity}."));
        }
    }
    let selections = match filter::parse_fields(params.get("fields").map_or("*", String::as_str)) {
        Ok(selections) => selections,
        Err(message) => return bad_request(&message),
    };
    if let Some(unknown) = selections
        .iter()
        .flatten()
        .find(|selection| selection.name != "*" && !known.contains(&selection.name))
    {
        return bad_request(&format!("Invalid field '{}' for {entity}.", unknown.name));
    }
    let start = match parse_number(params, "start", 0) {
        Ok(start) => start,
        Err(response) => return *response,
    };
    let count = match parse_number(params, "count", DEFAULT_COUNT) {
        Ok(count) => count.min(MAX_COUNT),
        Err(response) => return *response,
    };
    let sort = filter::parse_sort(params.get(sort_param).map(String::as_str));

    // Only the page is cloned, and the records are kept sorted between pages
    // ([`super::index`]): a benchmark's sandbox holds 100,000 records.
    let (total, data) = {
        let mut world = sandbox.world();
        let page = world.query(entity, conditions, &sort, start, count);
        let data: Vec<Value> = page
            .records
            .iter()
            .map(|record| {
                let mut projected = match &selections {
                    Some(selections) => filter::project(record, selections),
                    None => (*record).clone(),
                };
                if scored && let Some(object) = projected.as_object_mut() {
                    object.insert("_score".to_owned(), json!(1.0));
                }
                projected
            })
            .collect();
        (page.total, data)
    };
    Json(json!({"total": total, "start": start, "count": data.len(), "data": data})).into_response()
}

fn parse_number(params: &Params, key: &str, default: usize) -> Result<usize, Box<Response>> {
    match params.get(key) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            Box::new(bad_request(&format!(
                "'{key}' must be a non-negative integer."
            )))
        }),
    }
}

fn bad_request(message: &str) -> Response {
    bullhorn_error(StatusCode::BAD_REQUEST, message, "errors.badRequest")
}

fn too_many_requests(retry_after_seconds: u64) -> Response {
    let mut response = bullhorn_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests. Please retry later.",
        "errors.tooManyRequests",
    );
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
