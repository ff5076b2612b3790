//! One run of one sync: lease, resolve, read page by page, map, commit, report.
//!
//! A run holds a lease on its connection so only one run per connection goes at a time across
//! every replica, and every page it commits checks the lease's fencing token in the page's
//! transaction ([`crate::fence`]). Each page is mapped (and its people linked) as it arrives,
//! while the page before commits, and is committed together with the checkpoint that follows
//! it once the next page has arrived (so the last one can carry the read's deletions,
//! [`crate::stream_end`]); commits stay in page order, and a failure anywhere stops the run
//! before the next commit, so the next run resumes exactly after the last committed page. A used-up partner
//! quota pauses the run instead ([`crate::quota`]), and the outcome health hears is judged by
//! [`crate::outcome`].
//!
//! On shutdown ([`Runner::stop`], then [`Runner::drain`]) a run stops between pages: after the
//! commit of the page in hand, or while it waits for the next one, never inside a commit. It is
//! recorded as failed with [`Error::ShuttingDown`], its lease is released at once, and a
//! scheduled sync is made due again so any replica's scheduler resumes it from the checkpoint.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::connector::v1::{ConnectionRef, DiscoverRequest, ReadRequest, ReadResponse};
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    Heartbeat, ReportRequest, RunOutcome, RunOutcomeKind, StreamOutcome,
};
use plugboard_proto::mapping::v1::transform_result::Outcome;
use plugboard_proto::mapping::v1::{Direction, TransformInput, TransformRequest, TransformResult};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_runtime::coordination::{Coordinator, Lease};
use plugboard_runtime::storage::now_text;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::error::Error;
use crate::fence::Fence;
use crate::mesh::Mesh;
use crate::outcome::Verdict;
use crate::record_codec;
use crate::store::{
    PageCommit, QuarantineEntry, RunPart, RunRecord, RunState, Store, StoredRecord, StreamCounters,
    SyncDefinition,
};
use crate::stream_end::StreamEnd;

/// How soon a failed scheduled run is tried again (at most its interval).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Earlier runs looked at for the last complete read of each stream ([`crate::outcome`]).
const BASELINE_RUNS: i64 = 50;

/// Runs one replica may have in flight; only a bound, so [`Runner::drain`] can wait for all.
const MAX_RUNS: u32 = 1 << 16;

#[derive(Clone)]
pub struct Runner {
    store: Store,
    mesh: Mesh,
    coordinator: Coordinator,
    /// This replica's name in leases.
    holder: String,
    page_size: u32,
    /// How long a run's lease lives without renewal; renewed every third of it.
    lease_ttl: Duration,
    /// Set once the process is shutting down: runs stop between pages, no new run starts.
    stopping: Arc<watch::Sender<bool>>,
    /// One permit per run in flight; draining takes them all.
    runs: Arc<Semaphore>,
}

/// Where a run's streams start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// From each stream's checkpoint.
    Incremental,
    /// From the start, then tombstoning what the partner no longer has.
    FullRefresh,
}

/// A stream to read, the canonical entity its records map to, and the connector version whose
/// mapping specs apply.
struct StreamPlan {
    stream: String,
    entity: String,
    connector_version: String,
}

impl Runner {
    pub fn new(
        store: Store,
        mesh: Mesh,
        coordinator: Coordinator,
        page_size: u32,
        lease_ttl: Duration,
    ) -> Runner {
        Runner {
            lease_ttl,
            store,
            mesh,
            coordinator,
            holder: format!("sync-{}", uuid::Uuid::new_v4()),
            page_size,
            stopping: Arc::new(watch::channel(false).0),
            runs: Arc::new(Semaphore::new(MAX_RUNS as usize)),
        }
    }

