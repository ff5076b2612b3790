//! Partner webhook events and partner-reported deletions, into the record store.
//!
//! The gateway hands over the events of a delivery the connector verified. Each is kept by its
//! event id in `webhook_events`, so a repeated delivery changes nothing however late it comes.
//! An event older than what the store holds for its record (the stored payload's cursor field,
//! or a newer event already applied) is kept as `ignored` and changes nothing: an event never
//! moves a record back in time. A delete event tombstones its record (WatchChanges shows the
//! deletion). Any other event asks for a targeted incremental read of its stream, so the
//! record's state comes from the partner's API rather than from the event: such reads start at
//! once when the connection is free, and otherwise from [`WebhookEvents::read_pending`], which
//! every replica runs, since events are durable and any replica may pick them up.
//!
//! Deletions a deleted-records endpoint reports arrive on a read's pages; the runner commits them
//! with the read's last page once the read ended without an error ([`crate::stream_end`]).

pub mod store;

use std::collections::BTreeSet;
use std::time::Duration;

use plugboard_proto::sync::v1::InboundEvent;
use plugboard_runtime::storage::now_text;

use crate::error::Error;
use crate::runner::{ReadMode, Runner};
use crate::store::{Store, SyncDefinition};
use store::{Outcome, PendingRead, StoredEvent};

/// Most events one delivery may carry.
const MAX_EVENTS: usize = 100;
/// Longest event id, type, entity, stream or external id accepted.
const MAX_FIELD_LEN: usize = 256;
/// Pending streams one sweep of [`WebhookEvents::read_pending`] looks at.
const SWEEP_LIMIT: i64 = 100;

/// What one delivery's events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: u32,
    pub duplicates: u32,
    pub ignored: u32,
    pub run_ids: Vec<String>,
}

#[derive(Clone)]
pub struct WebhookEvents {
    store: Store,
    runner: Runner,
}

impl WebhookEvents {
    pub fn new(store: Store, runner: Runner) -> WebhookEvents {
        WebhookEvents { store, runner }
    }

    /// Takes the verified events of one delivery for the tenant's connection.
    pub async fn ingest(
        &self,
        tenant_id: &str,
        connection_id: &str,
        events: Vec<InboundEvent>,
    ) -> Result<Ingested, Error> {
        let sync = self
            .store
            .get_sync(tenant_id, connection_id)
            .await?
            .ok_or_else(|| Error::SyncNotFound {
                connection_id: connection_id.to_owned(),
            })?;
        if events.len() > MAX_EVENTS {
            return Err(invalid(
                "events",
                format!("at most {MAX_EVENTS} per delivery"),
            ));
        }
        for event in &events {
            validate(event)?;
        }
        let mut ingested = Ingested::default();
        let mut streams = BTreeSet::new();
        for event in events {
            let outcome = self.ingest_one(&sync, event, &mut streams).await?;
            match outcome {
                None => ingested.duplicates += 1,
                Some(Outcome::Ignored) => ingested.ignored += 1,
                Some(_) => ingested.accepted += 1,
            }
        }
        for stream in streams {
            let pending = PendingRead {
                tenant_id: tenant_id.to_owned(),
                connection_id: connection_id.to_owned(),
                stream,
            };
            if let Some(run_id) = self.start_read(&sync, &pending).await? {
                ingested.run_ids.push(run_id);
            }
        }
        tracing::info!(
            connection_id,
            accepted = ingested.accepted,
            duplicates = ingested.duplicates,
            ignored = ingested.ignored,
            "webhook events ingested"
        );
        Ok(ingested)
    }

