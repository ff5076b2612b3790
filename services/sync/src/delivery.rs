//! The outbox worker: claims due pushes, writes each through its connector, records the outcome.
//!
//! Every replica runs one; claims keep them from writing one push twice. A transient failure
//! (a partner or connector that is down, rate limits, a timeout) is tried again later with
//! exponential backoff and jitter, up to a number of attempts; anything else fails the push with
//! its reason. An attempt whose write may have reached the partner without an answer is marked
//! `maybe_sent`, and the connector then refuses to repeat a create the partner could not
//! deduplicate, leaving the push `unconfirmed` until a read finds the record
//! ([`crate::two_way`]).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use plugboard_proto::connector::v1::write_request::Mapped;
use plugboard_proto::connector::v1::{ConnectionRef, WriteRequest, WriteResponse};
use plugboard_proto::error::{ErrorKind, reason_of};
use plugboard_proto::mapping::v1::transform_result::Outcome as MappedOutcome;
use plugboard_proto::mapping::v1::{Direction, TransformInput, TransformRequest};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_runtime::storage::{format_time, now_text};
use tokio::sync::watch;

use crate::config::PushOptions;
use crate::fields::FieldValues;
use crate::mesh::Mesh;
use crate::outbox::{Outbox, Outcome, Push};
use crate::store::{Store, SyncDefinition};

/// Pushes claimed per pass, and written at once.
const CLAIM_BATCH: u32 = 16;
const CONCURRENT_WRITES: usize = 8;

#[derive(Clone)]
pub struct Delivery {
    store: Store,
    outbox: Outbox,
    mesh: Mesh,
    /// This replica's name in claims.
    holder: String,
    options: PushOptions,
}

/// A failed step, with what retrying it risks.
struct Failure {
    status: tonic::Status,
    /// The reason code when the status carries none (it did not come from a Plugboard service).
    fallback_reason: &'static str,
    /// The write may have reached the partner.
    maybe_sent: bool,
}

impl Failure {
    /// Our own database failed before anything was sent: transient, and its detail stays in
    /// the log rather than on the push callers read.
    fn storage(error: &crate::Error) -> Failure {
        tracing::warn!(error = %error, "outbox storage failed during a delivery");
        Failure {
            status: tonic::Status::unavailable("sync's storage is unavailable"),
            fallback_reason: "STORAGE_FAILED",
            maybe_sent: false,
        }
    }
}

impl Delivery {
    pub fn new(store: Store, mesh: Mesh, options: PushOptions) -> Delivery {
        Delivery {
            outbox: store.outbox(),
            store,
            mesh,
            holder: format!("outbox-{}", uuid::Uuid::new_v4()),
            options,
        }
    }

