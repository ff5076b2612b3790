//! Plugboard's integration health: how each integration of each tenant is doing, and why.
//!
//! The sync service reports every finished run and a heartbeat per scheduled connection, acting
//! for the connection's tenant. From those facts [`rules`] derives one status per integration
//! (operational, degraded, down, needs reconnect, paused) with a plain-language reason and,
//! when the customer can fix it, an action. The gateway reads the statuses for its dashboard.
//! Both calls are tenant-scoped through the caller's service token; a tenant never sees another
//! tenant's integrations. Every run is also kept in a history table for uptime and incidents.
//!
//! Modules:
//! - [`config`]: typed configuration from the environment;
//! - [`error`]: the crate's error enum and its reason codes;
//! - [`rules`]: the status rules, freshness, correctness signals, incident steps and uptime,
//!   pure and unit-tested;
//! - [`store`]: integration state and run history (SQLite or PostgreSQL);
//! - [`incidents`]: incidents and their timelines, written with the status change;
//! - [`webhooks`]: each tenant's webhook, SSRF-guarded, told of every change with a signature;
//! - [`fanout`]: status changes to the watchers of every replica, through Redis pub/sub;
//! - [`service`]: taking reports and answering for status;
//! - [`grpc`]: the thin `plugboard.health.v1.IntegrationHealthService` adapter.
//!
//! # Limitations
//!
//! - Without `PLUGBOARD_REDIS_URL`, status changes reach the `WatchStatus` streams of this
//!   process only: right for dev mode and one replica, not for several. With it, a change
//!   published while a replica's subscription is down reaches that replica's watchers late
//!   (with the next change or a reconnect's snapshot), not never.
//! - Silence and late data are noticed by a sweep every `sweep_interval` (or when read), so a
//!   change can arrive up to one interval late.
//! - Correctness signals and partner error rates and latency use what sync reports: per stream
//!   read counts, cursors, repeated pages and field names, and the run's partner requests (of
//!   the pages that arrived: a failed read's last requests are not counted). The thresholds
//!   ([`rules::partner`], [`rules::signals`]) are constants, not per-tenant settings.
//! - Reasons name the partner by the display name sync read from the registry with the run;
//!   until a run reports one (heartbeats and credentials reports carry none) they use the
//!   connector id, capitalised.

pub mod config;
pub mod error;
pub mod fanout;
pub mod grpc;
pub mod incidents;
pub mod rules;
pub mod service;
pub mod store;
pub mod webhooks;

use std::future::Future;

use plugboard_proto::health::v1::integration_health_service_server::IntegrationHealthServiceServer;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;

use crate::fanout::Fanout;
use crate::grpc::GrpcHealthAdapter;
use crate::service::HealthService;
use crate::store::Store;

/// Serves integration health on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mesh_key = MeshKey::new(&config.mesh_key)?;
    let store = Store::open(&config.database_url, &config.database_schema).await?;
    let service = HealthService::new(store.clone(), config.freshness_targets.clone());
    let webhooks = webhooks::Webhooks::new(store.pool(), config.allow_private_webhooks)?;
    // Webhooks follow the changes committed here: each change is delivered by one replica.
    let deliveries = tokio::spawn(webhooks.clone().deliver_forever(service.watch_committed()));
    let sweeper = tokio::spawn(sweep_forever(service.clone(), config.sweep_interval));
    let mut fanout_tasks = Vec::new();
    if let Some(redis_url) = &config.redis_url {
        let fanout = Fanout::connect(redis_url, &config.database_schema)
            .await
            .map_err(|error| Error::Coordination(error.to_string()))?;
        fanout_tasks.push(tokio::spawn(
            fanout.clone().publish_forever(service.clone()),
        ));
        fanout_tasks.push(tokio::spawn(fanout.relay_forever(service.clone())));
        tracing::info!("status changes fan out to every health replica through redis");
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let server = IntegrationHealthServiceServer::with_interceptor(
        GrpcHealthAdapter::new(service, webhooks, stopping),
        RequireCaller::new(mesh_key),
    );
    let name = <IntegrationHealthServiceServer<GrpcHealthAdapter> as NamedService>::NAME;
    let shutdown = async move {
        shutdown.await;
        stop.send_replace(true);
    };
    let served =
        plugboard_runtime::server::serve(listener, Routes::new(server), &[name], shutdown).await;
    sweeper.abort();
    deliveries.abort();
    for task in fanout_tasks {
        task.abort();
    }
    served?;
    Ok(())
}

/// Re-assesses every integration each `interval`, so silence and late data turn into status
/// changes, incidents and stream events without a reader asking.
async fn sweep_forever(service: HealthService, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match service.sweep(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(changed) => tracing::debug!(changed, "sweep changed statuses"),
            Err(error) => tracing::warn!(error = %error, "health sweep failed"),
        }
    }
}
