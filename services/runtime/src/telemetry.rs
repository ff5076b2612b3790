//! Logs and traces.
//!
//! `tracing` everywhere; spans are exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, and W3C trace context is the propagation format on every hop, exported or not. The log
//! filter comes from `PLUGBOARD_LOG` (an `EnvFilter` directive), `info` by default;
//! `PLUGBOARD_LOG_SPANS=true` logs each span with its fields when it closes.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Env;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("PLUGBOARD_LOG is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes pending spans when dropped at the end of `main`.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Nothing useful can be done with a flush failure at exit.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber and propagator for a process named `service_name`.
pub fn init(service_name: &str, env: &Env) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(env.get("PLUGBOARD_LOG").unwrap_or("info"))?;
    // `PLUGBOARD_LOG_SPANS=true` also logs every span as it closes, with all its fields: what a
    // trace exporter would see, for audits such as the no-leaks test.
    let span_events = if env.parse_or("PLUGBOARD_LOG_SPANS", false).unwrap_or(false) {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    // Colour only for a person at a terminal; log files and collectors get plain text.
    let fmt_layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_span_events(span_events)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);

    // A tracer provider is installed even with no exporter: without one, spans carry no trace
    // context, so a service that does not export would break the trace of every service that
    // does, one hop later. Unexported spans are dropped when they end.
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let provider = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(endpoint) => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint);
            if endpoint.starts_with("https://") {
                // A collector behind a public certificate: the web's roots, not none.
                builder = builder
                    .with_tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots());
            }
            let exporter = builder.build()?;
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build()
        }
        None => SdkTracerProvider::builder().with_resource(resource).build(),
    };
    let otel_layer =
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name.to_owned()));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    if let Some(endpoint) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        tracing::info!(endpoint, "exporting traces over otlp");
    }
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collector over TLS is configured at start (the connection itself is made lazily), not
    /// refused for want of a TLS feature.
    #[tokio::test]
    async fn an_https_collector_is_accepted() {
        let env = Env::from_pairs([(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example.com:4317",
        )]);
        let guard = init("telemetry-test", &env);
        assert!(guard.is_ok(), "{:?}", guard.err());
    }
}
