//! W3C trace context across gRPC hops.
//!
//! Servers call [`server_span`] from `Server::trace_fn` so each request's span continues the
//! caller's trace; clients call [`inject_current`] from their interceptor so the next hop
//! continues ours, and outgoing HTTP requests (partners, webhooks) carry
//! [`current_http_headers`]. The propagator is the global one that telemetry start-up installs.

use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) else {
            return;
        };
        self.0.insert(key, value);
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// Writes the current span's context into outgoing metadata (`traceparent`, `tracestate`).
pub fn inject_current(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// Writes the current span's context into outgoing HTTP headers.
pub fn inject_current_http(headers: &mut http::HeaderMap) {
    let mut metadata = MetadataMap::from_headers(std::mem::take(headers));
    inject_current(&mut metadata);
    *headers = metadata.into_headers();
}

/// The current span's context as HTTP headers, for a partner or webhook request
/// (`reqwest::RequestBuilder::headers`), so the next hop can continue our trace.
pub fn current_http_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    inject_current_http(&mut headers);
    headers
}

/// The span for one incoming request, child of the caller's trace when it sent one.
pub fn server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let span = tracing::info_span!("grpc.request", rpc.path = %request.uri().path());
    // A missing or malformed parent only means the trace starts here.
    let _ = span.set_parent(parent);
    span
}
