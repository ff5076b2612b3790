//! A simulated HMACBoard, the example partner of connector hooks (not a real partner): the
//! starter partner's candidates behind a request-signature gate a manifest cannot satisfy.
//!
//! Every request outside `/_sandbox/` must carry `X-Hmacboard-Key` (the key id),
//! `X-Hmacboard-Timestamp` (Unix seconds, within five minutes of now) and
//! `X-Hmacboard-Signature`: hex HMAC-SHA256, keyed with the account's signing secret, of
//! `METHOD\npath?query\ntimestamp\nhex(sha256(body))`. Anything else is a 401 naming what was
//! wrong. A passing request reaches the starter partner (see [`crate::starter`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::starter::{self, StarterOptions};

pub const DEMO_KEY_ID: &str = "hmacboard-demo-key-id";
pub const DEMO_SIGNING_SECRET: &str = "hmacboard-demo-signing-secret";
/// How far a request's timestamp may be from the sandbox's clock.
const TOLERANCE_SECONDS: i64 = 300;
/// Bodies larger than this are refused before hashing.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HmacboardOptions {
    pub key_id: String,
    pub signing_secret: String,
}

impl Default for HmacboardOptions {
    fn default() -> HmacboardOptions {
        HmacboardOptions {
            key_id: DEMO_KEY_ID.to_owned(),
            signing_secret: DEMO_SIGNING_SECRET.to_owned(),
        }
    }
}

/// The sandbox's routes.
pub fn router(options: HmacboardOptions) -> Router {
    let starter = StarterOptions::default();
    let inner_key = starter.api_key.clone();
    let gate = Arc::new((options, inner_key));
    starter::router(starter).layer(middleware::from_fn_with_state(gate, verify))
}

async fn verify(
    State(gate): State<Arc<(HmacboardOptions, String)>>,
    request: Request,
    next: Next,
) -> Response {
    let (options, inner_key) = &*gate;
    if request.uri().path().starts_with("/_sandbox/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refuse("the body is unreadable or too large");
    };
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if text("x-hmacboard-key").as_deref() != Some(options.key_id.as_str()) {
        return refuse("unknown or missing X-Hmacboard-Key");
    }
    let Some(timestamp) = text("x-hmacboard-timestamp") else {
        return refuse("missing X-Hmacboard-Timestamp");
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|at| (chrono::Utc::now().timestamp() - at).abs() <= TOLERANCE_SECONDS);
    if !fresh {
        return refuse("X-Hmacboard-Timestamp is not within five minutes of now");
    }
    let Some(signature) = text("x-hmacboard-signature").and_then(|hex| hex::decode(hex).ok())
    else {
        return refuse("missing or non-hex X-Hmacboard-Signature");
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let signed = format!(
        "{}\n{path}\n{timestamp}\n{}",
        parts.method,
        hex::encode(Sha256::digest(&body))
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(options.signing_secret.as_bytes()) else {
        return refuse("the sandbox's signing secret is unusable");
    };
    mac.update(signed.as_bytes());
    if mac.verify_slice(&signature).is_err() {
        return refuse("X-Hmacboard-Signature does not match the request");
    }
    // The starter partner behind the gate takes its own key.
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {inner_key}")) {
        parts.headers.insert(header::AUTHORIZATION, value);
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn refuse(reason: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"error": reason})),
    )
        .into_response()
}
