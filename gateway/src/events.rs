//! Live status for the dashboard: `GET /events` relays the session tenant's health
//! `WatchStatus` stream as server-sent events, one `status` event per change (and one per
//! integration when the stream opens). The tenant comes from the session, and health answers
//! for that tenant only.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;

use plugboard_proto::health::v1::{IntegrationStatus, WatchStatusRequest, WatchStatusResponse};

use crate::dashboard::{SessionTenant, status_label};
use crate::error::Error;
use crate::routes::AppState;

/// What the page's script needs to update one integration in place.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct StatusData {
    pub id: String,
    pub connector: String,
    pub status: &'static str,
    pub label: &'static str,
    pub reason: String,
    pub action: String,
    pub snapshot: bool,
}

fn status_name(status: IntegrationStatus) -> &'static str {
    match status {
        IntegrationStatus::Operational => "operational",
        IntegrationStatus::Degraded => "degraded",
        IntegrationStatus::Down => "down",
        IntegrationStatus::NeedsReconnect => "needs_reconnect",
        IntegrationStatus::Paused => "paused",
        IntegrationStatus::Unspecified => "unknown",
    }
}

pub fn to_data(message: WatchStatusResponse) -> Option<StatusData> {
    let integration = message.integration?;
    let status = status_name(integration.status());
    Some(StatusData {
        id: integration.connection_id,
        connector: integration.connector,
        status,
        label: status_label(status),
        reason: integration.reason,
        action: integration.action,
        snapshot: message.snapshot,
    })
}

/// `GET /events`.
pub async fn stream(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
) -> Response {
    let mut health = state.mesh.health_for(&tenant_id);
    let watch = match health
        .watch_status(WatchStatusRequest {
            connection_id: String::new(),
        })
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return Error::upstream("health", &status).into_response(),
    };
    tracing::debug!(tenant_id = %tenant_id, "status stream opened");
    Sse::new(events(watch))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Ends when health ends the stream or fails; the browser's `EventSource` reconnects by itself.
fn events(
    watch: tonic::Streaming<WatchStatusResponse>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    watch
        .take_while(|item| {
            if let Err(status) = item {
                tracing::warn!(code = ?status.code(), "status stream from health ended");
            }
            std::future::ready(item.is_ok())
        })
        .filter_map(|item| async move {
            let data = to_data(item.ok()?)?;
            Event::default().event("status").json_data(data).ok()
        })
        .map(Ok)
}
