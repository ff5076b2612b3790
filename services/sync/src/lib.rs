//! Plugboard's sync service: durable, incremental and two-way sync with the canonical record
//! store.
//!
//! Sync owns the sync definitions of every tenant's connections, runs them on schedule or on
//! demand, and keeps the canonical records internal services read. One inbound run resolves the
//! connector through the registry, pages through a stream from its checkpoint, has mapping turn
//! each page into canonical records, and commits records, quarantined rejects and the next
//! checkpoint in one transaction. Outcomes go to the health service.
//!
//! A sync runs every `interval_seconds`, or on a cron expression evaluated in UTC
//! (`SetSchedule`), or only when triggered; pausing stops both. One run per connection goes at
//! a time across every replica: the run lease carries a fencing token, the database keeps the
//! connection's newest token, and every page's transaction checks it, so a replica that stalled
//! past its lease cannot commit after another took over; the database is also the floor new
//! tokens start above, so a Redis restarted empty cannot hand out an old token. A page is
//! committed once the next one arrives, so the read's last page carries its deletions
//! (endpoint-reported, and the difference of a complete read) in the same transaction as the
//! final checkpoint. Outcomes are honest ([`outcome`]): a full read that finds nothing where the
//! previous found hundreds is suspect, not a success; a used-up partner quota pauses the run
//! after its last committed page until the reset ([`quota`]).
//!
//! Writes go the other way through the outbox. `PushRecord` stores the write under the caller's
//! idempotency key (a retry finds the same push), every replica's outbox worker claims due
//! pushes and writes them through the connector's `Write`, retrying transient failures with
//! backoff, and the partner's id is kept on the push. Before a page is committed it is compared
//! with our open pushes and the connection's field ownership: our own write coming back is
//! stored without a change on `WatchChanges` (the rule is in [`echo`]), and a partner edit
//! that contradicts the platform is recorded as a conflict and settled by the policy. Every page
//! a run commits goes through this step, whatever started the run (a schedule, a webhook). The
//! write body is built by the connector from its manifest's `writes.<entity>` templates over the
//! canonical record: the request and its body sit together in one checked file, and a push
//! costs no extra mapping call.
//!
//! - [`config`]: configuration from the environment;
//! - [`changes`]: the change log and the feed behind `WatchChanges`;
//! - [`events`]: partner webhook events (durable de-duplication by event id, no older event
//!   over newer data, delete tombstones, targeted reads) and deleted-records endpoint reports;
//! - [`store`]: definitions, runs, checkpoints, records and quarantine on SQLite or PostgreSQL;
//! - [`runner`]: one run, page by page, under a lease with a fencing token;
//! - [`fence`]: the run lease and its fencing token, checked inside every page's transaction
//!   and re-seeded from the database when Redis restarts empty;
//! - [`stream_end`]: a read's deletions, committed with its last page;
//! - [`schedule`]: intervals and cron expressions (always UTC);
//! - [`scheduler`]: starts due syncs on every replica, the lease deciding who runs;
//! - [`service`]: the tenant-scoped domain operations;
//! - [`grpc`]: the `plugboard.sync.v1.SyncService` adapter;
//! - [`page_guard`]: stops a run whose connector serves the same page again;
//! - [`page_write`]: a page's records and change-log rows in a few multi-row statements;
//! - [`rehash`]: a stored record hashed under another content hash scheme is compared by
//!   content, so a new scheme does not republish unchanged records;
//! - [`outcome`]: honest outcomes: an empty full read after a big one is suspect, a 403 says so;
//! - [`quota`]: a used-up partner quota pauses the run until its reset, from its checkpoint;
//! - [`paused_read`]: what a paused complete read had seen, so its resumption still tombstones
//!   what the partner no longer has;
//! - [`stream_signals`]: per stream, the partner's field names, pages served again and partner
//!   requests, reported to health; [`partner_name`]: the manifest's display name for it;
//! - [`manifest_check`]: a definition checked against its connector's manifest in the
//!   registry (streams, settings schema) before it is stored;
//! - [`quarantine`]: entries resolved by a later import in its page's transaction, and their
//!   listing;
//! - [`mesh`]: signed clients for registry, connectors, mapping and health;
//! - [`outbox`]: pushes as durable rows, claimed by compare-and-set, recovered when a replica dies;
//! - [`retention`]: settled pushes purged after `PLUGBOARD_SYNC_PUSH_RETENTION_DAYS` (30);
//! - [`delivery`]: the outbox worker, with its retry and "may have been sent" rules;
//! - [`push`]: the two-way domain operations (pushes, policies, conflicts);
//! - [`policy`]: field ownership and conflict policy per connection and entity;
//! - [`fields`]: canonical records as flat field values, the unit of ownership and comparison;
//! - [`echo`]: what a partner record means next to our pushes (echo, change, conflict);
//! - [`conflicts`]: settling conflicts per policy, and their table;
//! - [`two_way`]: the review of a page before its commit, applied in its transaction.
//! - [`persons`]: each page's people linked by mapping; records answered with their person id;
//! - [`documents`]: `ParseDocument` (a document parsed once per content hash, landed as
//!   canonical records) and the tenant's parse costs.
//!
//! # Limitations
//!
//! - `CreateSync` checks a definition against the connector's manifest as the registry has it
//!   when the sync is defined or redefined ([`manifest_check`]), not the credentials or the
//!   partner (the first run does), and a stored sync is not checked again when its connector
//!   registers a manifest that drops a stream or a setting: its runs fail until it is
//!   redefined. A connector must have registered before a sync of it is defined, so callers
//!   that start a mesh wait for it (`plugboard dev` does). A redefinition replaces the
//!   settings wholesale.
//! - A quarantine entry is resolved only by a later page of the same stream importing the same
//!   external id ([`quarantine`]): a reject the connector sent without an id, a record since
//!   deleted at the partner, and a document parse quarantined and then landed by a later
//!   `ParseDocument` (not a page commit) stay listed. Resolved entries are kept, listed with
//!   `include_resolved`; quarantine has no retention yet.
//! - A full inbound sync moves about 6,800 to 7,300 records/s through the mesh on SQLite at
//!   100,000 records (7,400 to 8,300 in one `plugboard dev` process, which peaked at 147 MB,
//!   close to the 150 MB goal) and 4,900 to 5,800 on PostgreSQL, on a 2-core machine, far from
//!   the 50,000 goal. The runner maps a page while the one before commits, and mapping maps a
//!   large page in two halves at once, so mapping's share sets the pace: about 87 to 96 µs of
//!   CPU per record (Transform's jq, phone validation for identity keys, identity's SQLite
//!   work), against sync's 46 to 51. On SQLite, page commits and identity's transactions each
//!   keep one writer connection with a few MB of page cache ([`store`]).
//!   `tests/benches/RESULTS.md` has the numbers, what each change gave and next steps
//!   (TODO(#6)).
//! - A complete read (a full refresh, or a first read) resumes as one only after a quota pause
//!   ([`paused_read`]); one cut by a crash, a shutdown or a failure resumes incrementally from
//!   its checkpoint and tombstones nothing until the next complete read.
//! - The suspect rule compares complete reads only (`EMPTY_AFTER_AT_LEAST` = 100 records on the
//!   last earlier complete read of the stream); an incremental read that finds nothing is
//!   normal and left to health's volume warnings. The suspect run itself is stored as
//!   succeeded (its checkpoints moved); only its report to health says suspect.
//! - A held conflict takes its fields out of a push queued (not yet sent) for the record; a push
//!   already being written when the conflict is found still writes them.
//! - An unconfirmed create stays unconfirmed until a read finds the record, or the caller gives
//!   it up (`GiveUpPush`) and pushes again under a new key; a record the partner did make after
//!   all then arrives on a read as the partner's own, not as our echo. Settled pushes are
//!   purged after the retention (30 days by default): a retry with the same idempotency key
//!   after that writes again.
//! - Every upsert statement of a page first asks whether the connection still has records of
//!   the entity stored under a content hash scheme before mapping's current one ([`rehash`]): a
//!   probe of a partial index that is empty once every record is rehashed. While some are left,
//!   the statement's records are looked up to compare them by content; a page that arrives
//!   under the old scheme (an older mapping replica during an upgrade) is always looked up.
//! - Field values compare exactly: a partner that reformats a value we wrote (case, spacing) turns
//!   that field's echo into a partner change, unless its answer to the write carried the
//!   reformatted value.
//! - Document parses are kept forever, as the record of what was paid for; there is no
//!   retention or erasure of a parse's raw payload yet (TODO(#8)), though
//!   `personal_data_fields` names what an erasure must clear. A parse reused after the tenant's
//!   mapping changed answers the records as first stored; only a quarantined parse is mapped
//!   again.
//! - A page's review reads the stored records and pushes just before the page's transaction; an
//!   inbound run is the only writer of records, so only pushes queued in between are missed, and
//!   the partner cannot have their values yet.

