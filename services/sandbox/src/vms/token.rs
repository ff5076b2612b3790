//! The OAuth2 client-credentials token endpoint (RFC 6749 section 4.4) under the partner's
//! rules: client authentication as Basic (and, where the partner allows, form fields), parameters the token URL itself must
//! carry, and a form field with a closed set of values (Beeline's `audience`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::{Shared, error};

/// `POST <token path>`: a bearer token valid for the policy's lifetime.
pub async fn token(
    State(vms): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let policy = &vms.partner.token;
    for (name, expected) in &policy.query {
        if query.get(name) != Some(expected) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the token URL must carry {name}={expected}"),
            );
        }
    }
    let grant = form.get("grant_type").or_else(|| query.get("grant_type"));
    if grant.map(String::as_str) != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let (client_id, client_secret) = match basic(&headers) {
        Some(pair) => pair,
        None if policy.form_client_auth => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
        None => return invalid_client(),
    };
    if client_id != policy.client_id || client_secret != policy.client_secret {
        return invalid_client();
    }
    if let Some((field, allowed)) = &policy.form_choice
        && !form.get(field).is_some_and(|value| allowed.contains(value))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("{field} must be one of {}", allowed.join(", ")),
        );
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut world = vms.world();
    world.tokens.insert(token.clone());
    world.stats.tokens_issued += 1;
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": policy.ttl_seconds,
    }))
    .into_response()
}

fn invalid_client() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}