    /// Delivers pushes until `stopping` turns true; the writes in hand finish first.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            if *stopping.borrow() {
                return;
            }
            // Registered before the pass, so a push queued during it wakes the next one.
            let queued = self.outbox.queued().notified();
            let claimed = match self.pass().await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = %error, "outbox pass failed");
                    0
                }
            };
            if claimed == CLAIM_BATCH as usize {
                continue;
            }
            tokio::select! {
                () = queued => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// Recovers expired claims, then claims and writes one batch; returns how many it claimed.
    pub async fn pass(&self) -> Result<usize, crate::Error> {
        let now = chrono::Utc::now();
        let recovered = self.outbox.recover_expired(&format_time(now)).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "recovered pushes whose replica stopped mid-delivery"
            );
        }
        let claim_until = now + chrono::Duration::from_std(self.claim_ttl()).unwrap_or_default();
        let claimed = self
            .outbox
            .claim_due(
                &format_time(now),
                &self.holder,
                &format_time(claim_until),
                CLAIM_BATCH,
            )
            .await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(CONCURRENT_WRITES, |push| self.deliver(push))
            .await;
        Ok(count)
    }

    /// Longer than any attempt can take, so a live claim never expires under its holder.
    fn claim_ttl(&self) -> Duration {
        self.options.write_timeout * 2 + Duration::from_secs(30)
    }

    #[tracing::instrument(skip_all, fields(push_id = %push.push_id, connection_id = %push.connection_id, attempt = push.attempts))]
    async fn deliver(&self, push: Push) {
        let Some(outcome) = self.attempt(&push).await else {
            tracing::warn!("the push's claim was lost before it was sent; another replica has it");
            return;
        };
        match &outcome {
            Outcome::Delivered { external_id, .. } => {
                tracing::info!(external_id, "push delivered")
            }
            Outcome::Retry {
                next_attempt_at,
                error,
                ..
            } => tracing::info!(next_attempt_at, error, "push failed; will try again"),
            Outcome::Failed { error, reason } => tracing::warn!(error, reason, "push failed"),
            Outcome::Unconfirmed { error, .. } => {
                tracing::warn!(error, "push outcome unknown; waiting for a read to show it")
            }
        }
        match self
            .outbox
            .finish(&push.push_id, &self.holder, &outcome)
            .await
        {
            Ok(true) => self.outbox.notify_settled(),
            Ok(false) => tracing::warn!("the push's claim expired; its outcome was not recorded"),
            Err(error) => tracing::error!(error = %error, "cannot record a push outcome"),
        }
    }

    /// One attempt; `None` when the claim was lost before the connector was called.
    async fn attempt(&self, push: &Push) -> Option<Outcome> {
        match self.write(push).await {
            Ok(outcome) => outcome,
            Err(failure) => Some(after_failure(&self.options, push.attempts, failure)),
        }
    }

    async fn write(&self, push: &Push) -> Result<Option<Outcome>, Failure> {
        let sync = self
            .store
            .get_sync(&push.tenant_id, &push.connection_id)
            .await
            .map_err(|error| Failure::storage(&error))?;
        let Some(sync) = sync else {
            return Ok(Some(Outcome::Failed {
                error: format!("no sync for connection {}", push.connection_id),
                reason: "SYNC_NOT_FOUND".to_owned(),
            }));
        };
        // Until the connector is called nothing can have been sent, and a connector that is
        // not registered (yet) is as transient as one that is down.
        let not_sent = |message: String, fallback_reason| Failure {
            status: tonic::Status::unavailable(message),
            fallback_reason,
            maybe_sent: false,
        };
        let resolved = self
            .mesh
            .registry()
            .resolve(ResolveRequest {
                connector: sync.connector.clone(),
            })
            .await
            .map_err(|status| {
                let message = format!(
                    "cannot resolve connector {}: {}",
                    sync.connector,
                    status.message()
                );
                not_sent(message, "CONNECTOR_NOT_RESOLVED")
            })?
            .into_inner();
        let mut connector = self
            .mesh
            .connector(&resolved.address, &push.tenant_id)
            .map_err(|error| not_sent(error.to_string(), "CONNECTOR_UNREACHABLE"))?;
        let mapped = self.outbound_body(&sync, &resolved.version, push).await?;
        let marked = self
            .outbox
            .mark_sending(&push.push_id, &self.holder)
            .await
            .map_err(|error| Failure::storage(&error))?;
        if !marked {
            return Ok(None);
        }
        let request = WriteRequest {
            connection: Some(ConnectionRef {
                connection_id: sync.connection_id.clone(),
                settings_json: sync.settings_json.clone(),
            }),
            entity: push.entity.clone(),
            external_id: push.external_id.clone(),
            record_json: push.record_json.clone(),
            // Stable across attempts and unique across tenants and connections.
            idempotency_key: push.push_id.clone(),
            earlier_attempt_unconfirmed: push.maybe_sent,
            mapped,
        };
        let written =
            tokio::time::timeout(self.options.write_timeout, connector.write(request)).await;
        let response = match written {
            Ok(Ok(response)) => response.into_inner(),
            // A status with our reason code is the connector's own answer. One without is the
            // transport's: unless no connection ever opened, the write may have gone out.
            Ok(Err(status)) => {
                let maybe_sent = reason_of(&status).is_none() && !never_connected(&status);
                return Err(Failure {
                    status,
                    fallback_reason: "CONNECTOR_UNREACHABLE",
                    maybe_sent,
                });
            }
            Err(_elapsed) => {
                let message = format!(
                    "the connector did not answer within {:?}",
                    self.options.write_timeout
                );
                return Err(Failure {
                    status: tonic::Status::deadline_exceeded(message),
                    fallback_reason: "WRITE_TIMED_OUT",
                    maybe_sent: true,
                });
            }
        };
        let answer_fields = self
            .answer_fields(&sync, &resolved.version, push, &response)
            .await;
        Ok(Some(Outcome::Delivered {
            external_id: response.external_id,
            answer_fields,
        }))
    }

    /// What mapping makes of the push's record with the connector's outbound spec and the
    /// tenant's overrides, for a connector whose write takes its body from mapping (`mapping:
    /// true`; other writes ignore it). `None` when there is no outbound spec for the entity.
    /// Mapping being down is transient: without it the tenant's overrides would be skipped.
    async fn outbound_body(
        &self,
        sync: &SyncDefinition,
        connector_version: &str,
        push: &Push,
    ) -> Result<Option<Mapped>, Failure> {
        let request = TransformRequest {
            connector: sync.connector.clone(),
            connector_version: connector_version.to_owned(),
            entity: push.entity.clone(),
            direction: Direction::Outbound as i32,
            inputs: vec![TransformInput {
                external_id: push.external_id.clone(),
                payload_json: push.record_json.clone(),
                record: None,
            }],
            connection_id: sync.connection_id.clone(),
            resolve_persons: false,
            omit_raw_payloads: false,
        };
        let mapped = match self.mesh.mapping(&push.tenant_id).transform(request).await {
            Ok(mapped) => mapped.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => {
                return Err(Failure {
                    status,
                    fallback_reason: "MAPPING_UNAVAILABLE",
                    maybe_sent: false,
                });
            }
        };
        match mapped.results.into_iter().next().and_then(|r| r.outcome) {
            Some(MappedOutcome::PartnerRecord(partner)) => {
                Ok(Some(Mapped::MappedBodyJson(partner.payload_json)))
            }
            Some(MappedOutcome::Error(error)) => Ok(Some(Mapped::MappingError(format!(
                "{}: {} (value: {})",
                error.field_path, error.message, error.partner_value
            )))),
            Some(MappedOutcome::Record(_)) | None => Err(Failure {
                status: tonic::Status::internal("mapping answered no partner payload"),
                fallback_reason: "MAPPING_FAILED",
                maybe_sent: false,
            }),
        }
    }

    /// The canonical fields of the partner's answer, for recognising the write when a read
    /// brings it back. Best effort: an answer that is not a record, or does not map, gives none.
    async fn answer_fields(
        &self,
        sync: &SyncDefinition,
        connector_version: &str,
        push: &Push,
        response: &WriteResponse,
    ) -> Option<FieldValues> {
        if !response.partner_payload_json.starts_with('{') {
            return None;
        }
        let request = TransformRequest {
            connector: sync.connector.clone(),
            connector_version: connector_version.to_owned(),
            entity: push.entity.clone(),
            direction: Direction::Inbound as i32,
            inputs: vec![TransformInput {
                external_id: response.external_id.clone(),
                payload_json: response.partner_payload_json.clone(),
                record: None,
            }],
            connection_id: sync.connection_id.clone(),
            resolve_persons: false,
            omit_raw_payloads: false,
        };
        let mapped = match self.mesh.mapping(&push.tenant_id).transform(request).await {
            Ok(mapped) => mapped.into_inner(),
            Err(status) => {
                tracing::debug!(
                    message = status.message(),
                    "the partner's answer did not map"
                );
                return None;
            }
        };
        let record = mapped
            .results
            .into_iter()
            .find_map(|result| match result.outcome {
                Some(MappedOutcome::Record(record)) => Some(record),
                _ => None,
            })?;
        let stored = crate::record_codec::to_stored(&record, &now_text()).ok()?;
        crate::two_way::values_of(&stored).ok()
    }
}

