//! The sync service's domain operations, every one scoped to a tenant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_runtime::storage::{format_time, now_text};

use crate::error::Error;
use crate::events::{Ingested, WebhookEvents};
use crate::quarantine::Listed;
use crate::record_codec;
use crate::runner::Runner;
use crate::schedule::Schedule;
use crate::store::{RunRecord, Store, SyncDefinition};

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;
const MAX_ID_LEN: usize = 128;

/// What a caller asks for when defining a sync.
#[derive(Debug, Clone)]
pub struct NewSync {
    pub connection_id: String,
    pub connector: String,
    pub settings_json: String,
    pub streams: Vec<String>,
    pub interval_seconds: u32,
}

/// A sync with what the dashboard and internal services want to know about it.
#[derive(Debug, Clone)]
pub struct SyncSummary {
    pub sync: SyncDefinition,
    pub record_counts: Vec<(String, u64)>,
    pub last_run: Option<RunRecord>,
}

#[derive(Clone)]
pub struct SyncService {
    store: Store,
    runner: Runner,
    webhooks: WebhookEvents,
}

impl SyncService {
    pub fn new(store: Store, runner: Runner) -> SyncService {
        let webhooks = WebhookEvents::new(store.clone(), runner.clone());
        SyncService {
            store,
            runner,
            webhooks,
        }
    }

    /// Webhook ingestion, whose pending reads [`crate::run`] sweeps in the background.
    pub fn webhook_events(&self) -> &WebhookEvents {
        &self.webhooks
    }

    /// The events of a verified partner webhook delivery for the tenant's connection.
    pub async fn ingest_webhook_events(
        &self,
        tenant_id: &str,
        connection_id: &str,
        events: Vec<plugboard_proto::sync::v1::InboundEvent>,
    ) -> Result<Ingested, Error> {
        validate_id("connection_id", connection_id)?;
        self.webhooks.ingest(tenant_id, connection_id, events).await
    }

    /// Creates or replaces the sync of a connection; a scheduled one is due at once. The
    /// definition is checked against the connector's manifest in the registry first
    /// ([`crate::manifest_check`]): nothing is stored unchecked.
    pub async fn create_sync(&self, tenant_id: &str, new: NewSync) -> Result<SyncSummary, Error> {
        validate_id("connection_id", &new.connection_id)?;
        validate_id("connector", &new.connector)?;
        if new.settings_json.trim().is_empty() {
            return Err(Error::InvalidArgument {
                field: "settings_json",
                reason: "is required: the connection's settings as a JSON object ({} for none)"
                    .into(),
            });
        }
        let settings: serde_json::Value =
            serde_json::from_str(&new.settings_json).map_err(|e| Error::InvalidArgument {
                field: "settings_json",
                reason: format!("not JSON: {e}"),
            })?;
        if !settings.is_object() {
            return Err(Error::InvalidArgument {
                field: "settings_json",
                reason: "must be a JSON object".into(),
            });
        }
        for (index, stream) in new.streams.iter().enumerate() {
            validate_id("streams", stream)?;
            // Read twice per run otherwise; a repeat is a caller's slip, not a wish.
            if new.streams[..index].contains(stream) {
                return Err(Error::InvalidArgument {
                    field: "streams",
                    reason: format!("{stream} is named twice"),
                });
            }
        }
        let existing = self.store.get_sync(tenant_id, &new.connection_id).await?;
        if let Some(existing) = &existing
            && existing.connector != new.connector
        {
            return Err(Error::ConnectionOfAnotherConnector {
                connection_id: new.connection_id,
                connector: existing.connector.clone(),
            });
        }
        // Last, as it asks another service; a retried create is checked too, as the manifest
        // may have changed since.
        crate::manifest_check::against_registry(
            self.runner.mesh(),
            &new.connector,
            &new.streams,
            &settings,
        )
        .await?;
        if let Some(existing) = &existing {
            let same = existing.settings_json == new.settings_json
                && existing.streams == new.streams
                && existing.interval_seconds == new.interval_seconds
                && existing.cron.is_empty();
            if same {
                // A retried create: nothing changes, not even when the next run is due.
                return self.summary(existing.clone()).await;
            }
        }
        let sync = SyncDefinition {
            tenant_id: tenant_id.to_owned(),
            connection_id: new.connection_id,
            connector: new.connector,
            settings_json: new.settings_json,
            streams: new.streams,
            interval_seconds: new.interval_seconds,
            // A definition replaces the schedule; a cron one is set with SetSchedule.
            cron: String::new(),
            // Redefining a sync does not resume one its owner paused.
            paused: existing.as_ref().is_some_and(|sync| sync.paused),
            last_sync_at: None,
            next_run_at: (new.interval_seconds > 0).then(now_text),
            resumes_at: None,
        };
        self.store.upsert_sync(&sync).await?;
        tracing::info!(tenant_id, connection_id = %sync.connection_id, connector = %sync.connector, "sync defined");
        self.summary(self.get_sync(tenant_id, &sync.connection_id).await?)
            .await
    }

