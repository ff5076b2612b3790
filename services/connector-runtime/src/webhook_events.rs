//! `HandleWebhook`: one partner delivery in, its verified events out.
//!
//! A delivery is one event, or with the manifest's `webhooks.event_array` several: each element
//! becomes an event of its own (its own id, so sync drops repeats one by one), in the order
//! the delivery has them, and an element that is not a readable event is handed back as
//! rejected, with its position and reason, without holding up the others.
//!
//! The connection's webhook secret is leased from credentials for every delivery (a rotated
//! secret takes effect at once), the delivery is checked by [`Verifier`], and the event is
//! described the way sync needs it: which stream refreshes the record, and which record field
//! says when the partner last changed it.

use std::sync::Arc;

use plugboard_proto::connector::v1::{
    HandleWebhookRequest, HandleWebhookResponse, RejectedEvent, WebhookEvent,
};
use secrecy::{ExposeSecret, SecretString};

use crate::access::Access;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::webhook::Verifier;

/// Where the webhook secret comes from: credentials in the mesh, or a fixed one (the
/// conformance kit).
#[derive(Debug, Clone)]
pub enum WebhookSecretSource {
    Credentials(Access),
    Fixed(SecretString),
}

pub struct WebhookHandler {
    manifest: Arc<Manifest>,
    verifier: Option<Verifier>,
    secrets: WebhookSecretSource,
}

impl WebhookHandler {
    pub fn new(manifest: Arc<Manifest>, secrets: WebhookSecretSource) -> WebhookHandler {
        let verifier = manifest.webhooks.clone().map(Verifier::new);
        WebhookHandler {
            manifest,
            verifier,
            secrets,
        }
    }

    /// Verifies the delivery at `now` (epoch seconds) for `tenant` and returns its events.
    pub async fn handle(
        &self,
        tenant: &str,
        request: &HandleWebhookRequest,
        now: i64,
    ) -> Result<HandleWebhookResponse, Error> {
        let Some(verifier) = &self.verifier else {
            return Err(Error::NoWebhooks(self.manifest.name.clone()));
        };
        let connection_id = request
            .connection
            .as_ref()
            .map(|connection| connection.connection_id.as_str())
            .unwrap_or_default();
        let secret = match &self.secrets {
            WebhookSecretSource::Credentials(access) => {
                access.lease_webhook_secret(tenant, connection_id).await?
            }
            WebhookSecretSource::Fixed(secret) => secret.clone(),
        };
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|header| (header.name.clone(), header.value.clone()))
            .collect();
        let delivery = verifier.verify_delivery(
            secret.expose_secret().as_bytes(),
            &headers,
            &request.body,
            now,
        )?;
        let events: Vec<WebhookEvent> = delivery
            .events
            .into_iter()
            .map(|verified| self.describe(verified))
            .collect();
        let rejected: Vec<RejectedEvent> = delivery
            .rejected
            .into_iter()
            .map(|(index, reason)| RejectedEvent {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                reason,
            })
            .collect();
        tracing::debug!(
            connection_id,
            events = events.len(),
            rejected = rejected.len(),
            "verified a webhook delivery"
        );
        Ok(HandleWebhookResponse { events, rejected })
    }

    /// A verified event as sync needs it: which stream refreshes its record, and which record
    /// field says when the partner last changed it.
    fn describe(&self, verified: crate::webhook::WebhookEvent) -> WebhookEvent {
        let mut event = WebhookEvent {
            event_id: verified.delivery_id,
            event_type: verified.event_type,
            occurred_at: verified.occurred_at.unwrap_or_default(),
            ..WebhookEvent::default()
        };
        if let Some((entity, external_id, deleted)) = verified.target {
            // The first stream of the entity refreshes it (streams are ordered by name).
            if let Some((name, stream)) = self
                .manifest
                .streams
                .iter()
                .find(|(_, stream)| stream.entity == entity)
            {
                event.stream = name.clone();
                event.cursor_field = stream
                    .incremental
                    .as_ref()
                    .map(|incremental| incremental.field.clone())
                    .unwrap_or_default();
            }
            event.entity = entity;
            event.external_id = external_id;
            event.deleted = deleted;
        }
        event
    }
}
