//! The HTTP router: shared state, routes and a span per request.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use opentelemetry::propagation::Extractor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::dashboard::{self, Templates};
use crate::mesh::Mesh;
use crate::tenants::TenantStore;
use crate::{api, error::Error};
use crate::{connect, detail, documents, events, oauth, settings, webhooks};

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: TenantStore,
    pub mesh: Mesh,
    pub templates: Arc<Templates>,
    pub webhooks: Arc<webhooks::Relay>,
    /// `PLUGBOARD_PUBLIC_URL`, the origin customers reach us at, when configured.
    pub public_url: Option<Arc<str>>,
}

impl AppState {
    pub fn new(store: TenantStore, mesh: Mesh) -> Result<AppState, Error> {
        Ok(AppState {
            store,
            mesh,
            templates: Arc::new(Templates::new()?),
            webhooks: Arc::default(),
            public_url: None,
        })
    }

    /// The webhook route's state, with its delivery budget (shared through Redis or not).
    pub fn with_webhooks(mut self, relay: webhooks::Relay) -> AppState {
        self.webhooks = Arc::new(relay);
        self
    }

    pub fn with_public_url(mut self, public_url: Option<&str>) -> AppState {
        self.public_url = public_url.map(Arc::from);
        self
    }

    /// Whether customers reach us over TLS, so cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/livez", get(api::livez))
        .route("/readyz", get(api::readyz))
        .route("/api/v1/integrations", get(api::list_integrations))
        .route("/api/v1/integrations/{id}", get(api::get_integration))
        .route("/", get(dashboard::index))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/static/dashboard.js", get(dashboard::script))
        .route("/events", get(events::stream))
        .route("/integrations/{id}", get(detail::show))
        .route("/integrations/{id}/run", post(detail::run_now))
        .route("/integrations/{id}/pause", post(detail::pause))
        .route("/integrations/{id}/resume", post(detail::resume))
        .route("/integrations/{id}/reconnect", post(oauth::reconnect))
        .route(
            "/integrations/{id}/webhook",
            post(webhooks::enable_from_dashboard),
        )
        .route("/settings", get(settings::show))
        .route("/settings/webhook", post(settings::set_webhook))
        .route(oauth::CALLBACK_PATH, get(oauth::callback))
        .route("/connect", get(connect::list))
        .route(
            "/connect/{connector}",
            get(connect::form).post(connect::submit),
        )
        .route(
            "/api/v1/integrations/{id}/documents",
            post(documents::parse).layer(axum::extract::DefaultBodyLimit::max(
                documents::MAX_BODY_BYTES,
            )),
        )
        .route(
            "/api/v1/integrations/{id}/webhook",
            axum::routing::put(webhooks::enable),
        )
        .route(
            "/webhooks/{connector}/{connection_id}",
            post(webhooks::receive).layer(axum::extract::DefaultBodyLimit::max(
                webhooks::MAX_BODY_BYTES,
            )),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// One span per request, continuing the caller's W3C trace when it sent one, so the gRPC calls
/// made for the request (signed by `MeshCredentials`, which injects the current span) join it.
async fn trace_request(request: Request, next: Next) -> Response {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let span = tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.path = %request.uri().path(),
        http.status = tracing::field::Empty,
    );
    // A missing or malformed parent only means the trace starts here.
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.status", response.status().as_u16());
    tracing::debug!(parent: &span, status = response.status().as_u16(), "request finished");
    response
}
