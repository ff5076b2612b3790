//! What the three VMS sandboxes (SAP Fieldglass, Beeline, Coupa/Magnit) share: a world of
//! records per stream, an OAuth2 client-credentials token endpoint with the partner's own
//! rules, listings paged by offset with an inclusive modified-since filter in JSON, CSV or XML,
//! and the `/_sandbox/` admin contract the conformance kit drives.
//!
//! A partner module describes itself with a [`Partner`] (token rules, headers every call needs,
//! paging parameter names, streams and their wire formats), seeds the records, and adds its own
//! routes for writes (candidate submissions); everything else is here.
//!
//! Submodules: [`state`] holds the world, [`token`] the token endpoint, [`listing`] the
//! downloads, [`admin`] the `/_sandbox/` endpoints.

pub mod admin;
pub mod listing;
pub mod state;
pub mod submissions;
pub mod token;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use state::{Shared, Vms, now_rfc3339};

/// How a partner authenticates and pages; fixed per sandbox.
#[derive(Debug, Clone)]
pub struct Partner {
    pub name: &'static str,
    pub token: TokenPolicy,
    /// Headers every API call (not the token call) must carry, with their exact values.
    pub api_headers: Vec<(String, String)>,
    pub paging: Paging,
    pub streams: Vec<StreamSpec>,
}

/// The partner's OAuth2 client-credentials rules.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub client_id: String,
    pub client_secret: String,
    /// Whether the client may also authenticate with `client_id`/`client_secret` form fields;
    /// HTTP Basic always works, as RFC 6749 (section 2.3.1) requires of every server.
    pub form_client_auth: bool,
    /// Query parameters the token URL must carry (Fieldglass's `grant_type`, `response_type`).
    pub query: Vec<(String, String)>,
    /// A form field that must hold one of the values (Beeline's `audience`).
    pub form_choice: Option<(String, Vec<String>)>,
    pub ttl_seconds: u64,
}

/// Query parameter names of a listing.
#[derive(Debug, Clone)]
pub struct Paging {
    /// Records skipped, or with `first_page` the page number.
    pub offset: &'static str,
    /// The number of the first page, for partners that page by number.
    pub first_page: Option<usize>,
    pub limit: &'static str,
    pub since: &'static str,
    pub default_limit: usize,
    pub max_limit: usize,
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The admin contract's name for it, as the manifest's stream is named.
    pub name: &'static str,
    pub id_field: &'static str,
    /// RFC 3339 UTC text, moved to now by a change.
    pub cursor_field: &'static str,
    pub wire: Wire,
}

#[derive(Debug, Clone)]
pub enum Wire {
    /// `{"<records>": [...], "totalCount": n}`, or the bare array when `records` is empty.
    Json { records: &'static str },
    /// A header row of `columns`, one record per row; every value is text.
    Csv { columns: &'static [&'static str] },
    /// `<root><item>…</item>…</root>`, child elements per field, values as text.
    Xml {
        root: &'static str,
        item: &'static str,
    },
}

impl Partner {
    pub fn stream(&self, name: &str) -> Option<&StreamSpec> {
        self.streams.iter().find(|stream| stream.name == name)
    }
}

/// A JSON error body the way OAuth2 and most REST APIs shape one.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": message})),
    )
        .into_response()
}
