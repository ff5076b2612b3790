//! Partner webhooks: the public route partners deliver to, and the API that enables it.
//!
//! `POST /webhooks/{connector}/{connection_id}` needs no key (partners cannot send ours): the
//! tenant is the one that registered the connection's route ([`crate::tenants`]), never
//! anything in the delivery. The body is kept byte for byte (the signature covers it) and
//! capped at [`MAX_BODY_BYTES`]. Each connection has a budget of deliveries
//! ([`crate::webhook_budget`]), one for every gateway replica when `PLUGBOARD_REDIS_URL` is
//! set; a spent budget is answered 429 with `Retry-After`. The connector, resolved through the
//! registry, verifies the delivery with the connection's webhook secret (`HandleWebhook`); a
//! forged, wrongly signed or too old delivery gets 401 and nothing else happens, and a signed
//! body the connector cannot read (not JSON, no event type) gets 400 saying why. Verified events go to sync
//! (`IngestWebhookEvents`, in order, at most [`EVENTS_PER_INGEST`] a call), which drops repeats,
//! ignores stale events, tombstones deletes and reads the changed stream; the partner gets 200
//! once sync has them durably, with the counts and, for a batched delivery, the elements the
//! connector refused (`rejected`: index and reason), which no retry would change.
//!
//! `PUT /api/v1/integrations/{id}/webhook` (bearer API key, `{"secret": "..."}`) stores the
//! secret the tenant configured at the partner as the connection's webhook secret in
//! credentials and registers the route; it answers `{"path": "/webhooks/..."}`. The
//! integration page's form (`POST /integrations/{id}/webhook`, field `secret`) does the same.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;
use tonic::transport::Channel;

