//! Plugboard's generic connector runtime: a partner described by a manifest, served as a
//! connector.
//!
//! A connector folder holds `manifest.yaml` (auth, base URL, streams with paging and
//! incremental cursors, writes, webhooks, document parsing, rate limits, JSON, XML or CSV; the
//! format is in [`manifest`] and its
//! JSON Schema in `manifest.schema.json`) and `mappings/*.yaml` (mapping specs). This crate
//! loads and checks such a folder offline, serves it as `plugboard.connector.v1.ConnectorService`
//! (leasing access from credentials, paging, waiting out rate limits, retrying with backoff),
//! registers it with the registry and heartbeats. The [`conformance`] kit runs one suite
//! against any connector and its sandbox.
//!
//! Modules:
//! - [`manifest`]: the format, loading, and every offline check with file and line;
//! - [`template`]: the `{{ a.b }}` templates manifests are written with;
//! - [`guard`]: the target guard that keeps requests off internal networks;
//! - [`access`], [`session`], [`login`]: leased secrets, connection settings, auth schemes
//!   and multi-step logins;
//! - [`http`], [`formats`]: requests under rate budgets, 429 waits and retries (a wait longer
//!   than the manifest allows is a used-up quota, returned with its reset time for sync to
//!   pause on); XML and CSV answers read as JSON, XML bodies written from it;
//! - [`budget`]: each partner account's request window shared by every replica through Redis;
//! - [`partner_calls`]: each read's partner requests by answer class and latency, sent with
//!   its pages;
//! - [`checkpoint`], [`keyset`]: incremental cursors, resumable page positions, and keyset
//!   paging that survives records changing mid-run;
//! - [`connector`]: check, discover, read, write (a body template, or the outbound mapping
//!   spec) and parse documents for any manifest;
//! - [`webhook`]: signature and timestamp checks of partner webhooks;
//! - [`webhook_events`]: `HandleWebhook`: the leased webhook secret, verification, events;
//! - [`grpc`], [`registration`], [`config`]: the service around it;
//! - [`hooks`]: Rust hooks a manifest names for one step it cannot say (`sign_request` on
//!   every partner request, `map_record` and `next_page` per stream), registered by name in
//!   [`Hooks`]; the built-in ones have their source in their connector's folder
//!   ([`hmacboard_hooks`]);
//! - [`conformance`]: the conformance kit (reads, writes, webhooks, documents);
//! - [`tooling`]: what `plugboard connector check | new | stats` do;
//! - [`error`]: the one error type.
//!
//! # Limitations
//!
//! - OAuth2 authorization code needs credentials: with a fixed secret (conformance kit,
//!   tooling) there is nobody to hold the refresh token, so such a read fails as
//!   rejected credentials.
//! - A document parse waits in the `ParseDocument` call (polling, at most `timeout_seconds`);
//!   webhook-driven parse results (Affinda's `resume.parse.succeeded`) are not used yet.
//! - Keyset paging can miss a record only if more than half a page of the records sharing the
//!   boundary cursor value change between two page requests.
//! - XML is read element by element into JSON (values as strings) and written from JSON; a
//!   SOAP envelope is written from the manifest's template and its faults become typed errors,
//!   but WS-Security headers and schema-typed values are not supported. TODO(#8).
//! - A parser's upload is never sent again once it may have reached the partner (a 5xx or a
//!   lost answer fails the parse), so it is not charged twice; the caller retries.
//! - Writes remember nothing: sync's outbox is what makes a retried write happen once, and the
//!   runtime's part is never to repeat a create the partner may already have made
//!   ([`connector::Connector::write`]). Webhook deliveries are not remembered here either: sync
//!   drops repeated event ids durably.
//! - One session (one token) per connection: a partner whose API products each need their own
//!   token (Beeline's client, bulk worker and bulk reporting audiences) is one connection per
//!   product. TODO(#8): per-stream auth.
//! - A write with `mapping: true` takes the body sync sends with it (`WriteRequest.mapped`,
//!   made by the mapping service with the tenant's overrides); a caller that sends none gets
//!   the connector's own copy of the outbound spec, compiled at start, without overrides.
//! - A batched delivery (`webhooks.event_array`) has its events in one array with the same
//!   pointers for every element: a partner mixing event shapes in one array, or nesting arrays,
//!   needs a hook. Each element's pointers are read in the element only, not in the envelope
//!   around the array. An element is refused on its own (reported back to the gateway, which
//!   answers the partner with it and logs it); nothing keeps refused elements for a later
//!   replay. Without an `event_id` pointer an element's id is a digest of its text, so a
//!   partner re-sending the same change with another field order is a new event (sync then
//!   ignores it when it is no newer than what it holds).
//! - A shared request budget counts each account's fixed window in Redis; while Redis is
//!   unreachable each replica falls back to its own window (the partner's 429s are then the
//!   backstop; Redis is asked again 2 seconds after a failure and the change is logged once),
//!   and a fixed window lets a burst of up to twice the budget straddle a window boundary.
//! - A read that fails sends its error, not the partner requests made since its last page:
//!   sync learns only the requests of the pages that arrived. TODO(#7).
//! - Three hook points only: nothing can rewrite a request body (WS-Security), and the login
//!   and token requests that open a session are not passed to `sign_request`. TODO(#3).
//! - A hook is compiled into the runtime (or into a connector's own binary through
//!   [`serve_loaded_with_hooks`]); there is no loading of hooks at run time.
//! - The target guard resolves names once before calling; DNS rebinding between the check and
//!   the request is not prevented (TODO(#3)).

