//! A partner that requires a client certificate (mutual TLS), as ADP Workforce Now does: an
//! HTTPS server whose TLS handshake refuses any client without a certificate issued by the CA
//! it was given. Behind it, `GET /payroll/v1/workers` answers a few ADP-shaped workers, and
//! `GET /_sandbox/mtls/stats` how many requests got through.
//!
//! The certificates are the caller's (tests generate them at run time); nothing is committed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use tokio_rustls::server::TlsStream;

use crate::error::Error;

/// The server's certificate and key, and the CA whose client certificates it accepts (PEM).
#[derive(Debug, Clone)]
pub struct MtlsOptions {
    pub server_certificate_pem: String,
    pub server_key_pem: String,
    pub client_ca_pem: String,
}

/// The TLS settings: the server's identity, and client certificates required from the CA.
pub fn server_config(options: &MtlsOptions) -> Result<ServerConfig, Error> {
    let invalid = |what: &str, error: String| Error::Tls(format!("{what}: {error}"));
    let provider = Arc::new(crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(options.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| invalid("client CA", e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| invalid("client CA", e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid("client verifier", e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(options.server_certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("server certificate", e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(options.server_key_pem.as_bytes())
        .map_err(|e| invalid("server key", e.to_string()))?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid("server identity", e.to_string()))
}

/// Accepts TCP connections and completes their TLS handshake; a client that fails it (no or a
/// foreign certificate) is dropped and the next connection is accepted.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "accept failed");
                    continue;
                }
            };
            match self.acceptor.accept(stream).await {
                Ok(tls) => return (tls, peer),
                Err(error) => {
                    tracing::info!(error = %error, %peer, "refused a TLS client");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
}

async fn workers(State(counters): State<Arc<Counters>>) -> Json<Value> {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "workers": [
            {"associateOID": "G3A1", "person": {"legalName": {"givenName": "Ada", "familyName1": "Lovelace"}}},
            {"associateOID": "G3A2", "person": {"legalName": {"givenName": "Grace", "familyName1": "Hopper"}}},
            {"associateOID": "G3A3", "person": {"legalName": {"givenName": "Alan", "familyName1": "Turing"}}},
        ]
    }))
}

async fn stats(State(counters): State<Arc<Counters>>) -> Json<Value> {
    Json(json!({ "requests": counters.requests.load(Ordering::Relaxed) }))
}

/// Serves the mTLS partner on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: MtlsOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&options)?));
    let router = Router::new()
        .route("/payroll/v1/workers", get(workers))
        .route("/_sandbox/mtls/stats", get(stats))
        .with_state(Arc::new(Counters::default()));
    axum::serve(
        TlsListener {
            tcp: listener,
            acceptor,
        },
        router,
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(Error::Serve)
}
