//! The sync service's storage: definitions, runs, checkpoints, canonical records, quarantine.
//!
//! Every query names the tenant. A page of records, its quarantined rejects and the checkpoint
//! after it are committed in one transaction, so a crash between pages neither loses nor
//! duplicates a record: the next run resumes from the last committed checkpoint.

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::error::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDefinition {
    pub tenant_id: String,
    pub connection_id: String,
    pub connector: String,
    pub settings_json: String,
    pub streams: Vec<String>,
    pub interval_seconds: u32,
    /// A cron expression (UTC) the sync runs on instead of an interval; empty for none. See
    /// [`crate::schedule`].
    pub cron: String,
    pub paused: bool,
    pub last_sync_at: Option<String>,
    pub next_run_at: Option<String>,
    /// Set while a run is paused for a used-up partner quota: when it resumes.
    pub resumes_at: Option<String>,
}

impl SyncDefinition {
    /// True when the scheduler starts its runs (an interval or a cron expression).
    pub fn is_scheduled(&self) -> bool {
        self.interval_seconds > 0 || !self.cron.is_empty()
    }
}

/// Counters of one stream within a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounters {
    pub stream: String,
    pub records_read: u64,
    pub records_written: u64,
    pub records_unchanged: u64,
    pub records_quarantined: u64,
    pub pages: u32,
    pub rate_limited_waits: u32,
    /// The canonical entity of the stream, reported to health for freshness per entity.
    #[serde(default)]
    pub entity: String,
    /// The stream's checkpoint when the run started and after its last committed page, so
    /// health can notice a cursor that does not move.
    #[serde(default)]
    pub checkpoint_before: String,
    #[serde(default)]
    pub checkpoint_after: String,
    /// Records tombstoned because a complete read no longer found them.
    #[serde(default)]
    pub records_deleted: u64,
    /// Field names, repeated pages and partner requests, for health; not kept with the run.
    #[serde(skip)]
    pub signals: crate::stream_signals::StreamSignals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    /// Stopped for a used-up partner quota; the sync resumes it at its `resumes_at`.
    Paused,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Paused => "paused",
        }
    }

    fn parse(text: &str) -> Result<RunState, Error> {
        match text {
            "running" => Ok(RunState::Running),
            "succeeded" => Ok(RunState::Succeeded),
            "failed" => Ok(RunState::Failed),
            "paused" => Ok(RunState::Paused),
            other => Err(Error::Corrupt(format!("unknown run state {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub state: RunState,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub streams: Vec<StreamCounters>,
}

/// A canonical record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub entity: String,
    pub external_id: String,
    pub content_hash: String,
    pub body_json: String,
    pub custom_fields_json: String,
    pub raw_payload_json: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: String,
    pub run_id: String,
    pub stream: String,
    pub external_id: String,
    pub payload_json: String,
    pub reason: String,
    pub field_path: String,
    pub quarantined_at: String,
}

/// One page to commit: its records, its rejects and where the stream resumes after it.
#[derive(Debug)]
pub struct PageCommit<'a> {
    pub tenant_id: &'a str,
    pub connection_id: &'a str,
    pub stream: &'a str,
    pub records: Vec<StoredRecord>,
    pub quarantined: Vec<QuarantineEntry>,
    pub checkpoint: &'a str,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageOutcome {
    pub written: u64,
    pub unchanged: u64,
    /// Records tombstoned with the page, when it ended its stream's read.
    pub deleted: u64,
}

/// What a run adds to a page's transaction.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunPart<'a> {
    /// The run's fencing token: the commit fails with [`Error::Fenced`] unless it is still the
    /// connection's newest.
    pub fence: Option<crate::fence::Fence>,
    /// Set on the last page of a stream's read: the read's deletions.
    pub end: Option<crate::stream_end::StreamEnd<'a>>,
    /// The run, named on the quarantine entries the page's records resolve.
    pub run_id: Option<&'a str>,
}

/// The page cache of the SQLite connection page commits use: a run's upserts search the
/// records' primary key and the change log near the page's keys, so a few MB of hot index
/// pages; memory is counted against the 150 MB of the whole `plugboard dev` process.
const PAGE_WRITER_CACHE_KIB: u32 = 4 * 1024;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Page commits: on SQLite one connection whose page cache outlives each commit
    /// (`plugboard_runtime::storage::open_sqlite_writer`); on PostgreSQL the pool itself.
    page_writer: AnyPool,
    /// Woken after every page commit that wrote records, for `WatchChanges` watchers.
    committed: std::sync::Arc<tokio::sync::Notify>,
    /// The outbox's wake-ups: a push queued, a push settled (see [`crate::outbox::Outbox`]).
    outbox_queued: std::sync::Arc<tokio::sync::Notify>,
    outbox_settled: std::sync::Arc<tokio::sync::Notify>,
}