    /// The signed clients of the other services.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// Asks every run to stop after its current page and refuses new runs. Returns at once.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Stops the runs and waits up to `timeout` for each to record its outcome and release its
    /// lease. False when some are still going (their leases then expire after the lease TTL).
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.stop();
        match tokio::time::timeout(timeout, self.runs.acquire_many(MAX_RUNS)).await {
            Ok(Ok(all)) => {
                // Kept, so nothing can start after the drain.
                all.forget();
                true
            }
            Ok(Err(_closed)) => true,
            Err(_elapsed) => false,
        }
    }

    /// Starts a run of `sync` in the background and returns its id, or `RunInProgress` when
    /// another run of the connection holds the lease.
    pub async fn start(&self, sync: SyncDefinition, mode: ReadMode) -> Result<String, Error> {
        if *self.stopping.borrow() {
            return Err(Error::ShuttingDown);
        }
        let permit = Arc::clone(&self.runs)
            .try_acquire_owned()
            .map_err(|_| Error::ShuttingDown)?;
        let lease = crate::fence::acquire(
            &self.coordinator,
            &self.store,
            &sync.tenant_id,
            &sync.connection_id,
            &self.holder,
            self.lease_ttl,
        )
        .await?
        .ok_or_else(|| Error::RunInProgress {
            connection_id: sync.connection_id.clone(),
        })?;
        // Holding the lease proves no other run of the connection is alive; one still marked
        // running died with its process (SIGKILL, a crash) and never recorded its end.
        if let Err(error) = self
            .store
            .fail_abandoned_runs(&sync.tenant_id, &sync.connection_id)
            .await
        {
            self.release(&lease).await;
            return Err(error);
        }
        // This run is the one a quota pause waited for (or a manual run that replaces it).
        if let Err(error) =
            crate::quota::resumed(&self.store, &sync.tenant_id, &sync.connection_id).await
        {
            self.release(&lease).await;
            return Err(error);
        }
        let run = RunRecord {
            run_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: sync.tenant_id.clone(),
            connection_id: sync.connection_id.clone(),
            state: RunState::Running,
            started_at: now_text(),
            finished_at: None,
            error: None,
            streams: Vec::new(),
        };
        if let Err(error) = self.store.insert_run(&run).await {
            self.release(&lease).await;
            return Err(error);
        }
        let run_id = run.run_id.clone();
        tracing::info!(run_id, connection_id = %sync.connection_id, connector = %sync.connector, "run started");
        let runner = self.clone();
        // The run outlives the RPC or scheduler tick that started it, but belongs to its trace:
        // the connector, mapping, health and partner calls of the run continue the caller's.
        let span = tracing::info_span!(
            "sync.run",
            run_id = %run_id,
            connection_id = %sync.connection_id,
            connector = %sync.connector,
        );
        tokio::spawn(
            async move {
                runner.execute(sync, run, lease, mode).await;
                drop(permit);
            }
            .instrument(span),
        );
        Ok(run_id)
    }

    async fn execute(
        &self,
        sync: SyncDefinition,
        mut run: RunRecord,
        lease: Lease,
        mode: ReadMode,
    ) {
        self.report_heartbeat(&sync).await;
        let lease_lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(keep_lease(
            self.coordinator.clone(),
            lease.clone(),
            self.lease_ttl,
            Arc::clone(&lease_lost),
        ));

        let fence = Fence::of(&lease);
        // Asked for during the read, so the report after it waits for nothing.
        let (result, partner_name) = tokio::join!(
            self.read_all(&sync, &mut run, &lease_lost, fence, mode),
            crate::partner_name::display_name(&self.mesh, &sync.connector),
        );
        renewal.abort();

        let finished_at = now_text();
        run.finished_at = Some(finished_at.clone());
        match &result {
            Ok(()) => {
                run.state = RunState::Succeeded;
                if let Err(error) = self
                    .store
                    .mark_synced(&sync.tenant_id, &sync.connection_id, &finished_at)
                    .await
                {
                    tracing::warn!(error = %error, "cannot record the sync time");
                }
            }
            Err(error) => {
                run.state = match error {
                    Error::QuotaExhausted { .. } => RunState::Paused,
                    _ => RunState::Failed,
                };
                run.error = Some(error.to_string());
            }
        }
        if let Err(error) = self.store.update_run(&run).await {
            tracing::error!(run_id = %run.run_id, error = %error, "cannot record the run outcome");
        }
        let written: u64 = run.streams.iter().map(|s| s.records_written).sum();
        let quarantined: u64 = run.streams.iter().map(|s| s.records_quarantined).sum();
        match &result {
            Ok(()) => tracing::info!(
                run_id = %run.run_id, connection_id = %run.connection_id, written, quarantined,
                "run succeeded"
            ),
            Err(error) => tracing::warn!(
                run_id = %run.run_id, connection_id = %run.connection_id, error = %error,
                "run failed"
            ),
        }
        if matches!(result, Err(Error::ShuttingDown | Error::Fenced { .. })) {
            // Not the partner's fault, so not an outcome for health: the run that resumes it
            // (or took it over) reports. A scheduled sync is due again now, for whichever
            // replica ticks first; one holding the lease already makes that tick a no-op.
            if sync.is_scheduled()
                && let Err(error) = self
                    .store
                    .set_next_run(&sync.tenant_id, &sync.connection_id, &finished_at)
                    .await
            {
                tracing::warn!(error = %error, "cannot reschedule an interrupted run");
            }
        } else {
            if let Err(Error::QuotaExhausted { resumes_at }) = &result
                && let Err(error) = crate::quota::pause_until(
                    &self.store,
                    &sync.tenant_id,
                    &sync.connection_id,
                    resumes_at,
                )
                .await
            {
                tracing::error!(error = %error, "cannot record when the paused run resumes");
            }
            let error = result.as_ref().err();
            self.report_outcome(&sync, &run, error, written, quarantined, &partner_name)
                .await;
            match &result {
                Err(Error::QuotaExhausted { .. }) | Ok(()) => {}
                Err(error) => self.schedule_retry(&sync, error).await,
            }
        }
        self.release(&lease).await;
    }

    async fn read_all(
        &self,
        sync: &SyncDefinition,
        run: &mut RunRecord,
        lease_lost: &AtomicBool,
        fence: Fence,
        mode: ReadMode,
    ) -> Result<(), Error> {
        let resolved = self
            .mesh
            .registry()
            .resolve(ResolveRequest {
                connector: sync.connector.clone(),
            })
            .await
            .map_err(|status| Error::dependency("registry", &status))?
            .into_inner();
        let mut connector = self.mesh.connector(&resolved.address, &sync.tenant_id)?;
        let connection = ConnectionRef {
            connection_id: sync.connection_id.clone(),
            settings_json: sync.settings_json.clone(),
        };
        let discovered = connector
            .discover(DiscoverRequest {
                connection: Some(connection.clone()),
            })
            .await
            .map_err(|status| Error::dependency("connector", &status))?
            .into_inner();
        let plans: Vec<StreamPlan> = discovered
            .streams
            .into_iter()
            .filter(|stream| sync.streams.is_empty() || sync.streams.contains(&stream.name))
            .map(|stream| StreamPlan {
                stream: stream.name,
                entity: stream.entity,
                connector_version: resolved.version.clone(),
            })
            .collect();
        if plans.is_empty() {
            return Err(Error::InvalidArgument {
                field: "streams",
                reason: format!(
                    "the connector {} offers none of {:?}",
                    sync.connector, sync.streams
                ),
            });
        }

        for (index, plan) in plans.iter().enumerate() {
            let start = match mode {
                ReadMode::FullRefresh => {
                    // Started again from scratch: what a paused one left is moot.
                    crate::paused_read::forget(
                        &self.store,
                        &sync.tenant_id,
                        &sync.connection_id,
                        &plan.stream,
                    )
                    .await?;
                    crate::paused_read::Resumption {
                        complete: true,
                        ..Default::default()
                    }
                }
                ReadMode::Incremental => {
                    crate::paused_read::resume(
                        &self.store,
                        &sync.tenant_id,
                        &sync.connection_id,
                        &plan.stream,
                    )
                    .await?
                }
            };
            let checkpoint = start.checkpoint;
            // A read from no checkpoint sees everything the partner has, and so does one that
            // finishes a complete read a quota paused; what it does not see is gone at the
            // partner.
            let complete_read = start.complete;
            let mut seen: HashSet<String> = start.seen;
            // What the partner's deleted-records endpoint listed; applied with the last page,
            // once the read has ended without an error.
            let mut reported_deleted: Vec<String> = Vec::new();
            run.streams.push(StreamCounters {
                stream: plan.stream.clone(),
                entity: plan.entity.clone(),
                checkpoint_before: checkpoint.clone(),
                checkpoint_after: checkpoint.clone(),
                ..StreamCounters::default()
            });
            let stream_index = run.streams.len() - 1;
            let opened = connector
                .read(ReadRequest {
                    connection: Some(connection.clone()),
                    stream: plan.stream.clone(),
                    checkpoint,
                    page_size: self.page_size,
                    run_id: run.run_id.clone(),
                })
                .await
                .map_err(|status| crate::quota::read_error(&status));
            let mut pages = match opened {
                Ok(pages) => pages.into_inner(),
                Err(error) => {
                    if matches!(error, Error::QuotaExhausted { .. }) && complete_read {
                        let counters = &run.streams[stream_index];
                        self.keep_paused_read(sync, mode, &plans[index..], counters, &seen)
                            .await?;
                    }
                    return Err(error);
                }
            };
            let mut stopping = self.stopping.subscribe();
            let mut page_guard = crate::page_guard::PageGuard::default();
            // A page is committed when the next one arrives or the read ends, so that the last
            // page carries the read's deletions in its transaction ([`crate::stream_end`]).
            let mut held: Option<PreparedPage> = None;
            let run_id = run.run_id.clone();
            let ended = loop {
                // Checked between pages: the page before is held or committed, the next not
                // yet read.
                if *stopping.borrow() {
                    break Err(Error::ShuttingDown);
                }
                let next = tokio::select! {
                    next = pages.message() => next,
                    // Waiting for a page (a partner's Retry-After, say) ends at shutdown; the
                    // page is read again from the checkpoint by the next run.
                    _ = stopping.wait_for(|stopping| *stopping) => break Err(Error::ShuttingDown),
                };
                let page = match next {
                    Ok(Some(page)) => page,
                    Ok(None) => break Ok(()),
                    Err(status) => break Err(crate::quota::read_error(&status)),
                };
                if lease_lost.load(Ordering::Acquire) {
                    // Not even the held page: the run that took over reads it again.
                    return Err(Error::Fenced {
                        connection_id: sync.connection_id.clone(),
                        fencing_token: fence.fencing_token,
                    });
                }
                let ids = page
                    .records
                    .iter()
                    .map(|record| record.external_id.as_str());
                if let Err(repeat) = page_guard.check(&page.checkpoint, ids) {
                    break Err(Error::RepeatedPage {
                        stream: plan.stream.clone(),
                        repeat,
                    });
                }
                run.streams[stream_index].signals.observe(&page);
                if complete_read {
                    seen.extend(page.records.iter().map(|record| record.external_id.clone()));
                }
                reported_deleted.extend(page.deleted.iter().map(|d| d.external_id.clone()));
                let prepared = self.prepare_page(sync, plan, &run_id, page);
                let Some(previous) = held.take() else {
                    held = Some(prepared.await?);
                    continue;
                };
                // The new page is mapped and its people linked while the page before commits,
                // so mapping and this service work at once; commits stay in page order, each
                // with its own checkpoint.
                let part = RunPart {
                    fence: Some(fence),
                    end: None,
                    run_id: Some(&run_id),
                };
                let counters = &mut run.streams[stream_index];
                let (prepared, committed) = tokio::join!(
                    prepared,
                    self.commit_page(sync, plan, previous, counters, part)
                );
                committed?;
                self.store.update_run(run).await?;
                held = Some(prepared?);
            };
            // The last page ends the read with its deletions; after an error it is committed
            // as any other page, and nothing is deleted.
            let end = ended.as_ref().ok().map(|()| StreamEnd {
                entity: &plan.entity,
                reported_deleted: &reported_deleted,
                seen: complete_read.then_some(&seen),
            });
            if let Some(last) = held.take() {
                let part = RunPart {
                    fence: Some(fence),
                    end,
                    run_id: Some(&run_id),
                };
                let counters = &mut run.streams[stream_index];
                self.commit_page(sync, plan, last, counters, part).await?;
                self.store.update_run(run).await?;
            }
            match &ended {
                Ok(()) => {
                    crate::paused_read::forget(
                        &self.store,
                        &sync.tenant_id,
                        &sync.connection_id,
                        &plan.stream,
                    )
                    .await?
                }
                Err(Error::QuotaExhausted { .. }) if complete_read => {
                    let counters = &run.streams[stream_index];
                    self.keep_paused_read(sync, mode, &plans[index..], counters, &seen)
                        .await?;
                }
                Err(_) => {}
            }
            ended?;
            tracing::debug!(run_id = %run.run_id, stream = %plan.stream, "stream read to the end");
        }
        Ok(())
    }

    /// Keeps a complete read that a used-up quota paused in `streams[0]` for the run that
    /// resumes it ([`crate::paused_read`]). A full refresh's later streams, and the paused one
    /// when it had not begun (its stored checkpoint may still be an older run's), are marked
    /// to be read from the start; an incremental run's later streams read from their own
    /// checkpoints anyway.
    async fn keep_paused_read(
        &self,
        sync: &SyncDefinition,
        mode: ReadMode,
        streams: &[StreamPlan],
        paused: &StreamCounters,
        seen: &HashSet<String>,
    ) -> Result<(), Error> {
        // With no page committed and no checkpoint, the read is where it started.
        let reached = paused.pages > 0 || !paused.checkpoint_after.is_empty();
        let mut unreached: Vec<&str> = Vec::new();
        if !reached {
            unreached.push(&paused.stream);
        }
        if mode == ReadMode::FullRefresh {
            unreached.extend(streams.iter().skip(1).map(|plan| plan.stream.as_str()));
        }
        crate::paused_read::save(
            &self.store,
            &sync.tenant_id,
            &sync.connection_id,
            reached.then_some((
                paused.stream.as_str(),
                paused.checkpoint_after.as_str(),
                seen,
            )),
            &unreached,
        )
        .await
    }

    /// Maps one page and links its people; nothing of it is committed yet.
    async fn prepare_page(
        &self,
        sync: &SyncDefinition,
        plan: &StreamPlan,
        run_id: &str,
        page: ReadResponse,
    ) -> Result<PreparedPage, Error> {
        let now = now_text();
        let quarantine_entry =
            |external_id: String, payload_json: String, reason: String, field_path: String| {
                QuarantineEntry {
                    id: uuid::Uuid::now_v7().to_string(),
                    run_id: run_id.to_owned(),
                    stream: plan.stream.clone(),
                    external_id,
                    payload_json,
                    reason,
                    field_path,
                    quarantined_at: now.clone(),
                }
            };
        let mut quarantined: Vec<QuarantineEntry> = page
            .rejected
            .into_iter()
            .map(|rejected| {
                quarantine_entry(
                    String::new(),
                    rejected.payload_json,
                    rejected.reason,
                    String::new(),
                )
            })
            .collect();
        let records_read = (page.records.len() + quarantined.len()) as u64;

        let mut records = Vec::with_capacity(page.records.len());
        // The page's people, when mapping did not link them with the transform (an older
        // mapping service): linked by a call of their own before the page commits.
        let mut people = Vec::new();
        if !page.records.is_empty() {
            // Kept for the stored records and the quarantine: mapping is asked not to send
            // them back (a page's payloads are most of its size).
            let payloads: Vec<String> = page
                .records
                .iter()
                .map(|record| record.payload_json.clone())
                .collect();
            let response = self
                .mesh
                .mapping(&sync.tenant_id)
                .transform(TransformRequest {
                    connector: sync.connector.clone(),
                    connector_version: plan.connector_version.clone(),
                    entity: plan.entity.clone(),
                    direction: Direction::Inbound as i32,
                    inputs: page
                        .records
                        .into_iter()
                        .map(|record| TransformInput {
                            external_id: record.external_id,
                            payload_json: record.payload_json,
                            ..TransformInput::default()
                        })
                        .collect(),
                    connection_id: sync.connection_id.clone(),
                    // One call maps the page and links its people: the page is sent once.
                    resolve_persons: true,
                    omit_raw_payloads: true,
                })
                .await
                .map_err(|status| Error::dependency("mapping", &status))?
                .into_inner();
            let linked = response.persons_resolved;
            let results = with_payloads(response.results, payloads, response.raw_payloads_omitted)?;
            for (result, payload) in results {
                match result.outcome {
                    Some(Outcome::Record(record)) => {
                        let record = with_connection(record, sync);
                        if !linked && crate::persons::is_person(&record.entity) {
                            people.push(crate::persons::for_linking(&record));
                        }
                        records.push(record_codec::into_stored(record, &now)?);
                    }
                    Some(Outcome::Error(field_error)) => {
                        let reason = format!(
                            "{} (value {})",
                            field_error.message, field_error.partner_value
                        );
                        quarantined.push(quarantine_entry(
                            result.external_id,
                            payload,
                            reason,
                            field_error.field_path,
                        ));
                    }
                    None | Some(Outcome::PartnerRecord(_)) => {
                        return Err(Error::Corrupt(format!(
                            "mapping returned no canonical record for record {}",
                            result.external_id
                        )));
                    }
                }
            }
        }

        crate::persons::resolve_page(&self.mesh, sync, people).await?;
        Ok(PreparedPage {
            records,
            quarantined,
            checkpoint: page.checkpoint,
            records_read,
            rate_limited_waits: page.rate_limited_waits,
        })
    }

    /// Commits a prepared page with its checkpoint, after the two-way review.
    async fn commit_page(
        &self,
        sync: &SyncDefinition,
        plan: &StreamPlan,
        page: PreparedPage,
        counters: &mut StreamCounters,
        part: RunPart<'_>,
    ) -> Result<(), Error> {
        let PreparedPage {
            records,
            quarantined,
            checkpoint,
            records_read,
            rate_limited_waits,
        } = page;
        counters.pages += 1;
        counters.rate_limited_waits += rate_limited_waits;
        counters.records_read += records_read;
        let quarantined_count = quarantined.len() as u64;
        for entry in &quarantined {
            tracing::info!(
                run_id = %entry.run_id, stream = %plan.stream, external_id = %entry.external_id,
                field_path = %entry.field_path, reason = %entry.reason, "record quarantined"
            );
        }
        // Two-way: our own writes coming back are not changes; partner edits may conflict.
        let review = crate::two_way::review_page(
            &self.store,
            &sync.tenant_id,
            &sync.connection_id,
            &plan.entity,
            &records,
        )
        .await?;
        let outcome = self
            .store
            .commit_run_page(
                PageCommit {
                    tenant_id: &sync.tenant_id,
                    connection_id: &sync.connection_id,
                    stream: &plan.stream,
                    records,
                    quarantined,
                    checkpoint: &checkpoint,
                },
                &review,
                part,
            )
            .await?;
        counters.records_written += outcome.written;
        counters.records_deleted += outcome.deleted;
        counters.records_unchanged += outcome.unchanged;
        counters.records_quarantined += quarantined_count;
        counters.checkpoint_after = checkpoint;
        Ok(())
    }

    /// Tells health the connection is scheduled (or paused); also sent when a sync is paused
    /// or resumed so the status follows at once.
    pub(crate) async fn report_heartbeat(&self, sync: &SyncDefinition) {
        // A cron schedule promises the gap between its next two occurrences.
        let interval_seconds =
            crate::schedule::Schedule::of(sync).map_or(sync.interval_seconds, |schedule| {
                let gap = schedule.expected_gap(chrono::Utc::now()).as_secs();
                u32::try_from(gap).unwrap_or(u32::MAX)
            });
        let report = Report::Heartbeat(Heartbeat {
            connection_id: sync.connection_id.clone(),
            connector: sync.connector.clone(),
            interval_seconds,
            paused: sync.paused,
        });
        self.report(&sync.tenant_id, report).await;
    }

    async fn report_outcome(
        &self,
        sync: &SyncDefinition,
        run: &RunRecord,
        error: Option<&Error>,
        written: u64,
        quarantined: u64,
        partner_name: &str,
    ) {
        // Earlier runs of the connection, for the honest-outcome baselines; without them the
        // run is judged on its own.
        let earlier = self
            .store
            .list_runs(&sync.tenant_id, &sync.connection_id, BASELINE_RUNS)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(error = %error, "cannot read earlier runs to judge the outcome");
                Vec::new()
            });
        let baselines = crate::outcome::baselines(&run.run_id, &earlier);
        let partner = crate::outcome::display_name(&sync.connector);
        let Verdict { kind, reason } = crate::outcome::judge(&partner, run, error, &baselines);
        if kind == RunOutcomeKind::Suspect {
            tracing::warn!(run_id = %run.run_id, reason, "run completed but is not a success");
        }
        let report = Report::RunOutcome(RunOutcome {
            connection_id: sync.connection_id.clone(),
            connector: sync.connector.clone(),
            run_id: run.run_id.clone(),
            kind: kind as i32,
            reason,
            records_written: written,
            records_quarantined: quarantined,
            finished_at: run.finished_at.clone().unwrap_or_default(),
            streams: run
                .streams
                .iter()
                .map(|stream| StreamOutcome {
                    stream: stream.stream.clone(),
                    entity: stream.entity.clone(),
                    records_read: stream.records_read,
                    records_written: stream.records_written,
                    pages: stream.pages,
                    checkpoint_before: stream.checkpoint_before.clone(),
                    checkpoint_after: stream.checkpoint_after.clone(),
                    repeated_pages: stream.signals.repeated_pages,
                    fields: stream.signals.fields.iter().cloned().collect(),
                    partner_requests: Some(stream.signals.partner_requests.clone()),
                })
                .collect(),
            partner_requests: crate::stream_signals::run_requests(
                run.streams.iter().map(|stream| &stream.signals),
            ),
            connector_display_name: partner_name.to_owned(),
        });
        self.report(&sync.tenant_id, report).await;
    }

    /// A failed scheduled sync is tried again after [`RETRY_AFTER_FAILURE`] rather than a whole
    /// interval later (or at its next cron occurrence, when that is sooner), unless only the
    /// customer can fix it (rejected credentials).
    async fn schedule_retry(&self, sync: &SyncDefinition, error: &Error) {
        if error.is_credentials_rejected() {
            return;
        }
        let now = chrono::Utc::now();
        let Ok(Some(next)) = crate::schedule::Schedule::of(sync).map(|s| s.next_after(now)) else {
            return;
        };
        let retry = now
            + chrono::Duration::from_std(RETRY_AFTER_FAILURE)
                .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let retry_at = plugboard_runtime::storage::format_time(retry.min(next));
        match self
            .store
            .set_next_run(&sync.tenant_id, &sync.connection_id, &retry_at)
            .await
        {
            Ok(()) => {
                tracing::info!(connection_id = %sync.connection_id, retry_at, "failed run will be retried")
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot schedule the retry of a failed run")
            }
        }
    }

    /// Health is told what happened; if it is down the run's outcome still stands in our store.
    async fn report(&self, tenant_id: &str, report: Report) {
        let request = ReportRequest {
            report: Some(report),
        };
        if let Err(status) = self.mesh.health(tenant_id).report(request).await {
            tracing::warn!(code = ?status.code(), message = status.message(), "cannot report to health");
        }
    }

    async fn release(&self, lease: &Lease) {
        if let Err(error) = self.coordinator.release(lease).await {
            // The lease expires by itself; the next run only waits for that.
            tracing::warn!(error = %error, key = %lease.key, "cannot release a run lease");
        }
    }
}

