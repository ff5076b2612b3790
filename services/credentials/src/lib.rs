//! Plugboard's credentials service: connection secrets, encrypted at rest, released only to the
//! connection's own connector.
//!
//! It stores one secret per (tenant, connection): an API key, a basic login or an OAuth2 client.
//! Secrets are prost-encoded and sealed with AES-256-GCM under their tenant's random data key,
//! bound to their row so a copied ciphertext does not open; data keys are stored wrapped by the
//! master key (`PLUGBOARD_MASTER_KEY`). At start the service re-wraps every data key under the
//! current master key (rotation, with `PLUGBOARD_MASTER_KEY_PREVIOUS` still unwrapping) and
//! fails closed, changing nothing, when a stored key needs a master key it was not given. Only the
//! connector named when the secret was stored may lease it, and only for the tenant in its own
//! verified token. Every put, lease, denial and revoke lands in an audit table, never with a
//! secret value; secrets never reach logs or traces.
//!
//! Modules:
//! - [`config`]: the typed configuration read once at start;
//! - [`crypto`]: data keys, master keys and the keyring (AES-256-GCM);
//! - [`keys`]: per-tenant data keys, their cache, rotation and migration at start;
//! - [`store`]: the credentials and audit tables (SQLite or PostgreSQL);
//! - [`service`]: the domain logic, callable without gRPC;
//! - [`grpc`]: the thin tonic adapter;
//! - [`validate`]: input checks that name the offending field;
//! - [`error`]: the crate's one error type and its gRPC mapping.
//!
//! # Limitations
//!
//! - One data key per tenant for its lifetime; rotating a tenant's data key (re-sealing its
//!   secrets) is not built. TODO(#4).
//! - Rotation re-wraps at start only; there is no admin RPC to trigger it on a running
//!   replica. TODO(#4).
//! - LeaseAccess returns OAuth2 client material as stored; token exchange, refresh and the
//!   BeginOAuth/CompleteOAuth flow are TODO(#4).
//! - Decrypted secrets are not zeroized in memory after use. TODO(#4).
//! - The audit log has no RPC to read it yet; the store exposes it. TODO(#4).

pub mod config;
pub mod crypto;
pub mod error;
pub mod grpc;
pub mod keys;
pub mod oauth;
pub mod service;
pub mod store;
pub mod validate;

use std::future::Future;

use plugboard_proto::credentials::v1::credentials_service_server::CredentialsServiceServer;
use plugboard_proto::credentials::v1::o_auth_service_server::OAuthServiceServer;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use crate::config::Config;
pub use crate::error::Error;
pub use crate::grpc::{GrpcCredentialsAdapter, GrpcOAuthAdapter};
pub use crate::service::Credentials;

/// The service's fully-qualified gRPC name.
pub const SERVICE_NAME: &str =
    <CredentialsServiceServer<GrpcCredentialsAdapter> as NamedService>::NAME;
/// The connect flow's fully-qualified gRPC name.
pub const OAUTH_SERVICE_NAME: &str = <OAuthServiceServer<GrpcOAuthAdapter> as NamedService>::NAME;

/// Opens the store, checks the keys and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let keyring = config.keyring()?;
    let mesh_key = config.mesh_key()?;
    let store = store::CredentialStore::open(&config.database_url, store::SCHEMA).await?;
    let coordinator = match &config.redis_url {
        Some(url) => Coordinator::redis(url)
            .await
            .map_err(|error| Error::Coordination(error.to_string()))?,
        None => Coordinator::local(),
    };
    let credentials =
        Credentials::new(store, keyring).with_oauth(coordinator, oauth::OAuthPolicy::default())?;
    credentials.prepare().await?;
    serve(credentials, mesh_key, listener, shutdown).await
}

/// Serves an already built [`Credentials`]: for embedding and for tests on other schemas.
pub async fn serve(
    credentials: Credentials,
    mesh_key: MeshKey,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let server = CredentialsServiceServer::with_interceptor(
        GrpcCredentialsAdapter::new(credentials.clone()),
        RequireCaller::new(mesh_key.clone()),
    );
    let connect = OAuthServiceServer::with_interceptor(
        GrpcOAuthAdapter::new(credentials),
        RequireCaller::new(mesh_key),
    );
    let routes = Routes::new(server).add_service(connect);
    plugboard_runtime::server::serve(
        listener,
        routes,
        &[SERVICE_NAME, OAUTH_SERVICE_NAME],
        shutdown,
    )
    .await?;
    Ok(())
}
