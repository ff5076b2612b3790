//! Plugboard's sync service: durable, incremental sync into the canonical record store.
//!
//! Sync owns the sync definitions of every tenant's connections, runs them on schedule or on
//! demand, and keeps the canonical records internal services read. One inbound run resolves the
//! connector through the registry, pages through a stream from its checkpoint, has mapping turn
//! each page into canonical records, and commits records, quarantined rejects and the next
//! checkpoint in one transaction. Outcomes go to the health service.
//!
//! - [`config`]: configuration from the environment;
//! - [`changes`]: the change log and the feed behind `WatchChanges`;
//! - [`events`]: partner webhook events (durable de-duplication by event id, no older event
//!   over newer data, delete tombstones, targeted reads) and deleted-records endpoint reports;
//! - [`store`]: definitions, runs, checkpoints, records and quarantine on SQLite or PostgreSQL;
//! - [`runner`]: one run, page by page, under a lease with a fencing token;
//! - [`scheduler`]: starts due syncs on every replica, the lease deciding who runs;
//! - [`service`]: the tenant-scoped domain operations;
//! - [`grpc`]: the `plugboard.sync.v1.SyncService` adapter;
//! - [`page_guard`]: stops a run whose connector serves the same page again;
//! - [`mesh`]: signed clients for registry, connectors, mapping and health.
//!
//! # Limitations
//!
//! Inbound one-way sync only: two-way writes are TODO(#6), as are honest-outcome rules (a
//! zero-record run counts as a success) and shared partner rate-limit budgets. Deletions a
//! deleted-records endpoint reports are tombstoned in their own transaction after the read's
//! last page is committed; a crash between the two loses them unless the endpoint lists them
//! again (JobAdder's lists 14 days). TODO(#6): commit them with the last page.

pub mod changes;
pub mod config;
pub mod error;
pub mod events;
pub mod grpc;
pub mod mesh;
pub mod page_guard;
pub mod record_codec;
pub mod runner;
pub mod scheduler;
pub mod service;
pub mod store;

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
            tracing::warn!(
                "no PLUGBOARD_REDIS_URL: run leases are in-process, run one replica only"
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

    let service = service::SyncService::new(store, runner.clone());
    let pending_webhook_reads = tokio::spawn(
        service
            .webhook_events()
            .clone()
            .read_pending(PENDING_WEBHOOK_READS_TICK),
    );
    let server = SyncServiceServer::with_interceptor(
        grpc::GrpcSyncAdapter::new(service),
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
    if runner.drain(DRAIN_RUNS_TIMEOUT).await {
        tracing::info!("runs stopped and their leases released");
    } else {
        tracing::warn!(
            timeout = ?DRAIN_RUNS_TIMEOUT,
            "runs still in progress at shutdown; their leases expire on their own"
        );
    }
    Ok(result?)
}
