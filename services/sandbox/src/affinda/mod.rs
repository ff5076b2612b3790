//! A simulated Affinda document API (v3), for CV parsing, seeded from Affinda's published
//! OpenAPI spec (`shared/partners/affinda/openapi_v3_official.yml`).
//!
//! What it speaks, as Affinda does: `Authorization: Bearer <api key>`; `POST /v3/documents`
//! with a multipart form (`file`, `collection`, `wait`) answering 201 with the document's
//! `meta.identifier` and `meta.ready: false`; `GET /v3/documents/{identifier}` answering the
//! document, whose `data` (a `ResumeData`) appears once it has been asked for a few times;
//! `GET /v3/documents` with `offset`/`limit` answering `{count, next, previous, results}`;
//! errors as `{type, errors: [{attr, code, detail}]}`; 429 with `Retry-After`.
//!
//! Submodules: [`seed`] builds documents from the spec's examples, [`state`] holds the world,
//! [`api`] the endpoints, [`admin`] the `/_sandbox/` conformance contract.

pub mod admin;
pub mod api;
pub mod seed;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

/// The API key the sandbox accepts.
pub const DEMO_API_KEY: &str = "affinda-demo-api-key";
/// The collection uploads go to.
pub const DEMO_COLLECTION: &str = "resumes-demo";

#[derive(Debug, Clone)]
pub struct AffindaOptions {
    /// Affinda's v3 OpenAPI spec.
    pub spec: PathBuf,
    pub api_key: String,
    pub seed: u64,
    /// Documents already parsed at start.
    pub documents: usize,
    /// `GET`s of a new document before its parse is ready.
    pub polls_until_ready: u32,
}

impl AffindaOptions {
    pub fn new(spec: &Path) -> AffindaOptions {
        AffindaOptions {
            spec: spec.to_owned(),
            api_key: DEMO_API_KEY.to_owned(),
            seed: 20_260_401,
            documents: 24,
            polls_until_ready: 2,
        }
    }
}

/// Why the Affinda sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read Affinda's spec {path}: {reason}")]
    Spec { path: String, reason: String },
}

/// The sandbox's routes; fails when the spec cannot be read.
pub fn router(options: AffindaOptions) -> Result<Router, Error> {
    let examples = seed::Examples::load(&options.spec)?;
    let shared: state::Shared = Arc::new(state::Sandbox::new(options, &examples));
    Ok(Router::new()
        .route("/v3/documents", get(api::list).post(api::upload))
        .route("/v3/documents/{identifier}", get(api::document))
        .route("/_sandbox/records/{stream}", get(admin::records))
        .route("/_sandbox/faults", post(admin::faults))
        .route("/_sandbox/stats", get(admin::stats))
        .with_state(shared))
}