use plugboard_proto::connector::v1::connector_service_client::ConnectorServiceClient;
use plugboard_proto::connector::v1::{ConnectionRef, HandleWebhookRequest, WebhookHeader};
use plugboard_proto::credentials::v1::{PutCredentialRequest, Secret, WebhookSecret, secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::sync::v1::{InboundEvent, IngestWebhookEventsRequest};
use plugboard_runtime::channel::lazy_channel;

use crate::api::ApiTenant;
use crate::dashboard::{SessionTenant, check_same_origin, message_page, redirect_to};
use crate::error::Error;
use crate::json_body::JsonBody;
use crate::mesh::CALL_TIMEOUT;
use crate::routes::AppState;
use crate::webhook_budget::{DeliveryBudget, DeliveryLimiter};

/// Largest delivery accepted; single events are a few kilobytes, a batch some dozens of them.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Events handed to sync in one call (sync takes at most 100).
pub const EVENTS_PER_INGEST: usize = 100;
/// Connector channels kept before the cache starts over (instances come and go).
const MAX_CHANNELS: usize = 256;
/// Headers never handed on: they carry nothing a signature covers and may carry credentials.
const DROPPED_HEADERS: &[&str] = &["cookie", "authorization", "proxy-authorization"];

/// What the webhook route keeps between deliveries.
pub struct Relay {
    limiter: DeliveryLimiter,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Default for Relay {
    /// The default budget, counted in this replica only.
    fn default() -> Relay {
        Relay::new(DeliveryLimiter::new(DeliveryBudget::default(), None))
    }
}

impl Relay {
    pub fn new(limiter: DeliveryLimiter) -> Relay {
        Relay {
            limiter,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channel(&self, address: &str) -> Result<Channel, Error> {
        // Plain data: a panic elsewhere cannot leave the map half-written.
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        if channels.len() >= MAX_CHANNELS {
            channels.clear();
            self.limiter.forget_idle();
        }
        let channel = lazy_channel(address).map_err(|source| Error::Address {
            service: "connector",
            source,
        })?;
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// `POST /webhooks/{connector}/{connection_id}`.
pub async fn receive(
    State(state): State<AppState>,
    Path((connector, connection_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match relay(&state, &connector, &connection_id, &headers, body).await {
        Ok(answer) => answer.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn relay(
    state: &AppState,
    connector: &str,
    connection_id: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, Error> {
    // Unknown ids are limited too, so probing for routes costs the prober, not the database.
    if let Err(retry_after) = state.webhooks.limiter.check_replica(connection_id) {
        tracing::info!(
            connection_id,
            "webhook deliveries rate limited by this replica"
        );
        return Err(Error::WebhookRateLimited { retry_after });
    }
    let endpoint = state
        .store
        .webhook_endpoint(connection_id)
        .await?
        .filter(|endpoint| endpoint.connector == connector)
        .ok_or(Error::WebhookEndpointNotFound)?;
    let tenant_id = endpoint.tenant_id;
    if let Err(retry_after) = state
        .webhooks
        .limiter
        .check_shared(&tenant_id, connection_id)
        .await
    {
        tracing::info!(
            connection_id,
            tenant_id,
            "webhook deliveries rate limited across replicas"
        );
        return Err(Error::WebhookRateLimited { retry_after });
    }

    let resolved = state
        .mesh
        .registry()
        .resolve(with_timeout(ResolveRequest {
            connector: connector.to_owned(),
        }))
        .await
        .map_err(|status| Error::upstream("registry", &status))?
        .into_inner();
    let channel = state.webhooks.channel(&resolved.address)?;
    let mut client =
        ConnectorServiceClient::with_interceptor(channel, state.mesh.signer_for(&tenant_id));
    let request = HandleWebhookRequest {
        connection: Some(ConnectionRef {
            connection_id: connection_id.to_owned(),
            settings_json: "{}".to_owned(),
        }),
        body: body.to_vec(),
        headers: headers
            .iter()
            .filter(|(name, _)| !DROPPED_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some(WebhookHeader {
                    name: name.as_str().to_owned(),
                    value: value.to_str().ok()?.to_owned(),
                })
            })
            .collect(),
    };
    let verified = match client.handle_webhook(with_timeout(request)).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            tracing::info!(
                connection_id,
                connector,
                reason = status.message(),
                "refused a webhook delivery"
            );
            return Err(Error::WebhookRejected);
        }
        Err(status) => return Err(Error::upstream("connector", &status)),
    };
    if !verified.rejected.is_empty() {
        // One line per delivery: a partner sending a malformed batch over and over must not
        // flood the log with one line per element.
        let first = &verified.rejected[0];
        tracing::warn!(
            connection_id,
            tenant_id,
            connector,
            rejected = verified.rejected.len(),
            first_index = first.index,
            first_reason = %first.reason,
            "webhook events refused; the delivery's other events go on"
        );
    }
    let events: Vec<InboundEvent> = verified
        .events
        .into_iter()
        .map(|event| InboundEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            entity: event.entity,
            external_id: event.external_id,
            stream: event.stream,
            cursor_field: event.cursor_field,
            occurred_at: event.occurred_at,
            deleted: event.deleted,
        })
        .collect();
    let (mut accepted, mut duplicates, mut ignored) = (0, 0, 0);
    // In order, a call at a time: a failed call fails the delivery, and the partner's retry
    // finds the events already taken to be duplicates.
    for chunk in events.chunks(EVENTS_PER_INGEST) {
        let ingested = state
            .mesh
            .sync_for(&tenant_id)
            .ingest_webhook_events(with_timeout(IngestWebhookEventsRequest {
                connection_id: connection_id.to_owned(),
                events: chunk.to_vec(),
            }))
            .await
            .map_err(|status| Error::upstream("sync", &status))?
            .into_inner();
        accepted += ingested.accepted;
        duplicates += ingested.duplicates;
        ignored += ingested.ignored;
    }
    tracing::debug!(
        connection_id,
        accepted,
        duplicates,
        ignored,
        rejected = verified.rejected.len(),
        "webhook delivery taken"
    );
    let rejected: Vec<serde_json::Value> = verified
        .rejected
        .iter()
        .map(|rejected| json!({"index": rejected.index, "reason": rejected.reason}))
        .collect();
    Ok(Json(json!({
        "accepted": accepted,
        "duplicates": duplicates,
        "ignored": ignored,
        "rejected": rejected,
    })))
}

#[derive(Debug, Deserialize)]
pub struct EnableWebhooks {
    /// The signing secret the tenant configured at the partner.
    pub secret: String,
}

/// `PUT /api/v1/integrations/{id}/webhook`.
pub async fn enable(
    State(state): State<AppState>,
    ApiTenant(tenant_id): ApiTenant,
    Path(connection_id): Path<String>,
    JsonBody(request): JsonBody<EnableWebhooks>,
) -> Result<Json<serde_json::Value>, Error> {
    let path = enable_for(&state, &tenant_id, &connection_id, request.secret).await?;
    Ok(Json(json!({ "path": path })))
}

/// `POST /integrations/{id}/webhook`: the same from the integration page's form, back to the
/// page, which then shows the delivery path.
pub async fn enable_from_dashboard(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(connection_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<EnableWebhooks>,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return message_page(&state.templates, &error);
    }
    match enable_for(&state, &tenant_id, &connection_id, form.secret).await {
        Ok(_) => redirect_to(&format!(
            "/integrations/{}#webhooks-heading",
            crate::detail::encode(&connection_id)
        )),
        Err(error) => message_page(&state.templates, &error),
    }
}

/// Stores `secret` as the connection's webhook secret in credentials and registers its route;
/// returns the path partners deliver to. The connection must be the tenant's.
async fn enable_for(
    state: &AppState,
    tenant_id: &str,
    connection_id: &str,
    secret: String,
) -> Result<String, Error> {
    if secret.trim().is_empty() {
        return Err(Error::InvalidForm("secret must not be empty".to_owned()));
    }
    // The connection must be one of the caller's, and its connector comes from its sync.
    let connector = crate::integrations::get(&state.mesh, tenant_id, connection_id)
        .await?
        .connector;
    let manifest = crate::connect::manifest(state, &connector).await?;
    if !manifest.receives_webhooks {
        return Err(Error::WebhooksUnsupported(manifest.display_name));
    }
    state
        .mesh
        .credentials_for(tenant_id)
        .put_credential(with_timeout(PutCredentialRequest {
            connection_id: connection_id.to_owned(),
            connector: connector.clone(),
            secret: Some(Secret {
                kind: Some(secret::Kind::WebhookSecret(WebhookSecret { secret })),
            }),
        }))
        .await
        .map_err(|status| Error::upstream("credentials", &status))?;
    state
        .store
        .put_webhook_endpoint(connection_id, tenant_id, &connector)
        .await?;
    tracing::info!(tenant_id, connection_id, connector, "webhooks enabled");
    Ok(delivery_path(&connector, connection_id))
}

/// Where partners deliver a connection's webhooks.
pub fn delivery_path(connector: &str, connection_id: &str) -> String {
    format!(
        "/webhooks/{}/{}",
        crate::detail::encode(connector),
        crate::detail::encode(connection_id)
    )
}
