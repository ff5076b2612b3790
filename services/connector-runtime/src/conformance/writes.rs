//! The write and webhook checks of the conformance kit.

use std::sync::Arc;

use plugboard_proto::connector::v1::connector_service_server::ConnectorService;
use plugboard_proto::connector::v1::{
    ConnectionRef, HandleWebhookRequest, HandleWebhookResponse, WebhookHeader,
};
use plugboard_runtime::identity::Caller;
use serde_json::{Value, json};

use super::{Kit, Step, TENANT, Verdict, ensure, id_text};
use crate::access::Secret;
use crate::connector::{Connector, SecretSource, WriteParams};
use crate::error::Error;
use crate::grpc::GrpcConnectorAdapter;
use crate::webhook_events::{WebhookHandler, WebhookSecretSource};

impl Kit {
    pub(super) async fn write(&self) -> Step {
        let Some(fixture) = &self.fixture.write else {
            return Ok(if self.manifest().writes.is_empty() {
                Verdict::Skipped("the manifest has no writes".to_owned())
            } else {
                Verdict::Failed("the manifest writes but conformance.yaml has no write".to_owned())
            });
        };
        let (before, _) = self.sandbox_records(&fixture.stream).await?;
        let params = WriteParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            entity: fixture.entity.clone(),
            external_id: String::new(),
            record_json: fixture.record.to_string(),
            idempotency_key: "conformance-write-1".to_owned(),
            earlier_attempt_unconfirmed: false,
            mapped: None,
        };
        let created = self
            .connector
            .write(params.clone())
            .await
            .map_err(|e| e.to_string())?;
        // The same create again, as an outbox retries one whose first answer was lost: without
        // a key the partner deduplicates on, the runtime must refuse rather than create twice.
        let again = self
            .connector
            .write(WriteParams {
                earlier_attempt_unconfirmed: true,
                ..params.clone()
            })
            .await;
        match (
            &again,
            &self.manifest().writes[&fixture.entity].idempotency_header,
        ) {
            (Err(Error::WriteOutcomeUnknown(_)), None) => {}
            (Ok(again), Some(_)) => ensure(again.external_id == created.external_id, || {
                "the partner did not deduplicate a repeated idempotency key".to_owned()
            })?,
            (other, _) => {
                return Ok(Verdict::Failed(format!(
                    "a repeated unconfirmed create answered {other:?}"
                )));
            }
        }
        let (after, _) = self.sandbox_records(&fixture.stream).await?;
        ensure(after.len() == before.len() + 1, || {
            format!(
                "{} records after one create, {} before",
                after.len(),
                before.len()
            )
        })?;
        let key = self.primary_key(&fixture.stream);
        let find = |records: &[Value]| {
            records
                .iter()
                .find(|r| id_text(&key.of(r)) == created.external_id)
                .cloned()
        };
        let record = find(&after).ok_or("the created record is not in the sandbox")?;
        for (field, expected) in &fixture.expect {
            let actual = record.pointer(field).or_else(|| record.get(field));
            ensure(actual == Some(expected), || {
                format!("created record: {field} is {actual:?}, expected {expected}")
            })?;
        }
        if let Some((changes, expect)) = &fixture.update {
            let mut record = fixture.record.clone();
            if let (Some(record), Some(changes)) = (record.as_object_mut(), changes.as_object()) {
                record.extend(changes.clone());
            }
            let updated = self
                .connector
                .write(WriteParams {
                    external_id: created.external_id.clone(),
                    record_json: record.to_string(),
                    idempotency_key: "conformance-write-2".to_owned(),
                    // An update sets values: repeating one is harmless, so it is sent.
                    earlier_attempt_unconfirmed: true,
                    ..params
                })
                .await
                .map_err(|e| e.to_string())?;
            ensure(updated.external_id == created.external_id, || {
                "the update changed the id".to_owned()
            })?;
            let (after, _) = self.sandbox_records(&fixture.stream).await?;
            let record = find(&after).ok_or("the updated record is gone")?;
            for (field, expected) in expect {
                let actual = record.pointer(field).or_else(|| record.get(field));
                ensure(actual == Some(expected), || {
                    format!("updated record: {field} is {actual:?}, expected {expected}")
                })?;
            }
        }
        Ok(Verdict::Passed)
    }

    pub(super) async fn webhook(&self) -> Step {
        let (Some(spec), Some(fixture)) = (&self.manifest().webhooks, &self.fixture.webhook) else {
            return Ok(Verdict::Skipped("the manifest has no webhooks".to_owned()));
        };
        let (data, _) = self.sandbox_records(&fixture.stream).await?;
        let id = data
            .first()
            .map(|r| r["id"].clone())
            .ok_or("no record to send a webhook about")?;
        let delivery = self
            .admin(
                "POST",
                "webhook",
                json!({"action": fixture.action, "id": id}),
            )
            .await?;
        let headers = delivery_headers(&delivery);
        let body = delivery["body"]
            .as_str()
            .ok_or("the sandbox sent no body")?;
        // Through the connector's own HandleWebhook, as the gateway calls it.
        let adapter = |secret: &str| -> Result<GrpcConnectorAdapter, String> {
            let connector = Connector::new(
                self.manifest().clone(),
                SecretSource::Fixed(Secret::api_key("")),
                true,
            )
            .map_err(|e| e.to_string())?;
            let handler = WebhookHandler::new(
                Arc::new(self.manifest().clone()),
                WebhookSecretSource::Fixed(secret.to_owned().into()),
            );
            Ok(GrpcConnectorAdapter::new(Arc::new(connector)).with_webhooks(Arc::new(handler)))
        };
        let connection = &self.connection;
        let unauthenticated = |answer: Result<_, tonic::Status>| matches!(answer, Err(status) if status.code() == tonic::Code::Unauthenticated);
        let right = adapter(&fixture.secret)?;
        let forged = body.replacen(&id_text(&id), "1", 1);
        ensure(
            unauthenticated(deliver(&right, connection, &forged, &headers).await),
            || "a forged body was not refused as unauthenticated".to_owned(),
        )?;
        let wrong = adapter("not-the-secret")?;
        ensure(
            unauthenticated(deliver(&wrong, connection, body, &headers).await),
            || "a delivery signed with another secret was accepted".to_owned(),
        )?;
        let accepted = deliver(&right, connection, body, &headers)
            .await
            .map_err(|status| format!("a correctly signed delivery was refused: {status:?}"))?;
        let event = accepted.events.first().ok_or("the delivery has no event")?;
        ensure(event.external_id == id_text(&id), || {
            format!("the event names {:?}, not {id}", event.external_id)
        })?;
        ensure(
            !event.stream.is_empty() && !event.event_id.is_empty(),
            || "the event names no stream to read or has no id".to_owned(),
        )?;
        // A repeated delivery is the same event, which sync drops durably.
        let again = deliver(&right, connection, body, &headers)
            .await
            .map_err(|status| format!("a repeated delivery was refused: {status:?}"))?;
        ensure(
            again.events.first().map(|e| &e.event_id) == Some(&event.event_id),
            || "a repeated delivery got another event id".to_owned(),
        )?;
        // A delivery signed long ago is refused, where the partner signs a timestamp.
        if spec.signature.timestamp_header.is_some() {
            let signed_at = chrono::Utc::now().timestamp()
                - 2 * i64::try_from(spec.signature.tolerance_seconds).unwrap_or(i64::MAX / 4);
            let old = self
                .admin(
                    "POST",
                    "webhook",
                    json!({"action": fixture.action, "id": id, "signed_at": signed_at}),
                )
                .await?;
            let old_headers = delivery_headers(&old);
            let old_body = old["body"].as_str().ok_or("the sandbox sent no body")?;
            ensure(
                unauthenticated(deliver(&right, connection, old_body, &old_headers).await),
                || "a replay outside the tolerance was accepted".to_owned(),
            )?;
        }
        Ok(Verdict::Passed)
    }
}

/// The headers of a delivery the sandbox produced.
fn delivery_headers(delivery: &Value) -> Vec<WebhookHeader> {
    delivery["headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| WebhookHeader {
                    name: name.clone(),
                    value: value.as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One delivery through the adapter's `HandleWebhook`, as the gateway (tenant [`TENANT`])
/// calls it.
async fn deliver(
    adapter: &GrpcConnectorAdapter,
    connection: &ConnectionRef,
    body: &str,
    headers: &[WebhookHeader],
) -> Result<HandleWebhookResponse, tonic::Status> {
    let mut request = tonic::Request::new(HandleWebhookRequest {
        connection: Some(connection.clone()),
        body: body.as_bytes().to_vec(),
        headers: headers.to_vec(),
    });
    request.extensions_mut().insert(Caller {
        subject: "gateway".to_owned(),
        tenant: Some(TENANT.to_owned()),
        connector: None,
    });
    ConnectorService::handle_webhook(adapter, request)
        .await
        .map(tonic::Response::into_inner)
}