/// What a failed attempt (the `attempts`th) means for its push: unconfirmed when the connector
/// says the write may have happened, tried again later when the failure is transient and
/// attempts are left, failed with its reason otherwise.
fn after_failure(options: &PushOptions, attempts: u32, failure: Failure) -> Outcome {
    let status = &failure.status;
    let reason = reason_of(status).unwrap_or_else(|| failure.fallback_reason.to_owned());
    let error = status.message().to_owned();
    if reason == "WRITE_OUTCOME_UNKNOWN" {
        return Outcome::Unconfirmed { error, reason };
    }
    let kind = ErrorKind::from_code(status.code());
    let transient = kind.is_retryable() || kind == ErrorKind::ResourceExhausted;
    if !transient {
        return Outcome::Failed { error, reason };
    }
    if attempts >= options.max_attempts {
        return Outcome::Failed {
            error: format!("gave up after {attempts} attempts: {error}"),
            reason,
        };
    }
    let delay = backoff_delay(options, attempts);
    let next = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    Outcome::Retry {
        next_attempt_at: format_time(next),
        error,
        reason,
        maybe_sent: failure.maybe_sent,
    }
}

/// The wait before attempt `attempts + 1`: exponential from the minimum, capped, with jitter.
pub fn backoff_delay(options: &PushOptions, attempts: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(options.retry_min)
        .with_max_delay(options.retry_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(options.retry_max)
}

/// Whether a failed call never opened a connection, so the request cannot have been sent.
fn never_connected(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NotFound
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_the_minimum_to_the_cap() {
        let options = PushOptions {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..PushOptions::default()
        };
        let first = backoff_delay(&options, 1);
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(200));
        let third = backoff_delay(&options, 3);
        assert!(third >= Duration::from_millis(400) && third < Duration::from_millis(800));
        let late = backoff_delay(&options, 30);
        assert!(late >= Duration::from_secs(2) && late < Duration::from_secs(4));
    }

    fn failure(status: tonic::Status, maybe_sent: bool) -> Failure {
        Failure {
            status,
            fallback_reason: "CONNECTOR_UNREACHABLE",
            maybe_sent,
        }
    }

    /// A status as a connector sends it, with its reason code.
    fn from_connector(kind: ErrorKind, reason: &'static str) -> tonic::Status {
        struct Coded(ErrorKind, &'static str);
        impl std::fmt::Debug for Coded {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.1)
            }
        }
        impl std::fmt::Display for Coded {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "connector said {}", self.1)
            }
        }
        impl std::error::Error for Coded {}
        impl plugboard_proto::error::ServiceError for Coded {
            fn kind(&self) -> ErrorKind {
                self.0
            }
            fn reason(&self) -> &'static str {
                self.1
            }
        }
        plugboard_proto::error::to_status(&Coded(kind, reason))
    }

    #[test]
    fn each_failure_leads_where_it_should() {
        let options = PushOptions::default();
        let unknown = from_connector(ErrorKind::FailedPrecondition, "WRITE_OUTCOME_UNKNOWN");
        assert!(matches!(
            after_failure(&options, 1, failure(unknown, false)),
            Outcome::Unconfirmed { .. }
        ));
        let rejected = from_connector(ErrorKind::FailedPrecondition, "PARTNER_REQUEST_REJECTED");
        match after_failure(&options, 1, failure(rejected, false)) {
            Outcome::Failed { reason, .. } => assert_eq!(reason, "PARTNER_REQUEST_REJECTED"),
            other => panic!("{other:?}"),
        }
        let down = from_connector(ErrorKind::Unavailable, "PARTNER_UNAVAILABLE");
        match after_failure(&options, 1, failure(down.clone(), false)) {
            Outcome::Retry {
                reason, maybe_sent, ..
            } => {
                assert_eq!(reason, "PARTNER_UNAVAILABLE");
                assert!(!maybe_sent);
            }
            other => panic!("{other:?}"),
        }
        match after_failure(&options, options.max_attempts, failure(down, false)) {
            Outcome::Failed { error, .. } => {
                assert!(error.starts_with("gave up after 12"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        // A broken transport keeps its doubt for the next attempt, under our reason code.
        match after_failure(
            &options,
            1,
            failure(tonic::Status::unavailable("reset"), true),
        ) {
            Outcome::Retry {
                reason, maybe_sent, ..
            } => {
                assert_eq!(reason, "CONNECTOR_UNREACHABLE");
                assert!(maybe_sent);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_known_not_to_have_sent_anything() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let channel =
            plugboard_runtime::channel::lazy_channel(&format!("127.0.0.1:{port}")).unwrap();
        let mut client =
            plugboard_proto::connector::v1::connector_service_client::ConnectorServiceClient::new(
                channel,
            );
        let status = client.write(WriteRequest::default()).await.unwrap_err();
        assert!(never_connected(&status), "{status:?}");
        assert!(!never_connected(&tonic::Status::unavailable(
            "partner down"
        )));
    }
}