impl Store {
    pub async fn open(database_url: &str) -> Result<Store, Error> {
        Self::open_in_schema(database_url, "sync").await
    }

    /// Opens in a named PostgreSQL schema; tests use a fresh one each.
    pub async fn open_in_schema(database_url: &str, schema: &str) -> Result<Store, Error> {
        let pool = plugboard_runtime::storage::open(database_url, schema, &MIGRATOR).await?;
        let page_writer =
            plugboard_runtime::storage::open_sqlite_writer(database_url, PAGE_WRITER_CACHE_KIB)
                .await?
                .unwrap_or_else(|| pool.clone());
        Ok(Store {
            pool,
            page_writer,
            committed: std::sync::Arc::default(),
            outbox_queued: std::sync::Arc::default(),
            outbox_settled: std::sync::Arc::default(),
        })
    }

    /// The outbox of writes to partners, in this store's database.
    pub fn outbox(&self) -> crate::outbox::Outbox {
        crate::outbox::Outbox::new(
            self.pool.clone(),
            std::sync::Arc::clone(&self.outbox_queued),
            std::sync::Arc::clone(&self.outbox_settled),
        )
    }

    /// The quarantine of rejected records, for listing.
    pub fn quarantine(&self) -> crate::quarantine::Quarantine {
        crate::quarantine::Quarantine::new(self.pool.clone())
    }

