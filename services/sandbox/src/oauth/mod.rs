//! A generic OAuth2 authorization server, for testing how Plugboard connects, refreshes and
//! fails against a strict partner.
//!
//! It follows RFC 6749 with the strict habits that break integrations in the field:
//! authorization codes need PKCE (S256) and are single use; refresh tokens ROTATE on every use,
//! and a refresh token used twice is rejected with `invalid_grant` and revokes its whole token
//! family (as RFC 9700 recommends), so two workers refreshing at once lose the connection.
//! Access tokens expire after [`OAuthOptions::access_token_ttl`].
//!
//! Routes (see [`router`]): `GET /oauth2/authorize` (consents at once and redirects with
//! `code` and `state`), `POST /oauth2/token` (`authorization_code`, `refresh_token`,
//! `client_credentials`; client authentication in the form or HTTP Basic), `GET /oauth2/me` (a
//! protected resource: 200 for a live bearer token, 401 otherwise), `GET /oauth2/api/candidates`
//! (a JobAdder-like candidate list behind the same tokens, see [`api`]), and the admin endpoints
//! `GET /_sandbox/oauth2/stats` (token-endpoint call counts, so tests can assert "exactly one
//! call") and `POST /_sandbox/oauth2/faults` (fail the next N token calls with a status, slow the
//! token endpoint down, revoke consent, expire every access token early).
//!
//! Submodules: [`state`] holds grants and counters, [`endpoints`] the OAuth endpoints, [`api`]
//! the resource API,
//! [`admin`] the `/_sandbox/oauth2/` endpoints.

pub mod admin;
pub mod api;
pub mod endpoints;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::error::Error;

/// Client id of the sandbox's OAuth client.
pub const CLIENT_ID: &str = "plugboard-oauth-client";
/// Client secret of the sandbox's OAuth client.
pub const CLIENT_SECRET: &str = "plugboard-oauth-client-secret";

/// How the authorization server behaves.
#[derive(Debug, Clone)]
pub struct OAuthOptions {
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Lifetime of an authorization code.
    pub code_ttl: Duration,
    /// How many candidates the resource API serves.
    pub candidates: usize,
    /// Take the client only as form fields of the token request and refuse HTTP Basic, as
    /// some partners do (RFC 6749 says servers must take Basic; not all do).
    pub client_in_body_only: bool,
}

impl Default for OAuthOptions {
    fn default() -> OAuthOptions {
        OAuthOptions {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            access_token_ttl: Duration::from_secs(3600),
            code_ttl: Duration::from_secs(120),
            candidates: 57,
            client_in_body_only: false,
        }
    }
}

/// The routes, for embedding (merge them into another sandbox's router) or [`serve`].
pub fn router(options: OAuthOptions) -> Router {
    let shared = Arc::new(state::AuthServer::new(options));
    Router::new()
        .route("/oauth2/authorize", get(endpoints::authorize))
        .route("/oauth2/token", post(endpoints::token))
        .route("/oauth2/me", get(endpoints::me))
        .route("/oauth2/api/candidates", get(api::list_candidates))
        .route("/_sandbox/oauth2/stats", get(admin::stats))
        .route("/_sandbox/oauth2/faults", post(admin::faults))
        .with_state(shared)
}

/// Serves the authorization server on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: OAuthOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, router(options))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}
