//! A simulated Coupa Contingent Workforce (Magnit), from the facts Coupa documents publicly:
//! OAuth2 client credentials at `/oauth2/token` (the client and its scopes in the form), a REST
//! API in XML and JSON, and CSV flat-file exports of work confirmations and timesheets.
//!
//! Job requests are XML (`<job-requests><job-request>…`); candidates (suppliers'
//! submissions: `POST job_requests/{id}/candidates` creates one, `PUT candidates/{id}` changes
//! it) and workers are JSON arrays with Coupa's hyphenated keys; the exports are CSV. Every
//! list pages by `offset` and `limit` (at most 50) and filters with `updated_at[gt_or_eq]`.
//! The faults are the [`crate::vms`] ones.
//!
//! Submodules: [`seed`] makes the records, [`candidates`] the submission writes.

pub mod candidates;
pub mod seed;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;

use crate::vms::{self, Paging, Partner, Shared, StreamSpec, TokenPolicy, Wire};

pub const CLIENT_ID: &str = "magnit-demo-client";
pub const CLIENT_SECRET: &str = "magnit-demo-secret";
/// The scopes the sandbox's client was granted, as the token request must name them.
pub const SCOPES: &str = "ccw.read ccw.write";

pub const WORK_CONFIRMATION_COLUMNS: &[&str] = &[
    "Work Confirmation ID",
    "Job Request ID",
    "Worker ID",
    "Status",
    "Start Date",
    "End Date",
    "Currency",
    "Pay Rate",
    "Bill Rate",
    "Rate Unit",
    "Time Zone",
    "Updated At",
];

pub const TIMESHEET_COLUMNS: &[&str] = &[
    "Timesheet ID",
    "Worker ID",
    "Work Confirmation ID",
    "Status",
    "Week Start",
    "Week End",
    "Time Zone",
    "Regular Hours",
    "Overtime Hours",
    "Currency",
    "Regular Pay Rate",
    "Overtime Pay Rate",
    "Regular Bill Rate",
    "Overtime Bill Rate",
    "Approved At",
    "Approver",
    "Updated At",
];

/// Each stream and its path under `/api`.
const LISTS: [(&str, &str); 5] = [
    ("job_requests", "/api/job_requests"),
    ("candidates", "/api/candidates"),
    ("workers", "/api/workers"),
    ("work_confirmations", "/api/exports/work_confirmations.csv"),
    ("timesheets", "/api/exports/timesheets.csv"),
];

pub fn partner() -> Partner {
    let json = |name| StreamSpec {
        name,
        id_field: "id",
        cursor_field: "updated-at",
        wire: Wire::Json { records: "" },
    };
    Partner {
        name: "magnit",
        token: TokenPolicy {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            form_client_auth: true,
            query: Vec::new(),
            form_choice: Some(("scope".to_owned(), vec![SCOPES.to_owned()])),
            ttl_seconds: 7200,
        },
        api_headers: Vec::new(),
        paging: Paging {
            offset: "offset",
            first_page: None,
            limit: "limit",
            since: "updated_at[gt_or_eq]",
            default_limit: 50,
            max_limit: 50,
        },
        streams: vec![
            StreamSpec {
                name: "job_requests",
                id_field: "id",
                cursor_field: "updated-at",
                wire: Wire::Xml {
                    root: "job-requests",
                    item: "job-request",
                },
            },
            json("candidates"),
            json("workers"),
            StreamSpec {
                name: "work_confirmations",
                id_field: "Work Confirmation ID",
                cursor_field: "Updated At",
                wire: Wire::Csv {
                    columns: WORK_CONFIRMATION_COLUMNS,
                },
            },
            StreamSpec {
                name: "timesheets",
                id_field: "Timesheet ID",
                cursor_field: "Updated At",
                wire: Wire::Csv {
                    columns: TIMESHEET_COLUMNS,
                },
            },
        ],
    }
}

/// The sandbox's routes, seeded.
pub fn router() -> Router {
    let shared: Shared = Arc::new(vms::Vms::new(partner(), seed::records()));
    let mut routes = Router::new()
        .route("/oauth2/token", post(vms::token::token))
        .route(
            "/api/job_requests/{job_request}/candidates",
            post(candidates::create),
        )
        .route("/api/candidates/{id}", put(candidates::update));
    for (stream, path) in LISTS {
        routes = routes.route(
            path,
            get(
                move |State(vms): State<Shared>,
                      Query(params): Query<HashMap<String, String>>,
                      headers: HeaderMap| async move {
                    let response: Response = vms::listing::list(&vms, stream, &params, &headers);
                    response
                },
            ),
        );
    }
    let routes = routes
        .merge(vms::admin::routes(seed::malformed))
        .with_state(shared);
    crate::traces::recorded(routes)
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(crate::Error::Serve)
}
