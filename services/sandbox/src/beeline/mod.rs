//! A simulated Beeline VMS, from the facts Beeline documents publicly (its API documentation is
//! issued to customers): OAuth2 client credentials at `/oauth/token` with the client in the
//! form and an `audience` naming the API product and region (this sandbox is the US client
//! API, `client-api.us.beeline.com`; a token for another product or region is refused), and
//! every resource under the customer's client site, `/api/v2/sites/{site id}/`.
//!
//! JSON resources: requisitions, candidates (suppliers' submissions: `POST
//! requisitions/{id}/candidates` creates one, `PATCH candidates/{id}` changes it), assignments,
//! workers and timesheets with daily entries and their pay and bill charges. Lists page by
//! `page` (from 1) and `pageSize` (at most 200) in `{"items", "totalCount"}` and filter with
//! `modifiedSince` (inclusive). The faults are the [`crate::vms`] ones.
//!
//! Submodules: [`seed`] makes the records, [`submissions`] the candidate writes.

pub mod seed;
pub mod submissions;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, patch, post};
use tokio::net::TcpListener;

use crate::vms::{self, Paging, Partner, Shared, StreamSpec, TokenPolicy, Wire};

pub const CLIENT_ID: &str = "beeline-demo-client";
pub const CLIENT_SECRET: &str = "beeline-demo-secret";
/// The client site the sandbox's customer has.
pub const SITE_ID: &str = "ACME-US-01";
/// The audience of Beeline's client API in the US region.
pub const AUDIENCE: &str = "client-api.us.beeline.com";

const STREAMS: [&str; 5] = [
    "requisitions",
    "candidates",
    "assignments",
    "workers",
    "timesheets",
];

pub fn partner() -> Partner {
    Partner {
        name: "beeline",
        token: TokenPolicy {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            form_client_auth: true,
            query: Vec::new(),
            form_choice: Some(("audience".to_owned(), vec![AUDIENCE.to_owned()])),
            ttl_seconds: 3600,
        },
        api_headers: Vec::new(),
        paging: Paging {
            offset: "page",
            first_page: Some(1),
            limit: "pageSize",
            since: "modifiedSince",
            default_limit: 50,
            max_limit: 200,
        },
        streams: STREAMS
            .iter()
            .map(|name| StreamSpec {
                name,
                id_field: "id",
                cursor_field: "lastModified",
                wire: Wire::Json { records: "items" },
            })
            .collect(),
    }
}

/// The sandbox's routes, seeded.
pub fn router() -> Router {
    let shared: Shared = Arc::new(vms::Vms::new(partner(), seed::records()));
    let mut site = Router::new()
        .route(
            "/requisitions/{requisition}/candidates",
            post(submissions::create),
        )
        .route("/candidates/{id}", patch(submissions::update));
    for stream in STREAMS {
        site = site.route(
            &format!("/{stream}"),
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
    // Another site id finds nothing: the routes exist only under the customer's own site.
    let routes = Router::new()
        .nest(&format!("/api/v2/sites/{SITE_ID}"), site)
        .route("/oauth/token", post(vms::token::token))
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
