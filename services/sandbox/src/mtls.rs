//! A partner that requires a client certificate (mutual TLS), as ADP Workforce Now does: an
//! HTTPS server whose TLS handshake refuses any client without a certificate issued by the CA
//! it was given. Behind it, `GET /payroll/v1/workers` answers a few ADP-shaped workers, and
//! `GET /_sandbox/mtls/stats` how many requests got through.
//!
//! Served with an OAuth2 client ([`serve_with_oauth`]) it is ADP as it really is: mTLS and
//! OAuth2 together. `POST /auth/oauth/v2/token` (client credentials, client authentication by
//! HTTP Basic or form fields) issues bearer tokens, reachable like everything else only with the
//! certificate, and the workers need one of its tokens as well.
//!
//! The certificates are the caller's (tests generate them at run time); nothing is committed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
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

/// The OAuth2 client the partner issued, for [`serve_with_oauth`].
#[derive(Debug, Clone)]
pub struct MtlsOAuthClient {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Default)]
struct Partner {
    requests: AtomicU64,
    token_requests: AtomicU64,
    oauth: Option<MtlsOAuthClient>,
    /// Access tokens issued.
    tokens: Mutex<HashSet<String>>,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// The client id and secret of a token request: HTTP Basic, else the form's fields.
fn client_of(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|pair| pair.split_once(':')) {
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

async fn token(
    State(partner): State<Arc<Partner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    partner.token_requests.fetch_add(1, Ordering::Relaxed);
    let Some(issued) = &partner.oauth else {
        return oauth_error(StatusCode::NOT_FOUND, "not_found");
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let known = client_of(&headers, &form)
        .is_some_and(|(id, secret)| id == issued.client_id && secret == issued.client_secret);
    if !known {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let access_token = format!("adp-{}", uuid::Uuid::new_v4().simple());
    partner
        .tokens
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .insert(access_token.clone());
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn workers(State(partner): State<Arc<Partner>>, headers: HeaderMap) -> Response {
    if partner.oauth.is_some() {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let tokens = partner
            .tokens
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !bearer.is_some_and(|token| tokens.contains(token)) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
    }
    partner.requests.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "workers": [
            {"associateOID": "G3A1", "person": {"legalName": {"givenName": "Ada", "familyName1": "Lovelace"}}},
            {"associateOID": "G3A2", "person": {"legalName": {"givenName": "Grace", "familyName1": "Hopper"}}},
            {"associateOID": "G3A3", "person": {"legalName": {"givenName": "Alan", "familyName1": "Turing"}}},
        ]
    }))
    .into_response()
}

async fn stats(State(partner): State<Arc<Partner>>) -> Json<Value> {
    Json(json!({
        "requests": partner.requests.load(Ordering::Relaxed),
        "token_requests": partner.token_requests.load(Ordering::Relaxed),
    }))
}

/// Serves the mTLS partner on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: MtlsOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_partner(listener, options, None, shutdown).await
}

/// Serves the partner with mTLS and OAuth2 together: the API wants a bearer token from the
/// token endpoint, which, like the API, only a client with a certificate reaches.
pub async fn serve_with_oauth(
    listener: TcpListener,
    options: MtlsOptions,
    client: MtlsOAuthClient,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_partner(listener, options, Some(client), shutdown).await
}

async fn serve_partner(
    listener: TcpListener,
    options: MtlsOptions,
    oauth: Option<MtlsOAuthClient>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&options)?));
    let partner = Partner {
        oauth,
        ..Partner::default()
    };
    let router = Router::new()
        .route("/payroll/v1/workers", get(workers))
        .route("/auth/oauth/v2/token", post(token))
        .route("/_sandbox/mtls/stats", get(stats))
        .with_state(Arc::new(partner));
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