/// A page mapped and its people linked, waiting for its commit.
struct PreparedPage {
    records: Vec<StoredRecord>,
    quarantined: Vec<QuarantineEntry>,
    checkpoint: String,
    records_read: u64,
    rate_limited_waits: u32,
}

/// Each transform result with the payload sent for it (mapping answers each input at its
/// position); when mapping left the raw payloads out (`omitted`), a record's is that payload.
/// A mapping service older than `omit_raw_payloads` echoes them, and they are kept.
fn with_payloads(
    results: Vec<TransformResult>,
    payloads: Vec<String>,
    omitted: bool,
) -> Result<Vec<(TransformResult, String)>, Error> {
    if results.len() != payloads.len() {
        return Err(Error::Corrupt(format!(
            "mapping answered {} results for {} records",
            results.len(),
            payloads.len()
        )));
    }
    Ok(results
        .into_iter()
        .zip(payloads)
        .map(|(mut result, payload)| match &mut result.outcome {
            Some(Outcome::Record(record)) if omitted => {
                record.raw_payload_json = payload;
                (result, String::new())
            }
            _ => (result, payload),
        })
        .collect())
}

fn with_connection(mut record: CanonicalRecord, sync: &SyncDefinition) -> CanonicalRecord {
    record.connection_id = sync.connection_id.clone();
    record
}

