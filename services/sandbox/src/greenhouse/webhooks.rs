//! Webhooks the way Greenhouse sends them: a JSON body `{"action", "payload": {"candidate":
//! {...}}}` POSTed with `Signature: sha256 <hex HMAC-SHA256(secret, raw body)>`.
//!
//! `POST /_sandbox/webhook` returns a signed delivery without sending it (the conformance kit
//! hands it to the connector itself); `POST /_sandbox/webhook/send` POSTs one to a URL (the
//! gateway's webhook route) and reports the answer. Both take:
//!
//! - `action` (`update_candidate`, `delete_candidate`, ...) and `id`, the candidate;
//!   `delete_*` removes the candidate first, as Greenhouse sends the event after deleting;
//! - `updated_at`: sends the candidate as it stood at that (earlier) time, a late delivery
//!   of an older change;
//! - `variant`: `forged` (the body changed after signing), `wrong_secret`, or `repeat` (the
//!   last delivery sent again, byte for byte: a partner's retry or a replay).
//!
//! Test fixture, not Greenhouse: `scheme: "timestamped"` with an optional `signed_at` (epoch
//! seconds) signs `"<timestamp>.<body>"` and sends the time in `X-Fixture-Timestamp`, for the
//! runtime's timestamp tolerance; Greenhouse itself signs the body only.
//!
//! Test fixture, not Greenhouse: `scheme: "batched"` sends the JSON `batch` as the body, several
//! events in one request, signed once the way BambooHR signs its batched employee webhooks:
//! `X-BambooHR-Signature`, hex HMAC-SHA256 over the body followed by the time in
//! `X-BambooHR-Timestamp` (`tests/fixtures/webhooks/`). `action` and `id` are then not read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::error;
use super::state::{Shared, now_rfc3339};

/// The test fixture's timestamp header (see the module docs).
pub const FIXTURE_TIMESTAMP_HEADER: &str = "X-Fixture-Timestamp";
/// The batched fixture's signature and timestamp headers (see the module docs).
pub const BATCH_SIGNATURE_HEADER: &str = "X-BambooHR-Signature";
pub const BATCH_TIMESTAMP_HEADER: &str = "X-BambooHR-Timestamp";

#[derive(Debug, Deserialize)]
pub struct WebhookRequest {
    /// Harvest's `action`, e.g. `update_candidate`.
    pub action: String,
    /// The candidate the event is about.
    pub id: Value,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub signed_at: Option<i64>,
    /// Where `/_sandbox/webhook/send` POSTs the delivery.
    #[serde(default)]
    pub url: Option<String>,
    /// The body of a `batched` delivery, sent as given.
    #[serde(default)]
    pub batch: Option<Value>,
}

/// `POST /_sandbox/webhook`: `{"headers": {...}, "body": "<raw text>"}`, not sent.
pub async fn webhook(
    State(sandbox): State<Shared>,
    Json(request): Json<WebhookRequest>,
) -> Response {
    match delivery(&sandbox, &request) {
        Ok((headers, body)) => Json(json!({"headers": headers, "body": body})).into_response(),
        Err(response) => *response,
    }
}

/// `POST /_sandbox/webhook/send`: sends the delivery to `url`; answers `{"status", "body",
/// "headers", "sent"}` with the receiver's status and body.
pub async fn send(State(sandbox): State<Shared>, Json(request): Json<WebhookRequest>) -> Response {
    let Some(url) = request.url.clone() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "url is required");
    };
    let (headers, body) = match delivery(&sandbox, &request) {
        Ok(delivery) => delivery,
        Err(response) => return *response,
    };
    let mut post = reqwest::Client::new().post(&url).body(body.clone());
    if let Some(headers) = headers.as_object() {
        for (name, value) in headers {
            post = post.header(name, value.as_str().unwrap_or_default());
        }
    }
    match post.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap_or_default();
            Json(json!({"status": status, "body": text, "headers": headers, "sent": body}))
                .into_response()
        }
        Err(failure) => error(
            StatusCode::BAD_GATEWAY,
            &format!("cannot deliver the webhook: {}", failure.without_url()),
        ),
    }
}

/// The headers and body of the delivery `request` asks for; the last one is remembered.
fn delivery(sandbox: &Shared, request: &WebhookRequest) -> Result<(Value, String), Box<Response>> {
    if request.variant.as_deref() == Some("repeat") {
        return sandbox
            .world()
            .last_delivery
            .clone()
            .ok_or_else(|| Box::new(error(StatusCode::NOT_FOUND, "no delivery to repeat")));
    }
    let secret = match request.variant.as_deref() {
        Some("wrong_secret") => "not-the-webhook-secret".to_owned(),
        _ => sandbox.options.webhook_secret.clone(),
    };
    if request.scheme.as_deref() == Some("batched") {
        let Some(batch) = &request.batch else {
            return Err(Box::new(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a batched delivery needs its batch",
            )));
        };
        let body = batch.to_string();
        let at = request
            .signed_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let digest = hmac_sha256(&secret, &format!("{body}{at}"))?;
        let mut headers = json!({"Content-Type": "application/json"});
        headers[BATCH_SIGNATURE_HEADER] = json!(digest);
        headers[BATCH_TIMESTAMP_HEADER] = json!(at.to_string());
        sandbox.world().last_delivery = Some((headers.clone(), body.clone()));
        return Ok((headers, body));
    }
    let candidate = {
        let mut world = sandbox.world();
        if request.action.starts_with("delete_") {
            world
                .delete_candidates(std::slice::from_ref(&request.id))
                .pop()
                .map(|mut candidate| {
                    // The deletion is the candidate's last change.
                    candidate["updated_at"] = json!(now_rfc3339());
                    candidate
                })
        } else {
            world.records["candidates"]
                .iter()
                .find(|c| c["id"] == request.id)
                .cloned()
        }
    };
    let Some(mut candidate) = candidate else {
        return Err(Box::new(error(StatusCode::NOT_FOUND, "no such candidate")));
    };
    if let Some(updated_at) = &request.updated_at {
        candidate["updated_at"] = json!(updated_at);
    }
    let body = json!({
        "action": request.action,
        "payload": {"candidate": candidate, "delivered_at": now_rfc3339()},
    })
    .to_string();
    let mut headers = json!({"Content-Type": "application/json"});
    let signed = if request.scheme.as_deref() == Some("timestamped") {
        let at = request
            .signed_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        headers[FIXTURE_TIMESTAMP_HEADER] = json!(at.to_string());
        format!("{at}.{body}")
    } else {
        body.clone()
    };
    headers["Signature"] = json!(format!("sha256 {}", hmac_sha256(&secret, &signed)?));
    let body = if request.variant.as_deref() == Some("forged") {
        // Signed, then changed on the way: the first digit of an id moves.
        body.replacen("\"id\":", "\"id\":9", 1)
    } else {
        body
    };
    sandbox.world().last_delivery = Some((headers.clone(), body.clone()));
    Ok((headers, body))
}

/// The hex HMAC-SHA256 of `payload` under `secret`.
fn hmac_sha256(secret: &str, payload: &str) -> Result<String, Box<Response>> {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad webhook secret",
        )));
    };
    mac.update(payload.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}
