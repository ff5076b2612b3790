//! `/_sandbox/oauth2/` admin endpoints: counters and fault injection for tests.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::state::Shared;

/// `GET /_sandbox/oauth2/stats`: token-endpoint calls (total and per grant type), refresh
/// token reuses, authorizations and injected failures.
pub async fn stats(State(server): State<Shared>) -> Response {
    let grants = server.grants();
    Json(json!(grants.stats)).into_response()
}

/// The body of `POST /_sandbox/oauth2/faults`; omitted fields leave a fault as it is.
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// Fail the next N token calls...
    pub fail_next: Option<u32>,
    /// ...with this HTTP status (default 503).
    pub status: Option<u16>,
    /// Delay every token call by this many milliseconds.
    pub delay_ms: Option<u64>,
    /// Revoke every token family now: the user withdrew consent.
    #[serde(default)]
    pub revoke_consent: bool,
    /// End every access token now (refresh tokens stay valid): early expiry mid-run.
    #[serde(default)]
    pub expire_access_tokens: bool,
}

pub async fn faults(State(server): State<Shared>, Json(request): Json<FaultRequest>) -> Response {
    let mut grants = server.grants();
    if let Some(fail_next) = request.fail_next {
        grants.faults.fail_next = fail_next;
        grants.faults.fail_status = request.status.unwrap_or(503);
    }
    if let Some(delay_ms) = request.delay_ms {
        grants.faults.delay = Duration::from_millis(delay_ms);
    }
    if request.revoke_consent {
        grants.revoke_all();
    }
    if request.expire_access_tokens {
        grants.expire_access_tokens();
    }
    Json(json!({
        "fail_next": grants.faults.fail_next,
        "delay_ms": u64::try_from(grants.faults.delay.as_millis()).unwrap_or(u64::MAX),
        "revoked_families": grants.revoked.len(),
    }))
    .into_response()
}
