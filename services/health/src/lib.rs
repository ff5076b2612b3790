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
//! - [`rules`]: the status rules, pure and unit-tested;
//! - [`store`]: integration state and run history (SQLite or PostgreSQL);
//! - [`service`]: taking reports and answering for status;
//! - [`grpc`]: the thin `plugboard.health.v1.IntegrationHealthService` adapter.
//!
//! # Limitations
//!
//! - Silence (missed heartbeats) is noticed when a status is read, not pushed; there is no
//!   `WatchStatus` stream yet. TODO(#7): a watcher that turns silence into incidents.
//! - Run history is written but not yet read: uptime and incident queries are TODO(#7).
//! - Reasons name the partner by its connector id, capitalised, not its manifest display name.

pub mod config;
pub mod error;
pub mod grpc;
pub mod rules;
pub mod service;
pub mod store;

use std::future::Future;

use plugboard_proto::health::v1::integration_health_service_server::IntegrationHealthServiceServer;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;

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
    let server = IntegrationHealthServiceServer::with_interceptor(
        GrpcHealthAdapter::new(HealthService::new(store)),
        RequireCaller::new(mesh_key),
    );
    let name = <IntegrationHealthServiceServer<GrpcHealthAdapter> as NamedService>::NAME;
    plugboard_runtime::server::serve(listener, Routes::new(server), &[name], shutdown).await?;
    Ok(())
}
