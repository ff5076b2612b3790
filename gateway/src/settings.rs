//! The tenant's settings page: the notification webhook health calls on every status change.
//!
//! `GET /settings` shows the registered URL (never the signing secret). `POST
//! /settings/webhook` registers or replaces it through health's `SetWebhook`, which refuses
//! URLs that are not https or that resolve to internal addresses, and shows the new signing
//! secret on the answer page only: it is not stored here and cannot be shown again. An empty
//! URL removes the webhook.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use plugboard_proto::health::v1::{GetWebhookRequest, SetWebhookRequest};

use crate::dashboard::{SessionTenant, check_same_origin, message_page, page};
use crate::error::Error;
use crate::mesh::CALL_TIMEOUT;
use crate::routes::AppState;

/// Longest URL accepted; health would refuse a longer one anyway, but not before a lookup.
const MAX_URL_CHARS: usize = 2048;

#[derive(Deserialize)]
pub struct WebhookForm {
    url: String,
}

/// What the settings page shows besides the current URL.
#[derive(Default)]
struct Outcome {
    signing_secret: Option<String>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// `GET /settings`.
pub async fn show(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
) -> Response {
    render(&state, &tenant_id, StatusCode::OK, Outcome::default()).await
}

/// `POST /settings/webhook`.
pub async fn set_webhook(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    headers: HeaderMap,
    Form(form): Form<WebhookForm>,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return message_page(&state.templates, &error);
    }
    let url = form.url.trim().to_owned();
    if url.chars().count() > MAX_URL_CHARS {
        let error = Error::WebhookUrlRefused(format!(
            "the webhook url must be at most {MAX_URL_CHARS} characters"
        ));
        return refused(&state, &tenant_id, &error).await;
    }
    let removing = url.is_empty();
    let mut request = tonic::Request::new(SetWebhookRequest { url });
    request.set_timeout(CALL_TIMEOUT);
    let answer = state.mesh.health_for(&tenant_id).set_webhook(request).await;
    match answer {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::info!(
                tenant_id,
                removed = removing,
                "notification webhook changed"
            );
            let outcome = if removing {
                Outcome {
                    notice: Some("The webhook was removed; status changes are no longer sent."),
                    ..Outcome::default()
                }
            } else {
                Outcome {
                    signing_secret: Some(answer.signing_secret),
                    notice: Some(
                        "The webhook is registered. Copy the signing secret now: it is shown only once.",
                    ),
                    ..Outcome::default()
                }
            };
            render(&state, &tenant_id, StatusCode::OK, outcome).await
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let error = Error::WebhookUrlRefused(status.message().to_owned());
            refused(&state, &tenant_id, &error).await
        }
        Err(status) => message_page(&state.templates, &Error::upstream("health", &status)),
    }
}

async fn refused(state: &AppState, tenant_id: &str, error: &Error) -> Response {
    let (status, _, message) = error.public_parts();
    let outcome = Outcome {
        error: Some(message),
        ..Outcome::default()
    };
    render(state, tenant_id, status, outcome).await
}

async fn render(
    state: &AppState,
    tenant_id: &str,
    status: StatusCode,
    outcome: Outcome,
) -> Response {
    let mut request = tonic::Request::new(GetWebhookRequest {});
    request.set_timeout(CALL_TIMEOUT);
    let current = match state.mesh.health_for(tenant_id).get_webhook(request).await {
        Ok(answer) => answer.into_inner().url,
        Err(status) => return message_page(&state.templates, &Error::upstream("health", &status)),
    };
    let body = state.templates.render(
        "settings.html",
        context! {
            tenant_id => tenant_id,
            current_url => current,
            signing_secret => outcome.signing_secret,
            notice => outcome.notice,
            error => outcome.error,
        },
    );
    match body {
        Ok(body) => page(status, body),
        Err(error) => message_page(&state.templates, &error),
    }
}
