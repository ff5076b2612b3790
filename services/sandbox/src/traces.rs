//! Which traces reached the partner: the W3C `traceparent` of recent requests.
//!
//! Real partners ignore `traceparent`; the sandbox keeps the trace ids it was sent so a test can
//! follow one trace from the caller through the mesh to the partner's door. `GET
//! /_sandbox/traces` answers `{"trace_ids": [...]}`, oldest first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Enough for a test's run; older ids fall out first.
const KEPT: usize = 4096;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<VecDeque<String>>>);

impl Seen {
    fn push(&self, trace_id: String) {
        // A poisoned lock only means another request panicked mid-push; the ids stay usable.
        let mut ids = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.len() == KEPT {
            ids.pop_front();
        }
        ids.push_back(trace_id);
    }

    fn list(&self) -> Vec<String> {
        let ids = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter().cloned().collect()
    }
}

/// `router` with every request's trace id recorded and `/_sandbox/traces` added.
pub fn recorded(router: Router) -> Router {
    let seen = Seen::default();
    router
        .route("/_sandbox/traces", get(list).with_state(seen.clone()))
        .layer(middleware::from_fn_with_state(seen, record))
}

async fn record(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    if let Some(trace_id) = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(trace_id)
    {
        seen.push(trace_id.to_owned());
    }
    next.run(request).await
}

async fn list(State(seen): State<Seen>) -> Json<Value> {
    Json(json!({ "trace_ids": seen.list() }))
}

/// The trace id of a version-00 `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace_id), Some(span_id), Some(_flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(trace_id, 32) && hex(span_id, 16)).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::trace_id;

    #[test]
    fn reads_the_trace_id_of_a_well_formed_traceparent_only() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id(""), None);
    }
}
