//! Plugboard's mapping service: partner records in, canonical staffing records out.
//!
//! Each connector ships declarative mapping specs (YAML, one per entity and direction) in its
//! manifest. This service fetches them from the registry, compiles them once per connector
//! version (jq expressions run by jaq) and applies them to batches of records in either
//! direction. Every record gets its own outcome: inbound, a typed canonical record with its
//! custom fields, raw payload and content hash; outbound, the partner payload and its hash; or
//! a field error that names the field path and the source value. One bad record never fails a
//! batch.
//!
//! Modules:
//! - [`spec`]: the spec format (documented there) and the pure engine, usable offline;
//! - [`config`]: configuration from `PLUGBOARD_*` variables;
//! - [`service`]: the domain ([`service::Mapper`]): Transform, ValidateSpec, ListSpecs and
//!   tenant overrides (PutTenantOverride, ListTenantOverrides, ListBrokenOverrides);
//! - `overrides`: applying tenant overrides, and checking them again when a connector's specs
//!   change;
//! - [`hropen`]: HR Open Standards 4.2 documents to and from the canonical model;
//! - [`identity`]: one canonical person for the same person's records across systems, by
//!   explicit, inspectable and reversible links (ResolvePersons, GetPerson, LinkRecords, ...);
//! - [`canonical`]: the rules every canonical record keeps (money with currency, rate periods,
//!   IANA time zones), checked wherever records are built;
//! - `store`: versioned tenant overrides and their checks (sqlx, SQLite or PostgreSQL);
//! - `catalog`: compiled specs per connector and version, fetched from the registry;
//! - `grpc`: the thin tonic adapter;
//! - [`error`]: the crate's error type and its reason codes.
//!
//! # Limitations
//!
//! - Outbound specs ship with the VMS connectors (Beeline, Fieldglass and Magnit submissions),
//!   which sync has mapped here for each push, tenant overrides included. Greenhouse writes
//!   candidates through its manifest's body templates, so its outbound spec and Bullhorn's
//!   (which writes nothing) are test fixtures in `tests/fixtures`.
//! - A jq expression in a connector spec has no time or step limit, so a spec with an endless
//!   loop (`repeat(.)`) ties up a blocking thread; specs come from connector manifests. Tenant
//!   overrides are limited to expressions that always finish (see [`spec::compile_with_override`]).
//! - A connector upgrade that breaks a tenant override is found when this service first
//!   loads the new specs (polled every `PLUGBOARD_MAPPING_SPEC_POLL_SECONDS`, and before any
//!   transform uses them); the override then stays applied over the last connector spec it
//!   fits until the tenant saves a fixed version (see `overrides`). An override saved before
//!   these checks existed that fits no spec seen since still fails its batches with
//!   `OVERRIDE_INVALID`. Checking every tenant's overrides is done in one pass per connector
//!   version, which grows with the number of tenants.
//! - Identity links a page in a constant number of statements inside one transaction per
//!   tenant (the rules run in memory over rows loaded for the whole page); regrouping reads a
//!   person's links a breadth-first level at a time, so a long chain of links costs a
//!   statement per level. A record deleted at the partner keeps its links.
//! - Transform maps the 20-field candidate mapping at 200,000 to 208,000 records per CPU-second
//!   on an idle core of the 2-core machine (the goal is 200,000; 12.7x JSONata in the same run),
//!   with a margin of a few percent: a loaded core prints less. Content hashes are of the
//!   body's protobuf encoding (`pb:`), which sync tells apart from the JSON-era hashes it has
//!   stored. What would widen the margin (setters compiled with the spec, fewer allocations per
//!   record) is in `benches/RESULTS.md`.
//! - An empty batch is answered without looking the spec up.

pub mod canonical;
pub mod config;
pub mod error;
pub mod hropen;
pub mod identity;
pub mod service;
pub mod spec;

mod catalog;
mod grpc;
mod overrides;
mod store;

use std::future::Future;
use std::sync::Arc;

use plugboard_proto::mapping::v1::mapping_service_server::{self, MappingServiceServer};
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_runtime::identity::{MeshCredentials, MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::Config;
pub use error::Error;
pub use grpc::GrpcMappingAdapter;

/// Serves the mapping service on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let key = MeshKey::new(&config.mesh_key)?;
    let channel = plugboard_runtime::channel::lazy_channel(&config.registry_addr)
        .map_err(Error::RegistryAddress)?;
    let registry = RegistryServiceClient::with_interceptor(
        channel,
        MeshCredentials::service(key.clone(), "mapping"),
    );
    let store = store::Store::open(&config.database_url, &config.database_schema).await?;
    let mapper = Arc::new(service::Mapper::new(registry, store));
    let poller = (!config.spec_poll_interval.is_zero())
        .then(|| tokio::spawn(poll_specs(mapper.clone(), config.spec_poll_interval)));
    let server = MappingServiceServer::with_interceptor(
        GrpcMappingAdapter::new(mapper),
        RequireCaller::new(key),
    );
    let served = plugboard_runtime::server::serve(
        listener,
        Routes::new(server),
        &[mapping_service_server::SERVICE_NAME],
        shutdown,
    )
    .await;
    if let Some(poller) = poller {
        poller.abort();
    }
    Ok(served?)
}

/// Looks for new versions of the connectors tenants override every `interval`, so a connector
/// upgrade that breaks an override is found and reported when it registers, not by a sync.
async fn poll_specs(mapper: Arc<service::Mapper>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = mapper.check_overridden_connectors().await {
            tracing::warn!(error = %error, "cannot check tenant overrides against new specs");
        }
    }
}
