//! Plugboard's gateway: the customer-facing edge of the mesh.
//!
//! The gateway authenticates tenants by API key and serves, over HTTP:
//!
//! - `GET /livez` and `GET /readyz`: the gateway's own liveness and readiness (its database),
//!   what Kubernetes probes; no auth;
//! - `GET /healthz`: every service's gRPC address and `grpc.health.v1` status (no auth);
//! - `GET /api/v1/integrations` and `GET /api/v1/integrations/{id}`: the caller's integrations,
//!   with `Authorization: Bearer <api key>`;
//! - `GET /`, `GET|POST /login`, `POST /logout`: the dashboard, behind a session cookie;
//! - connecting from the catalogue (`/connect/{connector}`), with a "Connect with <partner>"
//!   button and `GET /oauth/callback` for partners using OAuth2's authorization code flow, and
//!   `POST /integrations/{id}/reconnect` for an integration that needs a reconnect;
//! - `POST /webhooks/{connector}/{connection_id}`: partner webhooks, verified by the connector
//!   with the connection's webhook secret, then handed to sync; `PUT
//!   /api/v1/integrations/{id}/webhook` (or the integration page's form) enables them for a
//!   connection;
//! - `GET /settings`, `POST /settings/webhook`: the tenant's status-change webhook, registered
//!   through health (SSRF-guarded there), its signing secret shown once.
//! - `POST /api/v1/integrations/{id}/documents`: a document (base64 JSON) parsed by the
//!   integration's CV parser through sync, answered once per content.
//!
//! It owns only tenants, API keys and sessions. Everything else it asks the services for, signing
//! each call with the mesh key as `gateway` acting for the tenant of the key, so a tenant can
//! only ever see its own data.
//!
//! Modules: [`config`] (environment), [`tenants`] (tenants, hashed keys, sessions), [`mesh`]
//! (channels, signed clients, health probes), [`oauth`] and [`oauth_store`] (the OAuth
//! connect flow and its tables), [`integrations`] (merging sync, health and registry into one
//! view), [`api`] (JSON routes), [`dashboard`] (HTML routes), [`webhooks`] (partner webhook
//! route and its enabling API and form), [`webhook_budget`] (deliveries per connection, shared
//! by the replicas through Redis), [`settings`] (the notification webhook page),
//! [`manifests`] (the cached connector manifests), [`documents`] (documents to parse),
//! [`json_body`] (REST request bodies refused in the error envelope), [`routes`] (router and
//! request spans), [`error`].
//!
//! # Limitations
//!
//! - Connector manifests are cached for [`manifests::FRESH_FOR`]; a connector registered
//!   since shows in the catalogue that much later. Sync and health are asked afresh on every
//!   request (one connection's page asks for that connection only).
//! - There is no TLS here: it ends at the proxy or Ingress in front. With
//!   `PLUGBOARD_PUBLIC_URL=https://…` cookies are `Secure` and OAuth callbacks use that origin.
//! - No rate limit on failed logins; keys have 256 bits of entropy, but logs could flood.
//! - A connection's webhook budget is a fixed window in Redis, so up to twice the budget can
//!   pass around a window's edge; each replica's own count (always kept, and alone while Redis
//!   is away) refills evenly. The budget is the same for every connection and set in code
//!   ([`webhook_budget::DeliveryBudget`]), not per partner or by the environment.
//! - Keys are revoked by the operator (`plugboard tenant revoke-key`, which ends the key's
//!   sessions); the dashboard has no page to list or revoke a tenant's keys. TODO(#7).

pub mod api;
pub mod config;
pub mod connect;
pub mod dashboard;
pub mod detail;
pub mod documents;
pub mod error;
pub mod events;
pub mod forms;
pub mod integrations;
pub mod json_body;
pub mod manifests;
pub mod mesh;
pub mod oauth;
pub mod oauth_store;
pub mod routes;
pub mod settings;
pub mod tenants;
pub mod webhook_budget;
pub mod webhooks;

use std::future::Future;

use plugboard_runtime::budget::SharedBudgets;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;
pub use tenants::{TenantStore, generate_api_key};

/// Serves the gateway on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = TenantStore::open(&config.database_url).await?;
    run_with_store(config, store, listener, shutdown).await
}

/// As [`run`], with a store the caller already opened (the dev binary seeds its demo tenant
/// through it, so the database is not migrated twice at once).
pub async fn run_with_store(
    config: Config,
    store: TenantStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mesh = mesh::Mesh::new(&config)?;
    let shared = match &config.redis_url {
        Some(url) => {
            // Connected on first use: a Redis that is away now must not keep webhooks out.
            let budgets = SharedBudgets::lazy(url, webhook_budget::KEY_PREFIX)
                .map_err(|error| Error::Redis(error.to_string()))?;
            tracing::info!("webhook delivery budgets shared with the other replicas through redis");
            Some(budgets)
        }
        None => {
            tracing::info!(
                "no PLUGBOARD_REDIS_URL: webhook delivery budgets are counted in this replica only"
            );
            None
        }
    };
    let limiter = webhook_budget::DeliveryLimiter::new(config.webhook_budget, shared);
    let state = routes::AppState::new(store, mesh)?
        .with_webhooks(webhooks::Relay::new(limiter))
        .with_public_url(config.public_url.as_deref());
    if state.public_url.is_none() {
        tracing::warn!(
            "PLUGBOARD_PUBLIC_URL is not set: OAuth callbacks use http:// and the Host header, \
             and session cookies are not Secure; set it to the https origin in production"
        );
    }
    let app = routes::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("gateway stopped");
    Ok(())
}