    pub async fn upsert_sync(&self, sync: &SyncDefinition) -> Result<(), Error> {
        let now = plugboard_runtime::storage::now_text();
        let streams_json = serde_json::to_string(&sync.streams)
            .map_err(|e| Error::Corrupt(format!("streams: {e}")))?;
        sqlx::query(
            "INSERT INTO syncs (tenant_id, connection_id, connector, settings_json, streams_json, \
             interval_seconds, paused, created_at, updated_at, next_run_at, cron) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) \
             ON CONFLICT (tenant_id, connection_id) DO UPDATE SET connector = excluded.connector, \
             settings_json = excluded.settings_json, streams_json = excluded.streams_json, \
             interval_seconds = excluded.interval_seconds, paused = excluded.paused, \
             updated_at = excluded.updated_at, next_run_at = excluded.next_run_at, \
             cron = excluded.cron",
        )
        .bind(&sync.tenant_id)
        .bind(&sync.connection_id)
        .bind(&sync.connector)
        .bind(&sync.settings_json)
        .bind(streams_json)
        .bind(i64::from(sync.interval_seconds))
        .bind(i32::from(sync.paused))
        .bind(now)
        .bind(&sync.next_run_at)
        .bind(&sync.cron)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_sync(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<Option<SyncDefinition>, Error> {
        let row = sqlx::query(
            "SELECT tenant_id, connection_id, connector, settings_json, streams_json, \
             interval_seconds, cron, paused, last_sync_at, next_run_at, resumes_at FROM syncs \
             WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| sync_from_row(&row)).transpose()
    }

    pub async fn list_syncs(&self, tenant_id: &str) -> Result<Vec<SyncDefinition>, Error> {
        let rows = sqlx::query(
            "SELECT tenant_id, connection_id, connector, settings_json, streams_json, \
             interval_seconds, cron, paused, last_sync_at, next_run_at, resumes_at FROM syncs \
             WHERE tenant_id = $1 ORDER BY connection_id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sync_from_row).collect()
    }

    /// Scheduled syncs of every tenant whose next run is due at `now`.
    pub async fn due_syncs(&self, now: &str) -> Result<Vec<SyncDefinition>, Error> {
        let rows = sqlx::query(
            "SELECT tenant_id, connection_id, connector, settings_json, streams_json, \
             interval_seconds, cron, paused, last_sync_at, next_run_at, resumes_at FROM syncs \
             WHERE paused = 0 \
             AND (interval_seconds > 0 OR cron <> '' OR resumes_at IS NOT NULL) \
             AND next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY next_run_at",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sync_from_row).collect()
    }

    /// Sets the schedule of the tenant's sync and when it is next due; false when there is no
    /// such sync.
    pub async fn set_schedule(
        &self,
        tenant_id: &str,
        connection_id: &str,
        interval_seconds: u32,
        cron: &str,
        next_run_at: Option<&str>,
    ) -> Result<bool, Error> {
        let updated = sqlx::query(
            "UPDATE syncs SET interval_seconds = $3, cron = $4, next_run_at = $5, updated_at = $6 \
             WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(i64::from(interval_seconds))
        .bind(cron)
        .bind(next_run_at)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    pub async fn set_next_run(
        &self,
        tenant_id: &str,
        connection_id: &str,
        next_run_at: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE syncs SET next_run_at = $3 WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(next_run_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_synced(
        &self,
        tenant_id: &str,
        connection_id: &str,
        at: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE syncs SET last_sync_at = $3 WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_counts(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<Vec<(String, u64)>, Error> {
        let rows = sqlx::query(
            "SELECT entity, COUNT(*) AS n FROM records WHERE tenant_id = $1 AND connection_id = $2 \
             AND deleted_at IS NULL GROUP BY entity ORDER BY entity",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get("n")?;
                Ok((row.try_get("entity")?, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }

    pub async fn load_checkpoint(
        &self,
        tenant_id: &str,
        connection_id: &str,
        stream: &str,
    ) -> Result<Option<String>, Error> {
        let checkpoint = sqlx::query_scalar(
            "SELECT checkpoint FROM checkpoints WHERE tenant_id = $1 AND connection_id = $2 \
             AND stream = $3",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(stream)
        .fetch_optional(&self.pool)
        .await?;
        Ok(checkpoint)
    }

    /// Commits a page atomically: records (written only when their hash changed), quarantined
    /// rejects and the checkpoint.
    pub async fn commit_page(&self, page: PageCommit<'_>) -> Result<PageOutcome, Error> {
        self.commit_page_with(page, &crate::two_way::PageReview::default())
            .await
    }

    /// [`Store::commit_page`] with what the two-way review decided: its silent records are
    /// written without a change on the log, and its conflicts and pushes go in the same
    /// transaction.
    pub async fn commit_page_with(
        &self,
        page: PageCommit<'_>,
        review: &crate::two_way::PageReview,
    ) -> Result<PageOutcome, Error> {
        self.commit_run_page(page, review, RunPart::default()).await
    }

    /// [`Store::commit_page_with`] for a run: fenced by its token and, on a stream's last
    /// page, with the read's deletions, all in the page's one transaction.
    pub async fn commit_run_page(
        &self,
        page: PageCommit<'_>,
        review: &crate::two_way::PageReview,
        run: RunPart<'_>,
    ) -> Result<PageOutcome, Error> {
        let mut transaction = self.page_writer.begin().await?;
        // First, so a run that lost its lease writes nothing and holds no record rows.
        if let Some(fence) = run.fence {
            crate::fence::check(&mut transaction, page.tenant_id, page.connection_id, fence)
                .await?;
        }
        let mut outcome = PageOutcome::default();
        let mut changes = Vec::new();
        let written = crate::page_write::upsert_records(
            &mut transaction,
            page.tenant_id,
            page.connection_id,
            &page.records,
        )
        .await?;
        for (record, changed) in page.records.iter().zip(written) {
            if changed {
                outcome.written += 1;
                if review.is_silent(&record.external_id) {
                    continue;
                }
                changes.push(crate::changes::Change {
                    entity: record.entity.clone(),
                    external_id: record.external_id.clone(),
                    deleted: false,
                });
            } else {
                outcome.unchanged += 1;
            }
        }
        crate::quarantine::resolve_imported(
            &mut transaction,
            page.tenant_id,
            page.connection_id,
            page.stream,
            &page.records,
            run.run_id,
        )
        .await?;
        for entry in &page.quarantined {
            sqlx::query(
                "INSERT INTO quarantine (id, tenant_id, connection_id, run_id, stream, external_id, \
                 payload_json, reason, field_path, quarantined_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&entry.id)
            .bind(page.tenant_id)
            .bind(page.connection_id)
            .bind(&entry.run_id)
            .bind(&entry.stream)
            .bind(&entry.external_id)
            .bind(&entry.payload_json)
            .bind(&entry.reason)
            .bind(&entry.field_path)
            .bind(&entry.quarantined_at)
            .execute(&mut *transaction)
            .await?;
        }
        sqlx::query(
            "INSERT INTO checkpoints (tenant_id, connection_id, stream, checkpoint, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, connection_id, stream) \
             DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at",
        )
        .bind(page.tenant_id)
        .bind(page.connection_id)
        .bind(page.stream)
        .bind(page.checkpoint)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&mut *transaction)
        .await?;
        let changed_at = plugboard_runtime::storage::now_text();
        if let Some(end) = &run.end {
            let deletions = crate::stream_end::apply(
                &mut transaction,
                page.tenant_id,
                page.connection_id,
                end,
                &changed_at,
            )
            .await?;
            outcome.deleted = deletions.len() as u64;
            changes.extend(deletions);
        }
        crate::changes::log_changes(
            &mut transaction,
            page.tenant_id,
            page.connection_id,
            &changes,
            &changed_at,
        )
        .await?;
        crate::two_way::apply(&mut transaction, page.tenant_id, review).await?;
        transaction.commit().await?;
        if !changes.is_empty() {
            self.committed.notify_waiters();
        }
        if review.queues_pushes() {
            self.outbox_queued.notify_waiters();
        }
        Ok(outcome)
    }

    /// The pool, for modules with tables of their own ([`crate::events`], the two-way ones).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Wakes `WatchChanges` watchers after a commit made outside this module.
    pub(crate) fn notify_committed(&self) {
        self.committed.notify_waiters();
    }

    /// The feed of committed changes, for `WatchChanges`.
    pub fn change_feed(&self) -> crate::changes::ChangeFeed {
        crate::changes::ChangeFeed::new(self.pool.clone(), std::sync::Arc::clone(&self.committed))
    }

    /// Marks runs of the connection still recorded as running as failed; called by the holder
    /// of the connection's run lease, which no live run can hold at the same time.
    pub async fn fail_abandoned_runs(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<u64, Error> {
        let abandoned = sqlx::query(
            "UPDATE runs SET state = 'failed', finished_at = $3, \
             error = 'interrupted: the process running it stopped before the run finished; \
             the next run resumed from the last committed page' \
             WHERE tenant_id = $1 AND connection_id = $2 AND state = 'running'",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if abandoned > 0 {
            tracing::warn!(
                tenant_id,
                connection_id,
                abandoned,
                "marked abandoned runs as failed"
            );
        }
        Ok(abandoned)
    }

    pub async fn insert_run(&self, run: &RunRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO runs (run_id, tenant_id, connection_id, state, started_at, finished_at, \
             error, progress_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.run_id)
        .bind(&run.tenant_id)
        .bind(&run.connection_id)
        .bind(run.state.as_str())
        .bind(&run.started_at)
        .bind(&run.finished_at)
        .bind(&run.error)
        .bind(progress_json(&run.streams)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        sqlx::query(
            "UPDATE runs SET state = $3, finished_at = $4, error = $5, progress_json = $6 \
             WHERE tenant_id = $1 AND run_id = $2",
        )
        .bind(&run.tenant_id)
        .bind(&run.run_id)
        .bind(run.state.as_str())
        .bind(&run.finished_at)
        .bind(&run.error)
        .bind(progress_json(&run.streams)?)
        // A run updates its progress after every page: on the page commits' connection, whose
        // page cache another connection's write would drop.
        .execute(&self.page_writer)
        .await?;
        Ok(())
    }

    pub async fn get_run(&self, tenant_id: &str, run_id: &str) -> Result<Option<RunRecord>, Error> {
        let row = sqlx::query(
            "SELECT run_id, tenant_id, connection_id, state, started_at, finished_at, error, \
             progress_json FROM runs WHERE tenant_id = $1 AND run_id = $2",
        )
        .bind(tenant_id)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| run_from_row(&row)).transpose()
    }

    /// The connection's most recent runs, newest first, at most `limit`.
    pub async fn list_runs(
        &self,
        tenant_id: &str,
        connection_id: &str,
        limit: i64,
    ) -> Result<Vec<RunRecord>, Error> {
        let rows = sqlx::query(
            "SELECT run_id, tenant_id, connection_id, state, started_at, finished_at, error, \
             progress_json FROM runs WHERE tenant_id = $1 AND connection_id = $2 \
             ORDER BY started_at DESC, run_id DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Pauses or resumes the tenant's sync of a connection; false when there is no such sync.
    pub async fn set_paused(
        &self,
        tenant_id: &str,
        connection_id: &str,
        paused: bool,
    ) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE syncs SET paused = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(i32::from(paused))
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn last_run(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<Option<RunRecord>, Error> {
        let row = sqlx::query(
            "SELECT run_id, tenant_id, connection_id, state, started_at, finished_at, error, \
             progress_json FROM runs WHERE tenant_id = $1 AND connection_id = $2 \
             ORDER BY started_at DESC, run_id DESC LIMIT 1",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| run_from_row(&row)).transpose()
    }

    /// Records after `after_external_id` in external-id order, at most `limit`.
    pub async fn list_records(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
        after_external_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredRecord>, Error> {
        let rows = sqlx::query(
            "SELECT entity, external_id, content_hash, body_json, custom_fields_json, \
             raw_payload_json, updated_at FROM records WHERE tenant_id = $1 \
             AND connection_id = $2 AND entity = $3 AND external_id > $4 \
             AND deleted_at IS NULL ORDER BY external_id LIMIT $5",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .bind(after_external_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRecord {
                    entity: row.try_get("entity")?,
                    external_id: row.try_get("external_id")?,
                    content_hash: row.try_get("content_hash")?,
                    body_json: row.try_get("body_json")?,
                    custom_fields_json: row.try_get("custom_fields_json")?,
                    raw_payload_json: row.try_get("raw_payload_json")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn count_records(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
    ) -> Result<u64, Error> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM records WHERE tenant_id = $1 AND connection_id = $2 \
             AND entity = $3 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// Writes one canonical record unless the store holds the same content (the same hash, or
/// another scheme's with the same body: see `rehash`); true when it wrote. A tombstoned
/// record written again comes back to life.
pub(crate) async fn upsert_record(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    connection_id: &str,
    record: &StoredRecord,
) -> Result<bool, Error> {
    crate::rehash::adopt_hashes(
        transaction,
        tenant_id,
        connection_id,
        std::slice::from_ref(record),
    )
    .await?;
    let changed = sqlx::query(
        "INSERT INTO records (tenant_id, connection_id, entity, external_id, content_hash, \
         body_json, custom_fields_json, raw_payload_json, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (tenant_id, connection_id, entity, external_id) DO UPDATE SET \
         content_hash = excluded.content_hash, body_json = excluded.body_json, \
         custom_fields_json = excluded.custom_fields_json, \
         raw_payload_json = excluded.raw_payload_json, updated_at = excluded.updated_at, \
         deleted_at = NULL \
         WHERE records.content_hash <> excluded.content_hash \
         OR records.deleted_at IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(&record.entity)
    .bind(&record.external_id)
    .bind(&record.content_hash)
    .bind(&record.body_json)
    .bind(&record.custom_fields_json)
    .bind(&record.raw_payload_json)
    .bind(&record.updated_at)
    .execute(&mut **transaction)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

fn progress_json(streams: &[StreamCounters]) -> Result<String, Error> {
    serde_json::to_string(streams).map_err(|e| Error::Corrupt(format!("run progress: {e}")))
}

fn sync_from_row(row: &sqlx::any::AnyRow) -> Result<SyncDefinition, Error> {
    let streams_json: String = row.try_get("streams_json")?;
    let interval: i64 = row.try_get("interval_seconds")?;
    let paused: i32 = row.try_get("paused")?;
    Ok(SyncDefinition {
        tenant_id: row.try_get("tenant_id")?,
        connection_id: row.try_get("connection_id")?,
        connector: row.try_get("connector")?,
        settings_json: row.try_get("settings_json")?,
        streams: serde_json::from_str(&streams_json)
            .map_err(|e| Error::Corrupt(format!("streams of a sync: {e}")))?,
        interval_seconds: u32::try_from(interval).unwrap_or(0),
        cron: row.try_get("cron")?,
        paused: paused != 0,
        last_sync_at: row.try_get("last_sync_at")?,
        next_run_at: row.try_get("next_run_at")?,
        resumes_at: row.try_get("resumes_at")?,
    })
}

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<RunRecord, Error> {
    let state: String = row.try_get("state")?;
    let progress: String = row.try_get("progress_json")?;
    Ok(RunRecord {
        run_id: row.try_get("run_id")?,
        tenant_id: row.try_get("tenant_id")?,
        connection_id: row.try_get("connection_id")?,
        state: RunState::parse(&state)?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error: row.try_get("error")?,
        streams: serde_json::from_str(&progress)
            .map_err(|e| Error::Corrupt(format!("run progress: {e}")))?,
    })
}
