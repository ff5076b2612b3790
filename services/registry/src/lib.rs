//! Plugboard's connector registry: which connectors exist, their manifests and live instances.
//!
//! Connector instances register with their manifest (streams, mapping specs, settings schema)
//! and the address where they serve the connector contract, then send heartbeats. The sync
//! service resolves a connector name to one live instance; the gateway and mapping read
//! manifests, which stay available after every instance has stopped. An instance whose
//! heartbeats stop for the liveness TTL is gone: queries stop returning it at once, and a
//! background reaper marks it gone in storage and logs it.
//!
//! Calls are mesh-internal: they need a valid service token but act for no tenant.
//!
//! Modules:
//! - [`config`]: typed configuration from the environment;
//! - [`error`]: the crate's error enum and its reason codes;
//! - [`manifest`]: registration checks, version order and the manifest's storage encoding;
//! - [`store`]: the connectors and instances tables (SQLite or PostgreSQL);
//! - [`service`]: registration, heartbeats, resolution, the reaper and pruning;
//! - [`grpc`]: the thin `plugboard.registry.v1.RegistryService` adapter.
//!
//! # Limitations
//!
//! - Resolution rotates per registry replica, not across replicas, and does not weigh load.
//! - Gone instances are listed for `PLUGBOARD_REGISTRY_GONE_RETENTION_HOURS` (a week by default)
//!   after their last heartbeat, then pruned; each connector keeps its most recent instance.
//! - Liveness uses each replica's wall clock; replicas need roughly synchronised clocks.

pub mod config;
pub mod error;
pub mod grpc;
pub mod manifest;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use plugboard_proto::registry::v1::registry_service_server::RegistryServiceServer;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;

use crate::grpc::GrpcRegistryAdapter;
use crate::service::Registry;
use crate::store::Store;

/// Serves the registry on `listener` until `shutdown` completes, with the reaper beside it.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mesh_key = MeshKey::new(&config.mesh_key)?;
    let store = Store::open(&config.database_url, &config.database_schema).await?;
    let registry = Arc::new(
        Registry::new(store, config.liveness_ttl).with_gone_retention(config.gone_retention),
    );

    let reaper = {
        let registry = Arc::clone(&registry);
        tokio::spawn(async move { registry.reap_forever().await })
    };

    let server = RegistryServiceServer::with_interceptor(
        GrpcRegistryAdapter::new(registry),
        RequireCaller::new(mesh_key),
    );
    let name = <RegistryServiceServer<GrpcRegistryAdapter> as NamedService>::NAME;
    let result =
        plugboard_runtime::server::serve(listener, Routes::new(server), &[name], shutdown).await;
    reaper.abort();
    result?;
    Ok(())
}
