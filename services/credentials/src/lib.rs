//! Plugboard's credentials service: connection secrets, encrypted at rest, released only to the
//! connection's own connector.
//!
//! It stores one access secret per (tenant, connection): an API key, a basic login, an OAuth2
//! client or a mutual-TLS client certificate (PEM chain and key, plus the partner's private CA
//! if any), and beside it, optionally, the secret the partner signs its webhooks with.
//! Secrets are prost-encoded and sealed with AES-256-GCM under their tenant's random data key,
//! bound to their row so a copied ciphertext does not open; data keys are stored wrapped by the
//! master key (`PLUGBOARD_MASTER_KEY`). At start, and on a running replica when an admin calls
//! `CredentialsAdminService.RotateMasterKey` (which reads key files again), the service re-wraps
//! every data key under the current master key (rotation, with `PLUGBOARD_MASTER_KEY_PREVIOUS`
//! still unwrapping) and fails closed, changing nothing, when a stored key needs a master key it
//! was not given. `RotateDataKey` gives one tenant a new data key and re-seals its secrets under
//! it while they are leased ([`data_key_rotation`]). Only the
//! connector named when the secret was stored may lease it, and only for the tenant in its own
//! verified token. Every put, lease, denial, revoke, connect, token refresh, re-wrap and
//! migration lands in an audit table (who, what, when, which run), never with a secret value;
//! secrets never reach logs or traces (`tests/no_leaks.rs` checks with canaries).
//!
//! For an OAuth2 client without a user login the service does OAuth2 itself ([`oauth`]): client
//! credentials, or tokens from the authorization code flow with PKCE (`OAuthService`
//! BeginOAuth/CompleteOAuth), cached sealed, refreshed ahead of expiry by one replica at a time
//! (a coordination lease, on Redis when `PLUGBOARD_REDIS_URL` is set), and leases carry the
//! access token instead of the client secret. An OAuth2 client stored with a client
//! certificate (ADP: mTLS and OAuth2 together) presents it to the token endpoint
//! ([`oauth::mtls`]) and is leased with it, so the connector presents it to the API too; a
//! certificate the partner's TLS refuses fails leases as CREDENTIALS_REJECTED. A refused grant fails leases with
//! CREDENTIALS_REJECTED (needs reconnect); a flaky token endpoint is retried with backoff and,
//! after repeated failures, cools down (UNAVAILABLE with a `retry-after`). A connector whose
//! leased token the partner refused names it (its SHA-256) on its next lease, and gets a
//! refreshed one. When a refresh finds the grant refused, and when a put or connect replaces a
//! refused credential, the service reports the change to health once (`PLUGBOARD_HEALTH_ADDR`,
//! through an outbox written with the change). `ListAudit` reads the tenant's audit log.
//! Leases go to the connection's own connector only, proven by the connector's own key when
//! `PLUGBOARD_CONNECTOR_PUBLIC_KEYS` is set.
//!
//! Modules:
//! - [`audit`]: audit rows spooled locally before a lease answers, shipped to the table;
//! - [`audit_log`]: reading the audit log (ListAudit), tenant-scoped, newest first;
//! - [`config`]: the typed configuration read once at start;
//! - [`crypto`]: data keys, master keys and the keyring (AES-256-GCM);
//! - [`keys`]: per-tenant data keys, their cache, re-wrapping and migration at start;
//! - [`master_rotation`]: master key rotation on a running replica (RotateMasterKey);
//! - [`data_key_rotation`]: per-tenant data key rotation (RotateDataKey);
//! - [`data_key_store`]: the current and retired data key tables, and re-sealing rows;
//! - [`admin`]: who may call the admin RPCs;
//! - [`store`]: the credentials, data key and audit tables (SQLite or PostgreSQL);
//! - [`row_cache`]: credential rows kept in memory for leases, for at most two seconds;
//! - [`row_changes`]: row writes told to every replica's row cache over Redis;
//! - [`oauth`]: token broker, single-flight refresh, failure classes and the connect flow;
//! - [`service`]: the domain logic, callable without gRPC;
//! - [`grpc`]: the thin tonic adapters (CredentialsService, OAuthService,
//!   CredentialsAdminService);
//! - [`health`]: reports to health when a connection's access is refused or valid again;
//! - [`validate`]: input checks that name the offending field;
//! - [`webhook_secret`]: webhook signing secrets, stored beside the access secret;
//! - [`wipe`]: clearing decoded secrets from memory when they are dropped;
//! - [`error`]: the crate's one error type and its gRPC mapping.
//!
//! # Limitations
//!
//! - Admin calls (`CredentialsAdminService`) are authorised by the token's `admin` subject,
//!   which, like every mesh token, any holder of the mesh key can sign. Neither call reveals or
//!   takes key material, so the worst a rogue mesh service can do with them is extra work.
//! - Master keys given inline (`PLUGBOARD_MASTER_KEY`, not `_FILE`) cannot change on a running
//!   process; with them a rotation is rolling restarts (see [`keys`]).
//! - OAuth2 clients with a user login (Bullhorn's headless authorize) are leased as stored:
//!   the connector runs that login (the manifest's `auth: login` steps, DESIGN.md's "two-step
//!   login") with the leased secret, so each connector replica logs in on its own. No refresh
//!   token is involved, so no rotation can race.
//! - Token endpoint URLs are checked against private targets when each call is made; as with
//!   connectors, the checked addresses are not pinned for the request itself, so a DNS answer
//!   that changes in between (rebinding) is not caught. TODO(#3).
//! - Audit rows written on their own (leases and refusals) reach the table up to
//!   [`audit::SHIP_EVERY`] after the call answered: the call waits only for their write to the
//!   local spool ([`audit`]). A crash of the process loses none (the next process on the spool
//!   ships them); losing the spool itself (a deleted pod's `emptyDir`, the machine's disk or
//!   its unflushed page cache) can lose the rows not yet shipped, at most the last fraction of
//!   a second while the database is up (deploy/README.md). Another replica's `ListAudit` sees
//!   them once shipped. Leases do not wait for the audit table: while it takes no rows, theirs
//!   wait in the spool, up to 200,000, past which leases fail closed. (A lease still needs its
//!   credential row, read from the database at least every two seconds.)
//! - Leases take credential rows from memory ([`row_cache`]). A write on another replica
//!   reaches it through Redis as soon as the message does; without Redis, or when a message is
//!   lost on a connection that has not noticed it is dead, a revoked or replaced secret can
//!   still be leased for up to two seconds ([`row_cache::ROW_MAX_AGE`]).
//! - Decrypted plaintext, data and master key bytes, and decoded secrets (in the lease cache
//!   and in flight) are zeroized when dropped ([`wipe`]), but the copy a lease encodes into its
//!   gRPC response lives in tonic's buffers, and OAuth2 access tokens are plain strings; leases
//!   keep each connection's decoded secret (per version) in memory for speed.
//! - "Only the connection's connector" is proven by the connector's own Ed25519 key only when
//!   `PLUGBOARD_CONNECTOR_PUBLIC_KEYS` is set (dev mode and the generated deployments set it);
//!   without it the service warns at start and believes a mesh token's connector claim.
//!   Rotating a connector's key means restarting credentials with the new public key.

