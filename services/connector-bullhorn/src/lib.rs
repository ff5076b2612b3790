//! Plugboard's Bullhorn connector.
//!
//! A thin gRPC service implementing `plugboard.connector.v1.ConnectorService` for Bullhorn,
//! the staffing ATS. It holds nothing durable: for each call it leases the connection's OAuth
//! client and API user from credentials (as `connector:bullhorn`, for the caller's tenant),
//! logs in with Bullhorn's real shape (headless OAuth authorize, token exchange, REST login
//! returning a `BhRestToken` and the data centre's `restUrl`), and pages through JobOrder,
//! Candidate, JobSubmission and Placement incrementally on `dateLastModified`, honouring 429
//! `Retry-After`. On start it registers its manifest with the registry and keeps a heartbeat.
//!
//! Modules:
//! - [`config`]: typed configuration from the environment;
//! - [`settings`]: connection settings and the target guard against internal networks;
//! - [`access`]: leasing the connection's secret from credentials;
//! - [`partner`]: HTTP to Bullhorn (login, requests, retries, rate-limit waits);
//! - [`checkpoint`]: the read checkpoint format;
//! - [`streams`]: the readable streams;
//! - [`service`]: check, discover and read, testable without gRPC;
//! - [`grpc`]: the thin tonic adapter;
//! - [`manifest`], [`registration`]: what the registry is told, and keeping it told;
//! - [`error`]: the one error type.
//!
//! # Limitations
//!
//! - Offset paging (`start`) over a fixed `since`: a record modified during a run moves behind
//!   the cursor and can shift a not-yet-read record across a page boundary; it is picked up by
//!   the next run only if its own timestamp is newer than the run's newest. TODO(#3): keyset
//!   paging on (`dateLastModified`, `id`).
//! - Deleted records are not detected (Bullhorn soft-deletes with `isDeleted`, which passes
//!   through in the payload). TODO(#6): event subscriptions.
//! - The target guard resolves names once before calling; DNS rebinding between the check and
//!   the request is not prevented. TODO(#3).
//! - Sessions are cached in memory per process and connection; nothing is shared across
//!   replicas, so each replica logs in once per connection.

pub mod access;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod grpc;
pub mod manifest;
pub mod partner;
pub mod registration;
pub mod service;
pub mod settings;
pub mod streams;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use plugboard_proto::connector::v1::connector_service_server::ConnectorServiceServer;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;

use crate::access::Access;
use crate::grpc::GrpcConnectorAdapter;
use crate::partner::Partner;
use crate::service::BullhornConnector;

/// Serves the connector on `listener` until `shutdown` completes, registering with the
/// registry in the background meanwhile.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let key = MeshKey::new(&config.mesh_key).map_err(|e| Error::Startup(e.to_string()))?;
    let credentials = lazy_channel(&config.credentials_addr)
        .map_err(|e| Error::Startup(format!("PLUGBOARD_CREDENTIALS_ADDR: {e}")))?;
    let registry = lazy_channel(&config.registry_addr)
        .map_err(|e| Error::Startup(format!("PLUGBOARD_REGISTRY_ADDR: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Startup(format!("cannot read the bound address: {e}")))?;
    let advertise = config
        .advertise_addr
        .clone()
        .unwrap_or_else(|| advertised(bound));

    let connector = Arc::new(BullhornConnector::new(
        Access::new(credentials, key.clone()),
        Partner::new(config.allow_private_targets)?,
    ));
    if config.allow_private_targets {
        tracing::warn!("private and loopback partner targets are allowed (dev/test setting)");
    }
    let registration = tokio::spawn(registration::maintain(
        registry,
        key.clone(),
        manifest::manifest(),
        config.instance_id.clone(),
        advertise,
    ));

    let service = ConnectorServiceServer::with_interceptor(
        GrpcConnectorAdapter::new(connector),
        RequireCaller::new(key),
    );
    let name = <ConnectorServiceServer<GrpcConnectorAdapter> as NamedService>::NAME;
    let result =
        plugboard_runtime::server::serve(listener, Routes::new(service), &[name], shutdown).await;
    registration.abort();
    result.map_err(Error::from)
}

/// The bound address as others reach it: an unspecified IP becomes loopback.
fn advertised(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port())).to_string()
    } else {
        bound.to_string()
    }
}