pub mod access;
pub mod budget;
pub mod checkpoint;
pub mod config;
pub mod conformance;
pub mod connector;
pub mod error;
pub mod formats;
pub mod grpc;
pub mod guard;
pub mod hooks;
pub mod http;
pub mod keyset;
pub mod login;
pub mod manifest;
pub mod partner_calls;
pub mod registration;
pub mod session;
pub mod template;
pub mod tooling;
pub mod webhook;
pub mod webhook_events;

/// HMACBoard's `sign_request` hook. The hooks of connectors kept in this repository have their
/// source in their connector's folder (`services/connector-<name>/src/`), where `plugboard
/// connector stats` counts it, and are compiled here rather than as crates of their own: one
/// more binary linking tonic and reqwest would cost CI far more than the few dozen lines each
/// holds. [`Hooks::builtin`] registers them.
#[path = "../../connector-hmacboard/src/sign.rs"]
pub mod hmacboard_hooks;

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
pub use hooks::Hooks;

use crate::access::Access;
use crate::connector::{Connector, SecretSource};
use crate::grpc::GrpcConnectorAdapter;
use crate::webhook_events::{WebhookHandler, WebhookSecretSource};

/// Loads the connector folder, then serves it on `listener` until `shutdown` completes,
/// registering with the registry in the background meanwhile.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let loaded = manifest::load_for_serving(&config.connector_dir).map_err(startup_problems)?;
    serve_loaded(config, loaded, listener, shutdown).await
}

/// The problems of a connector folder, as the error that stops the process at start.
pub fn startup_problems(problems: Vec<manifest::Problem>) -> Error {
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Error::Startup(format!(
        "the connector folder has problems:\n{}",
        text.join("\n")
    ))
}

/// As [`run`], for a folder already loaded (one compiled into the binary, say).
pub async fn serve_loaded(
    config: Config,
    loaded: manifest::Loaded,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_loaded_with_hooks(config, loaded, Hooks::default(), listener, shutdown).await
}

/// As [`serve_loaded`], with a connector binary's own `hooks` besides the built-in ones.
pub async fn serve_loaded_with_hooks(
    config: Config,
    loaded: manifest::Loaded,
    hooks: Hooks,
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
    if config.allow_private_targets {
        tracing::warn!("private and loopback partner targets are allowed (dev/test setting)");
    }
    if config.signing_key.is_none() {
        // Credentials set up with connector keys (every generated deployment is) leases an
        // unproven connector nothing; say why here rather than only in credentials' log.
        tracing::warn!(
            "PLUGBOARD_CONNECTOR_SIGNING_KEY is not set: this connector cannot prove who it is, \
             so a credentials service given connector public keys will lease it no secret \
             (make a key pair with `plugboard keys connector <name>`)"
        );
    }
    tracing::info!(registry = %config.registry_addr, credentials = %config.credentials_addr, "mesh addresses");
    let name = loaded.manifest.name.clone();
    let registration = tokio::spawn(registration::maintain(
        registry,
        key.clone(),
        registration::registry_manifest(&loaded),
        config
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("{name}-{}", uuid::Uuid::new_v4())),
        advertise,
    ));
    let access =
        Access::new(credentials, key.clone(), &name).with_signing_key(config.signing_key.clone());
    let webhooks = WebhookHandler::new(
        Arc::new(loaded.manifest.clone()),
        WebhookSecretSource::Credentials(access.clone()),
    );
    let mut connector = Connector::with_hooks(
        loaded.manifest,
        SecretSource::Credentials(access),
        config.allow_private_targets,
        hooks,
    )?
    .with_max_wait_cap(config.max_rate_limit_wait)
    .with_outbound_mappings(&loaded.mappings)?;
    if let Some(url) = &config.redis_url {
        let budgets = budget::connect(url, &name)
            .await
            .map_err(|e| Error::Startup(format!("PLUGBOARD_REDIS_URL: cannot reach redis: {e}")))?;
        connector = connector.with_shared_budgets(budgets);
        tracing::info!("partner request budgets shared with the other replicas through redis");
    }
    // ParseDocument carries documents of up to 10 MiB, over tonic's 4 MiB default.
    let service = tonic::service::interceptor::InterceptedService::new(
        ConnectorServiceServer::new(
            GrpcConnectorAdapter::new(Arc::new(connector)).with_webhooks(Arc::new(webhooks)),
        )
        .max_decoding_message_size(11 * 1024 * 1024),
        RequireCaller::new(key),
    );
    let service_name = <ConnectorServiceServer<GrpcConnectorAdapter> as NamedService>::NAME;
    let result =
        plugboard_runtime::server::serve(listener, Routes::new(service), &[service_name], shutdown)
            .await;
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