pub mod admin;
pub mod audit;
pub mod audit_log;
pub mod config;
pub mod crypto;
pub mod data_key_rotation;
pub mod data_key_store;
pub mod error;
pub mod grpc;
pub mod health;
pub mod keys;
pub mod master_rotation;
pub mod oauth;
pub mod row_cache;
pub mod row_changes;
pub mod service;
pub mod store;
pub mod validate;
pub mod webhook_secret;
pub mod wipe;

use std::future::Future;

use plugboard_proto::credentials::v1::credentials_admin_service_server::CredentialsAdminServiceServer;
use plugboard_proto::credentials::v1::credentials_service_server::CredentialsServiceServer;
use plugboard_proto::credentials::v1::o_auth_service_server::OAuthServiceServer;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{MeshCredentials, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use crate::config::Config;
pub use crate::error::Error;
pub use crate::grpc::{GrpcAdminAdapter, GrpcCredentialsAdapter, GrpcOAuthAdapter};
pub use crate::service::Credentials;

/// The service's fully-qualified gRPC name.
pub const SERVICE_NAME: &str =
    <CredentialsServiceServer<GrpcCredentialsAdapter> as NamedService>::NAME;
/// The connect flow's fully-qualified gRPC name.
pub const OAUTH_SERVICE_NAME: &str = <OAuthServiceServer<GrpcOAuthAdapter> as NamedService>::NAME;
/// Key management's fully-qualified gRPC name.
pub const ADMIN_SERVICE_NAME: &str =
    <CredentialsAdminServiceServer<GrpcAdminAdapter> as NamedService>::NAME;

/// How long a stopping process may take to ship its spooled audit rows.
const SHUTDOWN_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the store, checks the keys and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let keyring = config.keyring()?;
    let mesh_key = config.mesh_key()?;
    let require = config.require_caller()?;
    if config.connector_keys.is_none() {
        tracing::warn!(
            "PLUGBOARD_CONNECTOR_PUBLIC_KEYS is not set: any holder of the mesh key can claim to be \
             a connector and lease its connections' secrets; set it in production"
        );
    }
    let mut store = open_store(&config).await?;
    if let Some(url) = &config.redis_url {
        store = store.with_row_changes(url, store::SCHEMA).await?;
    }
    let coordinator = match &config.redis_url {
        Some(url) => Coordinator::redis(url)
            .await
            .map_err(|error| Error::Coordination(error.to_string()))?,
        None => Coordinator::local(),
    };
    let reporter = match &config.health_addr {
        Some(addr) => {
            let channel = plugboard_runtime::channel::lazy_channel(addr).map_err(|error| {
                Error::Config(plugboard_runtime::config::ConfigError::Invalid {
                    key: config::HEALTH_ADDR_VAR.to_owned(),
                    value: addr.clone(),
                    reason: error.to_string(),
                })
            })?;
            let identity = MeshCredentials::service(mesh_key.clone(), keys::SYSTEM_SUBJECT);
            Some(health::Reporter::new(
                store.clone(),
                channel,
                identity,
                store.queued().clone(),
            ))
        }
        None => None,
    };
    let credentials = Credentials::new(store, keyring)
        .with_master_key_source(config.master_key_source())
        .with_oauth(
            coordinator,
            oauth::OAuthPolicy {
                allow_private_targets: config.allow_private_targets,
                ..oauth::OAuthPolicy::default()
            },
        )?;
    credentials.prepare().await?;
    let reporting = reporter.map(|reporter| tokio::spawn(reporter.run_forever()));
    let audit_store = credentials.store().clone();
    let served = serve(credentials, require, listener, shutdown).await;
    if let Some(reporting) = reporting {
        reporting.abort();
    }
    // Rows left in the spool would be shipped by the next start on it; shipping them now
    // puts them in the table before this replica goes. Bounded, so a database that is down
    // does not hold the exit until the orchestrator's kill.
    match tokio::time::timeout(SHUTDOWN_FLUSH_LIMIT, audit_store.flush_audit()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "audit rows stay spooled for the next start to ship");
        }
        Err(_) => tracing::warn!("audit rows stay spooled for the next start to ship: timed out"),
    }
    served
}