    /// The summary of one connection's sync; None when the tenant has no such connection.
    pub async fn sync_summary(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<Option<SyncSummary>, Error> {
        match self.store.get_sync(tenant_id, connection_id).await? {
            Some(sync) => Ok(Some(self.summary(sync).await?)),
            None => Ok(None),
        }
    }

    pub async fn list_syncs(&self, tenant_id: &str) -> Result<Vec<SyncSummary>, Error> {
        let mut summaries = Vec::new();
        for sync in self.store.list_syncs(tenant_id).await? {
            summaries.push(self.summary(sync).await?);
        }
        Ok(summaries)
    }

    pub async fn trigger_run(
        &self,
        tenant_id: &str,
        connection_id: &str,
        mode: crate::runner::ReadMode,
    ) -> Result<String, Error> {
        let sync = self.get_sync(tenant_id, connection_id).await?;
        if sync.paused {
            return Err(Error::Paused {
                connection_id: connection_id.to_owned(),
            });
        }
        let schedule = Schedule::of(&sync)?;
        let run_id = self.runner.start(sync, mode).await?;
        // A manual run counts as the scheduled one: the next is a schedule's step from now
        // (an interval, the next cron occurrence), so it does not start right behind this one.
        if let Some(next) = schedule.next_after(chrono::Utc::now()) {
            self.store
                .set_next_run(tenant_id, connection_id, &format_time(next))
                .await?;
        }
        Ok(run_id)
    }

    /// Sets when the sync runs by itself: every `interval_seconds`, at the occurrences of
    /// `cron` (UTC), or, with neither, only when triggered. Due at the next occurrence.
    pub async fn set_schedule(
        &self,
        tenant_id: &str,
        connection_id: &str,
        interval_seconds: u32,
        cron: &str,
    ) -> Result<SyncSummary, Error> {
        validate_id("connection_id", connection_id)?;
        let schedule = Schedule::parse(interval_seconds, cron)?;
        let next = schedule.next_after(chrono::Utc::now()).map(format_time);
        if !self
            .store
            .set_schedule(
                tenant_id,
                connection_id,
                interval_seconds,
                cron.trim(),
                next.as_deref(),
            )
            .await?
        {
            return Err(Error::SyncNotFound {
                connection_id: connection_id.to_owned(),
            });
        }
        tracing::info!(tenant_id, connection_id, interval_seconds, cron, next = ?next, "sync schedule set");
        let sync = self.get_sync(tenant_id, connection_id).await?;
        self.runner.report_heartbeat(&sync).await;
        self.summary(sync).await
    }

    /// The connection's most recent runs, newest first; `SyncNotFound` unless it is the tenant's.
    pub async fn list_runs(
        &self,
        tenant_id: &str,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>, Error> {
        self.get_sync(tenant_id, connection_id).await?;
        let limit = match limit {
            0 => 20,
            n => n.min(100),
        };
        self.store
            .list_runs(tenant_id, connection_id, i64::from(limit))
            .await
    }

    /// Pauses or resumes a sync and tells health at once, so the status shows it.
    pub async fn set_paused(
        &self,
        tenant_id: &str,
        connection_id: &str,
        paused: bool,
    ) -> Result<SyncSummary, Error> {
        if !self
            .store
            .set_paused(tenant_id, connection_id, paused)
            .await?
        {
            return Err(Error::SyncNotFound {
                connection_id: connection_id.to_owned(),
            });
        }
        let sync = self.get_sync(tenant_id, connection_id).await?;
        tracing::info!(connection_id, paused, "sync pause changed");
        self.runner.report_heartbeat(&sync).await;
        self.summary(sync).await
    }

    pub async fn get_run(&self, tenant_id: &str, run_id: &str) -> Result<RunRecord, Error> {
        self.store
            .get_run(tenant_id, run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.to_owned(),
            })
    }

    /// The tenant's canonical changes after a position, as they are committed.
    pub async fn watch_changes(
        &self,
        tenant_id: &str,
        filter: crate::changes::WatchFilter,
    ) -> Result<
        tokio::sync::mpsc::Receiver<
            Result<plugboard_proto::sync::v1::WatchChangesResponse, tonic::Status>,
        >,
        Error,
    > {
        // A filter that can never match is refused here, not left to wait silently for ever.
        if !filter.connection_id.is_empty() {
            self.get_sync(tenant_id, &filter.connection_id).await?;
        }
        if !filter.entity.is_empty() {
            canonical_entity(&filter.entity)?;
        }
        let changes = self.store.change_feed().watch(tenant_id.to_owned(), filter);
        Ok(crate::persons::with_persons(
            self.runner.mesh().clone(),
            tenant_id.to_owned(),
            changes,
        ))
    }

    /// A page of canonical records; the token is the last external id of the previous page.
    pub async fn list_records(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<CanonicalRecord>, String, u64), Error> {
        self.get_sync(tenant_id, connection_id).await?;
        canonical_entity(entity)?;
        let after = page_after(page_token)?;
        let limit = clamp_page_size(page_size);
        let stored = self
            .store
            .list_records(tenant_id, connection_id, entity, &after, limit)
            .await?;
        let next_token =
            next_page_token(stored.len(), limit, stored.last().map(|r| &r.external_id));
        let total = self
            .store
            .count_records(tenant_id, connection_id, entity)
            .await?;
        let mut records = stored
            .into_iter()
            .map(|record| record_codec::from_stored(record, connection_id))
            .collect::<Result<Vec<_>, _>>()?;
        crate::persons::fill(self.runner.mesh(), tenant_id, &mut records).await;
        Ok((records, next_token, total))
    }

    /// A page of the connection's quarantine: entries no later import resolved, or every one
    /// with `include_resolved`.
    pub async fn list_quarantine(
        &self,
        tenant_id: &str,
        connection_id: &str,
        page_size: u32,
        page_token: &str,
        include_resolved: bool,
    ) -> Result<(Vec<Listed>, String), Error> {
        self.get_sync(tenant_id, connection_id).await?;
        let after = page_after(page_token)?;
        let limit = clamp_page_size(page_size);
        let entries = self
            .store
            .quarantine()
            .list(tenant_id, connection_id, &after, limit, include_resolved)
            .await?;
        let next_token = next_page_token(entries.len(), limit, entries.last().map(|e| &e.entry.id));
        Ok((entries, next_token))
    }

    async fn get_sync(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<SyncDefinition, Error> {
        validate_id("connection_id", connection_id)?;
        self.store
            .get_sync(tenant_id, connection_id)
            .await?
            .ok_or_else(|| Error::SyncNotFound {
                connection_id: connection_id.to_owned(),
            })
    }

    async fn summary(&self, sync: SyncDefinition) -> Result<SyncSummary, Error> {
        let record_counts = self
            .store
            .record_counts(&sync.tenant_id, &sync.connection_id)
            .await?;
        let last_run = self
            .store
            .last_run(&sync.tenant_id, &sync.connection_id)
            .await?;
        Ok(SyncSummary {
            sync,
            record_counts,
            last_run,
        })
    }
}

fn clamp_page_size(page_size: u32) -> u32 {
    match page_size {
        0 => DEFAULT_PAGE_SIZE,
        size => size.min(MAX_PAGE_SIZE),
    }
}

/// Page tokens are opaque to callers (the key the next page starts after, encoded), so a
/// mistyped or foreign token is refused instead of silently listing from the wrong place.
const PAGE_TOKEN_PREFIX: &str = "after:";

fn next_page_token(returned: usize, limit: u32, last_key: Option<&String>) -> String {
    if returned < limit as usize {
        return String::new();
    }
    last_key
        .map(|key| URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{key}")))
        .unwrap_or_default()
}

/// The key a page token says to start after; empty for the first page.
fn page_after(page_token: &str) -> Result<String, Error> {
    if page_token.is_empty() {
        return Ok(String::new());
    }
    URL_SAFE_NO_PAD
        .decode(page_token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(PAGE_TOKEN_PREFIX).map(str::to_owned))
        .ok_or_else(|| Error::InvalidArgument {
            field: "page_token",
            reason: "not a token from a previous page of this list; omit it for the first page"
                .to_owned(),
        })
}

/// Refuses a name that is not one of the canonical entities records are stored as.
fn canonical_entity(entity: &str) -> Result<(), Error> {
    validate_id("entity", entity)?;
    if record_codec::ENTITIES.contains(&entity) {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        field: "entity",
        reason: format!(
            "{entity:?} is not a canonical entity; one of {}",
            record_codec::ENTITIES.join(", ")
        ),
    })
}

pub(crate) fn validate_id(field: &'static str, value: &str) -> Result<(), Error> {
    let valid = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field,
            reason: format!(
                "must be 1 to {MAX_ID_LEN} characters of letters, digits, '-', '_', '.' or ':'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let key = "JobOrder:42".to_owned();
        let token = next_page_token(10, 10, Some(&key));
        assert_ne!(token, key, "the token does not show the key");
        assert_eq!(page_after(&token).unwrap(), key);
        assert_eq!(
            next_page_token(3, 10, Some(&key)),
            "",
            "a short page is the last"
        );
        assert_eq!(page_after("").unwrap(), "");
        for foreign in [
            "JobOrder:42",
            "garbage!!",
            &URL_SAFE_NO_PAD.encode("other:x"),
        ] {
            let error = page_after(foreign).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::InvalidArgument {
                        field: "page_token",
                        ..
                    }
                ),
                "{foreign}: {error:?}"
            );
        }
    }
}
