//! Serving gRPC the same way in every service.
//!
//! [`serve`] adds what every service must offer besides its own API: `grpc.health.v1` (so probes
//! and load balancers see it), reflection in both v1 and v1alpha (so `grpcurl`, `buf curl` and
//! older clients can call it without our protos) and a span per request that continues the
//! caller's trace. On shutdown it reports NOT_SERVING first, then drains in-flight calls.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` on `listener` until `shutdown` completes. `service_names` are the
/// fully-qualified names reported as SERVING on `grpc.health.v1` (the empty name, for the
/// server as a whole, always is).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&str],
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = reflection_builder(service_names).build_v1()?;
    let reflection_v1alpha = reflection_builder(service_names).build_v1alpha()?;

    let names: Vec<String> = service_names
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let drain = async move {
        shutdown.await;
        // Stop new traffic before in-flight calls drain, so a rolling update loses nothing.
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in names {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        tracing::info!("draining in-flight calls");
    };

    Server::builder()
        .max_frame_size(crate::channel::MAX_FRAME_BYTES)
        .initial_stream_window_size(crate::channel::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(crate::channel::CONNECTION_WINDOW_BYTES)
        .trace_fn(plugboard_proto::trace_context::server_span)
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain)
        .await?;
    Ok(())
}

/// Reflection lists only what this server serves: the descriptor set holds every Plugboard
/// service, and a client shown the others would call them here and get UNIMPLEMENTED.
fn reflection_builder(service_names: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(plugboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH_SERVICE_NAME);
    for name in service_names {
        builder = builder.with_service_name(*name);
    }
    builder
}

const HEALTH_SERVICE_NAME: &str = "grpc.health.v1.Health";

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, only SIGTERM stops the process.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received ctrl-c, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
