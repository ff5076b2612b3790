//! OAuth2 authorize and token endpoints and the REST login, in Bullhorn's shapes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::state::{Shared, new_token};

/// How long an authorization code can be exchanged.
const CODE_TTL: Duration = Duration::from_secs(120);

type Params = HashMap<String, String>;

/// `GET /oauth/authorize`: with `action=Login`, `username` and `password` (Bullhorn's headless
/// flow) redirects to `redirect_uri` (or the sandbox's landing page) with a `code`.
pub async fn authorize(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let options = &sandbox.options;
    sandbox.world().stats.requests += 1;
    if params.get("client_id") != Some(&options.client_id) {
        return error_page(StatusCode::BAD_REQUEST, "Invalid client_id.");
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return error_page(StatusCode::BAD_REQUEST, "Unsupported response_type.");
    }
    if params.get("action").map(String::as_str) != Some("Login") {
        // Without the headless action Bullhorn shows its login form.
        return Html("<html><body><form>Bullhorn sandbox login</form></body></html>")
            .into_response();
    }
    let good = params.get("username") == Some(&options.username)
        && params.get("password") == Some(&options.password);
    if !good {
        return error_page(StatusCode::UNAUTHORIZED, "Invalid username or password.");
    }

    let code = new_token();
    {
        let mut world = sandbox.world();
        world.stats.authorizations += 1;
        world.codes.insert(code.clone(), Instant::now() + CODE_TTL);
    }
    let target = params
        .get("redirect_uri")
        .cloned()
        .unwrap_or_else(|| format!("http://{}/oauth/landing", host(&headers)));
    let separator = if target.contains('?') { '&' } else { '?' };
    let mut location = format!(
        "{target}{separator}code={}&client_id={}",
        encode(&code),
        encode(&options.client_id)
    );
    if let Some(state) = params.get("state") {
        location.push_str(&format!("&state={}", encode(state)));
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Where the redirect lands when the caller gave no `redirect_uri`.
pub async fn landing() -> Html<&'static str> {
    Html("<html><body>Authorized. The code is in this page's URL.</body></html>")
}

/// `POST /oauth/token`: `authorization_code` and `refresh_token` grants. Parameters may come
/// in the query string (as Bullhorn documents) or the form body; client credentials also as
/// HTTP Basic.
fn exchange(sandbox: Shared, mut params: Params, headers: &HeaderMap) -> Response {
    let options = &sandbox.options;
    if let Some((id, secret)) = basic_credentials(headers) {
        params.entry("client_id".to_owned()).or_insert(id);
        params.entry("client_secret".to_owned()).or_insert(secret);
    }
    let mut world = sandbox.world();
    world.stats.requests += 1;
    if params.get("client_id") != Some(&options.client_id)
        || params.get("client_secret") != Some(&options.client_secret)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials.",
        );
    }
    let now = Instant::now();
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = params.get("code").cloned().unwrap_or_default();
            // Codes are single use: removed whether or not they are still valid.
            match world.codes.remove(&code) {
                Some(expires) if expires > now => {}
                _ => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "Invalid, expired, or revoked authorization code.",
                    );
                }
            }
        }
        Some("refresh_token") => {
            let refresh = params.get("refresh_token").cloned().unwrap_or_default();
            if !world.refresh_tokens.remove(&refresh) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid, expired, or revoked refresh token.",
                );
            }
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type.",
            );
        }
    }
    let access = new_token();
    let refresh = new_token();
    world.stats.token_exchanges += 1;
    world
        .access_tokens
        .insert(access.clone(), now + options.access_token_ttl);
    world.refresh_tokens.insert(refresh.clone());
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": options.access_token_ttl.as_secs(),
        "refresh_token": refresh,
    }))
    .into_response()
}

pub async fn token(
    State(sandbox): State<Shared>,
    Query(mut params): Query<Params>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    if let Ok(Form(body)) = form {
        params.extend(body);
    }
    exchange(sandbox, params, &headers)
}

/// `GET|POST /rest-services/login?version=2.0&access_token=`: a `BhRestToken` session and the
/// `restUrl`, built from the request's `Host` as a data centre's would be.
pub async fn login(
    State(sandbox): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut world = sandbox.world();
    world.stats.requests += 1;
    let access = params.get("access_token").cloned().unwrap_or_default();
    let valid = world
        .access_tokens
        .get(&access)
        .is_some_and(|expires| *expires > Instant::now());
    if !valid {
        world.stats.unauthorized += 1;
        return bullhorn_error(
            StatusCode::UNAUTHORIZED,
            "Invalid or expired OAuth access token.",
            "errors.authentication.invalidAccessToken",
        );
    }
    let session = new_token();
    world.stats.logins += 1;
    world.sessions.insert(
        session.clone(),
        Instant::now() + sandbox.options.session_ttl,
    );
    let rest_url = format!(
        "http://{}/rest-services/{}/",
        host(&headers),
        sandbox.options.corp_token
    );
    Json(json!({"BhRestToken": session, "restUrl": rest_url})).into_response()
}

/// Bullhorn's REST error body.
pub fn bullhorn_error(status: StatusCode, message: &str, key: &str) -> Response {
    let body = json!({
        "errorMessage": message,
        "errorMessageKey": key,
        "errorCode": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<html><body><h1>Error</h1><p>{message}</p></body></html>"
        )),
    )
        .into_response()
}

pub fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode(id), decode(secret)))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Undoes form encoding (RFC 6749 §2.3.1 encodes Basic credentials that way).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => match text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    index += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
