//! The authorize, token and protected-resource endpoints.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::state::{PendingCode, Shared, new_token};

type Params = HashMap<String, String>;

/// `GET /oauth2/authorize?response_type=code&client_id&redirect_uri&state&code_challenge
/// &code_challenge_method=S256[&scope]`: the sandbox user consents at once; redirects to
/// `redirect_uri` with `code` and `state`. PKCE (S256) and `state` are required.
pub async fn authorize(State(server): State<Shared>, Query(params): Query<Params>) -> Response {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    if get("client_id") != server.options.client_id {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let redirect_uri = get("redirect_uri");
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri must be an http(s) url",
        )
            .into_response();
    }
    // From here on errors go back to the client, as RFC 6749 section 4.1.2.1 says.
    let state = get("state");
    let fail = |error: &str| redirect(redirect_uri, &[("error", error), ("state", state)]);
    if get("response_type") != "code" {
        return fail("unsupported_response_type");
    }
    if state.is_empty()
        || get("code_challenge").is_empty()
        || get("code_challenge_method") != "S256"
    {
        return fail("invalid_request");
    }
    let code = new_token("code");
    let mut grants = server.grants();
    grants.stats.authorizations += 1;
    grants.codes.insert(
        code.clone(),
        PendingCode {
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: get("code_challenge").to_owned(),
            scope: get("scope").to_owned(),
            expires: Instant::now() + server.options.code_ttl,
        },
    );
    redirect(redirect_uri, &[("code", &code), ("state", state)])
}

fn redirect(target: &str, query: &[(&str, &str)]) -> Response {
    let mut location = target.to_owned();
    for (index, (name, value)) in query.iter().enumerate() {
        let separator = if index == 0 && !target.contains('?') {
            '?'
        } else {
            '&'
        };
        location.push(separator);
        location.push_str(name);
        location.push('=');
        location.push_str(&url_encode(value));
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `POST /oauth2/token` (form): `authorization_code` (with `code_verifier` and the same
/// `redirect_uri`), `refresh_token` (rotates; a reused one revokes its family) and
/// `client_credentials`.
pub async fn token(
    State(server): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let mut params = form.map(|Form(params)| params).unwrap_or_default();
    let delay = {
        let mut grants = server.grants();
        grants.stats.token_calls += 1;
        let grant_type = params.get("grant_type").cloned().unwrap_or_default();
        *grants.stats.grants.entry(grant_type).or_default() += 1;
        grants.faults.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((id, secret)) = basic_credentials(&headers)
        && !server.options.client_in_body_only
    {
        params.entry("client_id".to_owned()).or_insert(id);
        params.entry("client_secret".to_owned()).or_insert(secret);
    }
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    let options = &server.options;
    let mut grants = server.grants();
    if grants.faults.fail_next > 0 {
        grants.faults.fail_next -= 1;
        grants.stats.injected_failures += 1;
        let status = StatusCode::from_u16(grants.faults.fail_status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return oauth_error(status, "temporarily_unavailable", "injected fault");
    }
    if get("client_id") != options.client_id || get("client_secret") != options.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "bad client credentials",
        );
    }
    let ttl = options.access_token_ttl;
    let (family, scope, with_refresh) = match get("grant_type") {
        "client_credentials" => (new_token("family"), get("scope").to_owned(), false),
        "authorization_code" => {
            // Codes are single use: removed whether or not the exchange succeeds.
            let Some(pending) = grants.codes.remove(get("code")) else {
                return invalid_grant("unknown or used authorization code");
            };
            if pending.expires < Instant::now() || pending.redirect_uri != get("redirect_uri") {
                return invalid_grant("expired code or redirect_uri mismatch");
            }
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
            if challenge != pending.code_challenge {
                return invalid_grant("code_verifier does not match the code_challenge");
            }
            (new_token("family"), pending.scope, true)
        }
        "refresh_token" => {
            let presented = get("refresh_token");
            let Some(grant) = grants.refresh.get(presented).cloned() else {
                return invalid_grant("unknown refresh token");
            };
            if grants.revoked.contains(&grant.family) {
                return invalid_grant("consent was revoked");
            }
            if grant.used {
                // A reused refresh token means two holders: revoke the whole family.
                grants.stats.refresh_reuses += 1;
                grants.revoked.insert(grant.family);
                return invalid_grant("refresh token was already used");
            }
            if let Some(stored) = grants.refresh.get_mut(presented) {
                stored.used = true;
            }
            (grant.family, grant.scope, true)
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            );
        }
    };
    let (access, refresh) = grants.issue(&family, &scope, ttl, with_refresh);
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": scope,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

/// `GET /oauth2/me` with `Authorization: Bearer <token>`: 200 and the token's expiry for a live
/// token, 401 for an unknown, expired or revoked one.
pub async fn me(State(server): State<Shared>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let grants = server.grants();
    match grants.access.get(token) {
        Some(grant)
            if grant.expires > Instant::now() && !grants.revoked.contains(&grant.family) =>
        {
            let left = grant.expires.saturating_duration_since(Instant::now());
            Json(json!({ "active": true, "expires_in": left.as_secs() })).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
    }
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 section 2.3.1: both halves are form-urlencoded before Basic encoding.
    Some((url_decode(id), url_decode(secret)))
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(value) = hex {
                    out.push(value);
                    index += 2;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