async fn keep_lease(coordinator: Coordinator, lease: Lease, ttl: Duration, lost: Arc<AtomicBool>) {
    let mut interval = tokio::time::interval(ttl / 3);
    interval.tick().await;
    loop {
        interval.tick().await;
        match coordinator.renew(&lease, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(key = %lease.key, "run lease lost; stopping before the next page");
                lost.store(true, Ordering::Release);
                return;
            }
            // A blip in Redis is not a lost lease; the next renewal decides.
            Err(error) => {
                tracing::warn!(error = %error, key = %lease.key, "cannot renew a run lease")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use plugboard_runtime::identity::MeshKey;
    use secrecy::SecretString;

    use super::*;

    async fn runner() -> Runner {
        let dir = std::env::temp_dir().join(format!("sync-runner-{}", uuid::Uuid::new_v4()));
        let store = Store::open(&plugboard_runtime::storage::sqlite_url(&dir, "sync"))
            .await
            .unwrap();
        let key = MeshKey::new(&SecretString::from("k".repeat(32))).unwrap();
        // Nothing listens there: these tests never get as far as calling another service.
        let mesh = Mesh::new(key, "127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9").unwrap();
        Runner::new(
            store,
            mesh,
            Coordinator::local(),
            10,
            Duration::from_secs(30),
        )
    }

    fn definition() -> SyncDefinition {
        SyncDefinition {
            tenant_id: "t".into(),
            connection_id: "c".into(),
            connector: "bullhorn".into(),
            settings_json: "{}".into(),
            streams: Vec::new(),
            interval_seconds: 0,
            cron: String::new(),
            paused: false,
            last_sync_at: None,
            next_run_at: None,
            resumes_at: None,
        }
    }

    fn mapped(external_id: &str, raw_payload_json: &str) -> TransformResult {
        TransformResult {
            external_id: external_id.to_owned(),
            outcome: Some(Outcome::Record(CanonicalRecord {
                external_id: external_id.to_owned(),
                raw_payload_json: raw_payload_json.to_owned(),
                ..CanonicalRecord::default()
            })),
        }
    }

    fn raw_payload(result: &TransformResult) -> &str {
        match &result.outcome {
            Some(Outcome::Record(record)) => &record.raw_payload_json,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_mapping_sent_without_their_payloads_get_the_ones_sent() {
        let failed = TransformResult {
            external_id: "2".to_owned(),
            outcome: Some(Outcome::Error(Default::default())),
        };
        let payloads = vec![r#"{"id":1}"#.to_owned(), r#"{"id":2}"#.to_owned()];
        let paired = with_payloads(
            vec![mapped("1", ""), failed.clone()],
            payloads.clone(),
            true,
        )
        .unwrap();
        assert_eq!(raw_payload(&paired[0].0), r#"{"id":1}"#);
        // A record that did not map is quarantined with what was sent.
        assert_eq!(paired[1], (failed, r#"{"id":2}"#.to_owned()));

        // An older mapping service echoes them: kept as they came.
        let echoed = with_payloads(
            vec![mapped("1", r#"{"id":1}"#)],
            vec![payloads[0].clone()],
            false,
        )
        .unwrap();
        assert_eq!(raw_payload(&echoed[0].0), r#"{"id":1}"#);

        // One result per record sent, or the page is not trusted.
        let error = with_payloads(vec![mapped("1", "")], payloads, true).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error}");
    }

    #[tokio::test]
    async fn a_stopping_runner_refuses_new_runs_and_drains_when_none_is_left() {
        let runner = runner().await;
        runner.stop();
        let error = runner
            .start(definition(), ReadMode::Incremental)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ShuttingDown), "{error}");
        assert!(runner.drain(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn draining_waits_for_runs_in_flight_and_gives_up_at_the_timeout() {
        let runner = runner().await;
        let in_flight = Arc::clone(&runner.runs).try_acquire_owned().unwrap();
        assert!(!runner.drain(Duration::from_millis(100)).await);
        let draining = tokio::spawn({
            let runner = runner.clone();
            async move { runner.drain(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(in_flight);
        assert!(draining.await.unwrap());
        // Nothing starts after a drain, even with the flag read late.
        assert!(Arc::clone(&runner.runs).try_acquire_owned().is_err());
    }
}
