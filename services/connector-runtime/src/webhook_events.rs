//! `HandleWebhook`: one partner delivery in, its verified events out.
//!
//! The connection's webhook secret is leased from credentials for every delivery (a rotated
//! secret takes effect at once), the delivery is checked by [`Verifier`], and the event is
//! described the way sync needs it: which stream refreshes the record, and which record field
//! says when the partner last changed it.

use std::sync::Arc;

use plugboard_proto::connector::v1::{HandleWebhookRequest, HandleWebhookResponse, WebhookEvent};
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
        let verified = verifier.verify(
            secret.expose_secret().as_bytes(),
            &headers,
            &request.body,
            now,
        )?;
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
        tracing::debug!(
            connection_id,
            event_type = %event.event_type,
            entity = %event.entity,
            deleted = event.deleted,
            "verified a webhook delivery"
        );
        Ok(HandleWebhookResponse {
            events: vec![event],
        })
    }
}