/// The store on the configured database, spooling audit rows where configured (its directory
/// was checked by [`Config::from_env`]).
async fn open_store(config: &Config) -> Result<store::CredentialStore, Error> {
    match &config.audit_spool_dir {
        Some(dir) => {
            store::CredentialStore::open_with_audit_spool(&config.database_url, store::SCHEMA, dir)
                .await
        }
        None => store::CredentialStore::open(&config.database_url, store::SCHEMA).await,
    }
}

/// Serves an already built [`Credentials`]: for embedding and for tests on other schemas.
/// `require` checks each call's service token (and, when it has them, connector proofs).
pub async fn serve(
    credentials: Credentials,
    require: RequireCaller,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let server = CredentialsServiceServer::with_interceptor(
        GrpcCredentialsAdapter::new(credentials.clone()),
        require.clone(),
    );
    let connect = OAuthServiceServer::with_interceptor(
        GrpcOAuthAdapter::new(credentials.clone()),
        require.clone(),
    );
    let admin = CredentialsAdminServiceServer::with_interceptor(
        GrpcAdminAdapter::new(credentials),
        require,
    );
    let routes = Routes::new(server).add_service(connect).add_service(admin);
    plugboard_runtime::server::serve(
        listener,
        routes,
        &[SERVICE_NAME, OAUTH_SERVICE_NAME, ADMIN_SERVICE_NAME],
        shutdown,
    )
    .await?;
    Ok(())
}