pub mod changes;
pub mod config;
pub mod conflicts;
pub mod delivery;
pub mod documents;
pub mod echo;
pub mod error;
pub mod events;
pub mod fence;
pub mod fields;
pub mod grpc;
mod grpc_documents;
mod grpc_two_way;
pub mod manifest_check;
pub mod mesh;
pub mod outbox;
pub mod outcome;
pub mod page_guard;
pub mod page_write;
pub mod partner_name;
pub mod paused_read;
pub mod persons;
pub mod policy;
pub mod push;
pub mod quarantine;
pub mod quota;
pub mod record_codec;
pub mod rehash;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod stream_end;
pub mod stream_signals;
pub mod two_way;

use std::future::Future;
use std::time::Duration;

use plugboard_proto::sync::v1::sync_service_server::SyncServiceServer;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;

/// Largest request accepted: a 10 MiB document and the rest of its `ParseDocument` request.
const MAX_REQUEST_BYTES: usize = documents::MAX_DOCUMENT_BYTES + 1024 * 1024;

/// How often webhook events waiting for a busy connection are looked at again.
const PENDING_WEBHOOK_READS_TICK: Duration = Duration::from_secs(2);

/// How long shutdown waits for runs to stop after their current page and release their
/// leases; well inside Kubernetes' grace period for sync (60 s in deploy/k8s).
const DRAIN_RUNS_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves the sync service on `listener` until `shutdown` completes, then drains: in-flight
/// RPCs finish, runs stop after their current page, record that they were interrupted and
/// release their leases, so another replica (or this one, restarted) resumes them.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mesh_key = MeshKey::new(&config.mesh_key).map_err(|e| Error::InvalidArgument {
        field: "PLUGBOARD_MESH_KEY",
        reason: e.to_string(),
    })?;
    let store = store::Store::open(&config.database_url).await?;
    let coordinator = match &config.redis_url {
        Some(url) => Coordinator::redis(url).await?,
        None => {
            // `plugboard dev` never passes one (one process needs none), whatever the
            // environment says; a split-mode sync without PLUGBOARD_REDIS_URL lands here too.
            tracing::warn!(
                "no Redis configured (PLUGBOARD_REDIS_URL unset, or plugboard dev): run leases \
                 are in-process, run one replica only"
            );
            Coordinator::local()
        }
    };
    let mesh = mesh::Mesh::new(
        mesh_key.clone(),
        &config.registry_addr,
        &config.mapping_addr,
        &config.health_addr,
    )?;
    let (stop_delivery, delivery_stopping) = tokio::sync::watch::channel(false);
    let delivery = tokio::spawn(
        delivery::Delivery::new(store.clone(), mesh.clone(), config.push.clone())
            .run(delivery_stopping),
    );
    let retention = config
        .push
        .retention
        .map(|keep| tokio::spawn(retention::run(store.outbox(), keep)));
    let runner = runner::Runner::new(
        store.clone(),
        mesh,
        coordinator,
        config.page_size,
        config.lease_ttl,
    );
    let scheduler = tokio::spawn(scheduler::run(
        store.clone(),
        runner.clone(),
        config.scheduler_tick,
    ));

    let two_way = push::TwoWayService::new(store.clone());
    let documents = documents::Documents::new(store.clone(), runner.mesh().clone());
    let service = service::SyncService::new(store, runner.clone());
    let pending_webhook_reads = tokio::spawn(
        service
            .webhook_events()
            .clone()
            .read_pending(PENDING_WEBHOOK_READS_TICK),
    );
    // A ParseDocument request carries a document of up to 10 MiB, over tonic's 4 MiB default.
    let server = tonic::service::interceptor::InterceptedService::new(
        SyncServiceServer::new(grpc::GrpcSyncAdapter::new(service, two_way, documents))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        RequireCaller::new(mesh_key),
    );
    let names = [<SyncServiceServer<grpc::GrpcSyncAdapter> as NamedService>::NAME];
    let stopping = runner.clone();
    let shutdown = async move {
        shutdown.await;
        // Runs stop taking pages while the server drains its calls.
        stopping.stop();
    };
    let result =
        plugboard_runtime::server::serve(listener, Routes::new(server), &names, shutdown).await;
    scheduler.abort();
    pending_webhook_reads.abort();
    if let Some(retention) = retention {
        retention.abort();
    }
    // The outbox stops claiming; a write in hand finishes and records its outcome, or, cut
    // off by the timeout, is recovered from its expired claim by the next replica to look.
    stop_delivery.send_replace(true);
    let (delivery_stopped, runs_stopped) = tokio::join!(
        tokio::time::timeout(DRAIN_RUNS_TIMEOUT, delivery),
        runner.drain(DRAIN_RUNS_TIMEOUT)
    );
    if delivery_stopped.is_err() {
        tracing::warn!("a push was still being written at shutdown");
    }
    if runs_stopped {
        tracing::info!("runs stopped and their leases released");
    } else {
        tracing::warn!(
            timeout = ?DRAIN_RUNS_TIMEOUT,
            "runs still in progress at shutdown; their leases expire on their own"
        );
    }
    Ok(result?)
}
