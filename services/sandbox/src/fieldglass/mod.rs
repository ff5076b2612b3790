//! A simulated SAP Fieldglass, from the facts SAP documents publicly (there is no public spec):
//! OAuth2 client credentials with the client as HTTP Basic at
//! `/api/oauth2/v2.0/token?grant_type=client_credentials&response_type=token`, an
//! `X-ApplicationKey` header on every API call, and REST "connectors" at
//! `/api/vc/connector/{name}` that download JSON (job postings, work orders, workers, job
//! seekers) or CSV (time sheets) and upload JSON (job seekers: a supplier's candidate
//! submissions, created or, with their `jobSeekerId`, updated).
//!
//! Downloads page with `startIndex` and `pageSize` (at most 500) and filter with
//! `modifiedSince` (inclusive). A job seeker a supplier uploads starts `Submitted`; the buyer
//! then moves it on (`Interview Requested`, `Selected`, `Rejected`), which tests do through
//! `/_sandbox/touch`. The faults are the [`crate::vms`] ones.
//!
//! Submodules: [`seed`] makes the records, [`upload`] the job seeker upload.

pub mod seed;
pub mod upload;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::vms::{self, Paging, Partner, Shared, StreamSpec, TokenPolicy, Wire};

pub const CLIENT_ID: &str = "fieldglass-demo-client";
pub const CLIENT_SECRET: &str = "fieldglass-demo-secret";
pub const APPLICATION_KEY: &str = "fieldglass-demo-application-key";

/// The time sheet flat file's columns, in order.
pub const TIME_SHEET_COLUMNS: &[&str] = &[
    "Time Sheet ID",
    "Worker ID",
    "Work Order ID",
    "Status",
    "Period Start",
    "Period End",
    "Time Zone",
    "ST Hours",
    "OT Hours",
    "Currency",
    "ST Pay Rate",
    "OT Pay Rate",
    "ST Bill Rate",
    "OT Bill Rate",
    "Rate Unit",
    "Submitted Date",
    "Approved Date",
    "Approver",
    "Last Modified",
];

/// Each stream and the Fieldglass connector that downloads it.
const DOWNLOADS: [(&str, &str); 5] = [
    ("job_postings", "Job_Posting_Download"),
    ("work_orders", "Work_Order_Download"),
    ("workers", "Worker_Download"),
    ("time_sheets", "Time_Sheet_Download"),
    ("job_seekers", "Job_Seeker_Download"),
];

pub fn partner() -> Partner {
    let json = |name, id_field| StreamSpec {
        name,
        id_field,
        cursor_field: "modifiedDate",
        wire: Wire::Json { records: "data" },
    };
    Partner {
        name: "fieldglass",
        token: TokenPolicy {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            form_client_auth: false,
            query: vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("response_type".to_owned(), "token".to_owned()),
            ],
            form_choice: None,
            ttl_seconds: 1800,
        },
        api_headers: vec![("X-ApplicationKey".to_owned(), APPLICATION_KEY.to_owned())],
        paging: Paging {
            offset: "startIndex",
            first_page: None,
            limit: "pageSize",
            since: "modifiedSince",
            default_limit: 100,
            max_limit: 500,
        },
        streams: vec![
            json("job_postings", "jobPostingId"),
            json("work_orders", "workOrderId"),
            json("workers", "workerId"),
            StreamSpec {
                name: "time_sheets",
                id_field: "Time Sheet ID",
                cursor_field: "Last Modified",
                wire: Wire::Csv {
                    columns: TIME_SHEET_COLUMNS,
                },
            },
            json("job_seekers", "jobSeekerId"),
        ],
    }
}

/// The sandbox's routes, seeded.
pub fn router() -> Router {
    let shared: Shared = Arc::new(vms::Vms::new(partner(), seed::records()));
    let mut routes = Router::new()
        .route("/api/oauth2/v2.0/token", post(vms::token::token))
        .route(
            "/api/vc/connector/Job_Seeker_Upload",
            post(upload::job_seeker),
        );
    for (stream, connector) in DOWNLOADS {
        routes = routes.route(
            &format!("/api/vc/connector/{connector}"),
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
