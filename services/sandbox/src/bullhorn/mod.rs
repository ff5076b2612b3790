//! A simulated Bullhorn REST API.
//!
//! Bullhorn's real flow: `GET /oauth/authorize` (headless with `action=Login`, username and
//! password) redirects with a `code`; `POST /oauth/token` exchanges it for an access token;
//! `GET /rest-services/login` turns that into a `BhRestToken` session and the `restUrl` of the
//! customer's data centre; entity calls under `restUrl` carry the `BhRestToken`.
//!
//! Submodules: [`seed`] generates the records, [`schema`] holds Bullhorn's field tables,
//! [`state`] the mutable world, [`auth`] the OAuth and login endpoints, [`entities`] `query` and
//! `search`, [`filter`] their filter, sort and projection languages, [`index`] the records kept
//! sorted between pages, [`admin`] the
//! `/_sandbox/` endpoints tests use to change records and inject faults.

pub mod admin;
pub mod auth;
pub mod entities;
pub mod filter;
pub mod index;
pub mod schema;
pub mod seed;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::error::Error;
pub use seed::SeedCounts;
use state::Shared;

/// Client id of the demo OAuth client the sandbox knows.
pub const DEMO_CLIENT_ID: &str = "plugboard-demo";
/// Client secret of the demo OAuth client.
pub const DEMO_CLIENT_SECRET: &str = "plugboard-demo-secret";
/// API user name accepted by the headless authorize step.
pub const DEMO_USERNAME: &str = "plugboard.api";
/// Password of the demo API user.
pub const DEMO_PASSWORD: &str = "plugboard-demo-password";
/// The corporation token in `restUrl` (Bullhorn's per-customer path segment).
pub const DEMO_CORP_TOKEN: &str = "pb1demo";

/// The entities the sandbox serves, by Bullhorn name.
pub const ENTITIES: [&str; 4] = ["JobOrder", "Candidate", "JobSubmission", "Placement"];

/// How a sandbox instance behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub corp_token: String,
    /// Seed of the record generator: equal seeds give equal records.
    pub seed: u64,
    pub counts: SeedCounts,
    /// Entity requests allowed per second (per sandbox) before 429; `None` disables the limit.
    pub requests_per_second: Option<u32>,
    /// Lifetime of an OAuth access token (Bullhorn: 10 minutes).
    pub access_token_ttl: Duration,
    /// Idle lifetime of a `BhRestToken` session.
    pub session_ttl: Duration,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: DEMO_CLIENT_SECRET.to_owned(),
            username: DEMO_USERNAME.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            corp_token: DEMO_CORP_TOKEN.to_owned(),
            seed: 20_260_101,
            counts: SeedCounts::default(),
            requests_per_second: Some(25),
            access_token_ttl: Duration::from_secs(600),
            session_ttl: Duration::from_secs(600),
        }
    }
}

/// The sandbox's HTTP routes, for embedding in another server.
pub fn router(options: SandboxOptions) -> Router {
    let shared: Shared = Arc::new(state::Sandbox::new(options));
    let routes = Router::new()
        .route("/oauth/authorize", get(auth::authorize))
        .route("/oauth/token", post(auth::token))
        .route("/oauth/landing", get(auth::landing))
        .route("/rest-services/login", get(auth::login).post(auth::login))
        .route("/rest-services/{corp}/ping", get(entities::ping))
        .route("/rest-services/{corp}/query/{entity}", get(entities::query))
        .route(
            "/rest-services/{corp}/search/{entity}",
            get(entities::search),
        )
        .route("/_sandbox/records/{entity}", get(admin::records))
        .route("/_sandbox/touch", post(admin::touch))
        .route("/_sandbox/delete", post(admin::delete))
        .route("/_sandbox/faults", post(admin::faults))
        .route("/_sandbox/stats", get(admin::stats))
        .with_state(shared);
    crate::traces::recorded(routes)
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: SandboxOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, router(options))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}
