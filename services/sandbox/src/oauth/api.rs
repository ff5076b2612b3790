//! A protected resource API behind the authorization server, shaped like JobAdder's (an ATS
//! whose refresh tokens rotate): `GET /oauth2/api/candidates?offset=&limit=` answers
//! `{items, totalCount}` for a live bearer token and 401 otherwise, so a connector's whole
//! read, token expiry mid-run included, goes through the strict OAuth server.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::Shared;

/// Most candidates one page returns.
const MAX_LIMIT: usize = 100;

/// The seeded candidates: deterministic, so tests can compare a sync with them.
pub fn candidates(count: usize) -> Vec<Value> {
    const FIRST: [&str; 6] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"];
    const LAST: [&str; 5] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov"];
    (0..count)
        .map(|index| {
            let first = FIRST[index % FIRST.len()];
            let last = LAST[index % LAST.len()];
            json!({
                "candidateId": 1000 + index,
                "firstName": first,
                "lastName": last,
                "email": format!("{}.{}{index}@example.com", first.to_lowercase(), last.to_lowercase()),
                "updatedAt": format!("2026-01-{:02}T09:00:00Z", 1 + index % 28),
            })
        })
        .collect()
}

/// `GET /oauth2/api/candidates`: one page of the seeded candidates.
pub async fn list_candidates(
    State(server): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    {
        let mut grants = server.grants();
        grants.stats.api_calls += 1;
        let live = grants.access.get(token).is_some_and(|grant| {
            grant.expires > Instant::now() && !grants.revoked.contains(&grant.family)
        });
        if !live {
            grants.stats.api_refusals += 1;
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            )
                .into_response();
        }
    }
    let number = |name: &str, default: usize| {
        query
            .get(name)
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let all = candidates(server.options.candidates);
    let offset = number("offset", 0).min(all.len());
    let limit = number("limit", 25).clamp(1, MAX_LIMIT);
    let items: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    Json(json!({ "items": items, "totalCount": all.len() })).into_response()
}
