//! A simulated Greenhouse Harvest API (v1), seeded from Greenhouse's published samples.
//!
//! What it speaks, as Harvest does: HTTP Basic with the API token as the user name and a blank
//! password; `GET /v1/{candidates,jobs,applications}` with `per_page` (at most 500) and `page`,
//! an RFC 8288 `Link` header (`next`, `last`), `updated_after` (candidates, jobs) and
//! `last_activity_after` (applications) filters that include their bound; `POST` and `PATCH
//! /v1/candidates` with the `On-Behalf-Of` header writes require; 429 with `Retry-After` past
//! the request budget; webhooks signed `Signature: sha256 <hex HMAC-SHA256(secret, body)>`.
//!
//! Submodules: [`seed`] turns the sample payloads into records, [`state`] holds the world,
//! [`api`] the Harvest endpoints, [`admin`] the `/_sandbox/` endpoints the conformance kit uses
//! (records, touch, faults, stats), [`webhooks`] signed deliveries (returned, or sent to a URL,
//! with duplicate, late, forged variants), and [`fixture`] a deleted-records endpoint that is a
//! test fixture, not Greenhouse's API.

pub mod admin;
pub mod api;
pub mod fixture;
pub mod seed;
pub mod state;
pub mod webhooks;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use state::Shared;

/// The Harvest API token the sandbox accepts.
pub const DEMO_API_KEY: &str = "gh-demo-harvest-token";
/// The secret webhooks are signed with.
pub const DEMO_WEBHOOK_SECRET: &str = "gh-demo-webhook-secret";
/// The streams the sandbox serves.
pub const STREAMS: [&str; 3] = ["candidates", "jobs", "applications"];

/// Records per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub candidates: usize,
    pub jobs: usize,
    pub applications: usize,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            candidates: 120,
            jobs: 30,
            applications: 150,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GreenhouseOptions {
    /// The folder holding Greenhouse's Harvest samples (`shared/partners/greenhouse/harvest`).
    pub samples_dir: PathBuf,
    pub api_key: String,
    pub webhook_secret: String,
    pub seed: u64,
    pub counts: Counts,
    /// Requests allowed per window before 429 (Harvest: 50 per 10 seconds); `None` disables it.
    pub rate_limit: Option<(u32, Duration)>,
}

impl GreenhouseOptions {
    pub fn new(samples_dir: &Path) -> GreenhouseOptions {
        GreenhouseOptions {
            samples_dir: samples_dir.to_owned(),
            api_key: DEMO_API_KEY.to_owned(),
            webhook_secret: DEMO_WEBHOOK_SECRET.to_owned(),
            seed: 20_260_301,
            counts: Counts::default(),
            rate_limit: Some((50, Duration::from_secs(10))),
        }
    }
}

/// Why the Greenhouse sandbox could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read partner sample {path}: {reason}")]
    Samples { path: String, reason: String },
    #[error("sandbox http server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The sandbox's routes; fails when the samples cannot be read.
pub fn router(options: GreenhouseOptions) -> Result<Router, Error> {
    let samples = seed::Samples::load(&options.samples_dir)?;
    let shared: Shared = Arc::new(state::Sandbox::new(options, &samples));
    let routes = Router::new()
        .route(
            "/v1/candidates",
            get(api::list_candidates).post(api::create_candidate),
        )
        .route(
            "/v1/candidates/{id}",
            get(api::get_candidate).patch(api::update_candidate),
        )
        .route("/v1/jobs", get(api::list_jobs))
        .route("/v1/applications", get(api::list_applications))
        .route("/_sandbox/records/{stream}", get(admin::records))
        .route("/_sandbox/touch", post(admin::touch))
        .route("/_sandbox/faults", post(admin::faults))
        .route("/_sandbox/webhook", post(webhooks::webhook))
        .route("/_sandbox/webhook/send", post(webhooks::send))
        .route("/_sandbox/delete", post(fixture::delete))
        .route(
            "/_fixture/v1/candidates/deleted",
            get(fixture::deleted_candidates),
        )
        .route("/_sandbox/stats", get(admin::stats))
        .with_state(shared);
    Ok(crate::traces::recorded(routes))
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: GreenhouseOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, router(options)?)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}