    /// Records one event and applies it; `None` for an event id seen before.
    async fn ingest_one(
        &self,
        sync: &SyncDefinition,
        event: InboundEvent,
        streams: &mut BTreeSet<String>,
    ) -> Result<Option<Outcome>, Error> {
        let (tenant_id, connection_id) = (&sync.tenant_id, &sync.connection_id);
        if store::seen(&self.store, tenant_id, connection_id, &event.event_id).await? {
            return Ok(None);
        }
        let outcome = self.decide(sync, &event).await?;
        let stored = StoredEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            entity: event.entity,
            external_id: event.external_id,
            stream: event.stream,
            occurred_at: store::parse_time(&event.occurred_at)
                .map(plugboard_runtime::storage::format_time)
                .unwrap_or_default(),
            deleted: event.deleted,
            received_at: now_text(),
        };
        // Two replicas taking the same delivery at once: the insert decides which one acts.
        if !store::record_event(&self.store, tenant_id, connection_id, &stored, outcome).await? {
            return Ok(None);
        }
        match outcome {
            Outcome::Tombstoned => {
                let gone = store::tombstone(
                    &self.store,
                    tenant_id,
                    connection_id,
                    &stored.entity,
                    std::slice::from_ref(&stored.external_id),
                )
                .await?;
                tracing::info!(
                    connection_id = %connection_id, entity = %stored.entity,
                    external_id = %stored.external_id, tombstoned = !gone.is_empty(),
                    "a webhook deleted a record"
                );
            }
            Outcome::ReadPending => {
                streams.insert(stored.stream);
            }
            Outcome::ReadStarted | Outcome::Ignored => {}
        }
        Ok(Some(outcome))
    }

    /// What a new event does to the store.
    async fn decide(&self, sync: &SyncDefinition, event: &InboundEvent) -> Result<Outcome, Error> {
        if event.entity.is_empty() || event.external_id.is_empty() {
            return Ok(Outcome::Ignored);
        }
        let read_by_sync = sync.streams.is_empty() || sync.streams.contains(&event.stream);
        if event.stream.is_empty() || !read_by_sync {
            return Ok(Outcome::Ignored);
        }
        if let Some(occurred_at) = store::parse_time(&event.occurred_at) {
            let known = store::newest_known(
                &self.store,
                &sync.tenant_id,
                &sync.connection_id,
                &event.entity,
                &event.external_id,
                &event.cursor_field,
            )
            .await?;
            if known.is_some_and(|known| occurred_at < known) {
                tracing::info!(
                    connection_id = %sync.connection_id, external_id = %event.external_id,
                    occurred_at = %event.occurred_at, "ignored a webhook event older than the stored record"
                );
                return Ok(Outcome::Ignored);
            }
        }
        Ok(if event.deleted {
            Outcome::Tombstoned
        } else {
            Outcome::ReadPending
        })
    }

    /// Starts the targeted read of `pending`'s stream when the connection is free; `None` when
    /// it must wait (another run holds the connection, or the sync is paused).
    async fn start_read(
        &self,
        sync: &SyncDefinition,
        pending: &PendingRead,
    ) -> Result<Option<String>, Error> {
        if sync.paused {
            return Ok(None);
        }
        let read_by_sync = sync.streams.is_empty() || sync.streams.contains(&pending.stream);
        if !read_by_sync {
            store::drop_pending(&self.store, pending).await?;
            return Ok(None);
        }
        // Events received before the run starts are covered by it; later ones wait for the next.
        let started_at = now_text();
        let targeted = SyncDefinition {
            streams: vec![pending.stream.clone()],
            ..sync.clone()
        };
        match self.runner.start(targeted, ReadMode::Incremental).await {
            Ok(run_id) => {
                store::mark_read(&self.store, pending, &started_at, &run_id).await?;
                tracing::info!(
                    connection_id = %pending.connection_id, stream = %pending.stream, run_id,
                    "targeted read started for webhook events"
                );
                Ok(Some(run_id))
            }
            Err(Error::RunInProgress { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Starts the reads that events still wait for, every `tick`, until the task is dropped.
    pub async fn read_pending(self, tick: Duration) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = self.sweep().await {
                tracing::warn!(error = %error, "cannot start reads for pending webhook events");
            }
        }
    }

    async fn sweep(&self) -> Result<(), Error> {
        for pending in store::pending_reads(&self.store, SWEEP_LIMIT).await? {
            let Some(sync) = self
                .store
                .get_sync(&pending.tenant_id, &pending.connection_id)
                .await?
            else {
                store::drop_pending(&self.store, &pending).await?;
                continue;
            };
            self.start_read(&sync, &pending).await?;
        }
        Ok(())
    }
}

fn validate(event: &InboundEvent) -> Result<(), Error> {
    if event.event_id.is_empty() {
        return Err(invalid("events.event_id", "is required".to_owned()));
    }
    for (field, value) in [
        ("events.event_id", &event.event_id),
        ("events.event_type", &event.event_type),
        ("events.entity", &event.entity),
        ("events.external_id", &event.external_id),
        ("events.stream", &event.stream),
        ("events.cursor_field", &event.cursor_field),
    ] {
        if value.len() > MAX_FIELD_LEN || value.chars().any(char::is_control) {
            return Err(invalid(
                field,
                format!("must be at most {MAX_FIELD_LEN} printable characters"),
            ));
        }
    }
    if !event.occurred_at.is_empty() && store::parse_time(&event.occurred_at).is_none() {
        return Err(invalid(
            "events.occurred_at",
            "must be RFC 3339 or empty".to_owned(),
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidArgument { field, reason }
}
