//! Connecting (and reconnecting) an integration through OAuth2's authorization code flow.
//!
//! 1. The connect form of a connector whose manifest uses authorization code posts the
//!    settings and the OAuth client; [`begin`] asks credentials to `BeginOAuth` for a new
//!    connection (PKCE and `state` live there) and redirects the browser to the partner's
//!    authorize page.
//! 2. The partner redirects back to `GET /oauth/callback?state&code` (or `error`).
//!    [`callback`] finds the connect by the state's hash, calls `CompleteOAuth` for that
//!    connect's tenant (credentials exchanges the code and stores the tokens), then creates the
//!    sync and starts a first run.
//! 3. An integration that needs a reconnect gets a "Reconnect" button: [`reconnect`] begins
//!    again with the client credentials already holds, so the customer only consents.
//!
//! The redirect back is a cross-site navigation, which carries no `SameSite=Strict` session
//! cookie: the unguessable, single-use `state` is what names the tenant there.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use plugboard_proto::credentials::v1::{BeginOAuthRequest, CompleteOAuthRequest, OAuth2Client};
use plugboard_proto::error::reason_of;
use plugboard_proto::registry::v1::ConnectorManifest;
use plugboard_proto::sync::v1::{CreateSyncRequest, TriggerRunRequest};

use crate::connect::{DEFAULT_INTERVAL_SECONDS, manifest, with_timeout};
use crate::dashboard::{SessionTenant, check_same_origin, message_page, page, redirect_to};
use crate::detail::encode;
use crate::error::Error;
use crate::forms::{self, CREDENTIAL_PREFIX};
use crate::oauth_store::PendingConnect;
use crate::routes::AppState;

/// Where partners send the customer back.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// This gateway's callback URL as the browser reaches it: under the configured public origin,
/// or, without one (dev mode), at the request's Host over http.
fn redirect_uri(public_url: Option<&str>, headers: &HeaderMap) -> Result<String, Error> {
    if let Some(origin) = public_url {
        return Ok(format!("{origin}{CALLBACK_PATH}"));
    }
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .ok_or_else(|| Error::InvalidForm("the request has no usable Host header".to_owned()))?;
    Ok(format!("http://{host}{CALLBACK_PATH}"))
}

/// A manifest URL template (`{{ settings.name }}`) rendered with the connection's settings.
fn render_url(template: &str, settings_json: &str) -> Result<String, Error> {
    let settings: serde_json::Value = serde_json::from_str(settings_json)
        .map_err(|e| Error::InvalidForm(format!("settings: {e}")))?;
    let url = minijinja::Environment::new()
        .render_str(template, context! { settings => settings })
        .map_err(|e| Error::InvalidForm(format!("the connector's OAuth URL: {e}")))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Error::InvalidForm(format!(
            "the connector's OAuth URL {url:?} is not an http or https URL"
        )));
    }
    Ok(url)
}

/// Begins a connect for a new connection from the posted form; the redirect to the partner.
pub async fn begin(
    state: &AppState,
    tenant_id: &str,
    manifest: &ConnectorManifest,
    posted: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let Some(flow) = &manifest.oauth_authorization else {
        return Err(Error::InvalidForm(
            "this connector does not connect through OAuth".to_owned(),
        ));
    };
    let settings = forms::settings_fields(&manifest.settings_schema_json)?;
    let settings_json = forms::settings_json(&settings, posted)?;
    let value = |name: &str| {
        posted
            .get(&format!("{CREDENTIAL_PREFIX}{name}"))
            .map(|value| value.trim().to_owned())
            .unwrap_or_default()
    };
    let token_url = if flow.token_url.is_empty() {
        value("token_url")
    } else {
        render_url(&flow.token_url, &settings_json)?
    };
    let client = OAuth2Client {
        client_id: value("client_id"),
        client_secret: value("client_secret"),
        token_url,
        scopes: flow.scopes.clone(),
        client_secret_in_body: manifest.client_secret_in_body,
        ..OAuth2Client::default()
    };
    for (label, given) in [
        ("Client id", &client.client_id),
        ("Client secret", &client.client_secret),
        ("Token URL", &client.token_url),
    ] {
        if given.is_empty() {
            return Err(Error::InvalidForm(format!("{label} is required")));
        }
    }
    let pending = PendingConnect {
        tenant_id: tenant_id.to_owned(),
        connection_id: crate::connect::new_connection_id(&manifest.name),
        connector: manifest.name.clone(),
        authorize_url: render_url(&flow.authorize_url, &settings_json)?,
        settings_json,
        reconnect: false,
    };
    start(state, pending, Some(client), headers).await
}

/// BeginOAuth for `pending`, remembered by its state; the redirect to the partner.
async fn start(
    state: &AppState,
    pending: PendingConnect,
    client: Option<OAuth2Client>,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let reuse_stored_client = client.is_none();
    let begun = state
        .mesh
        .oauth_for(&pending.tenant_id)
        .begin_o_auth(with_timeout(BeginOAuthRequest {
            connection_id: pending.connection_id.clone(),
            connector: pending.connector.clone(),
            client,
            authorize_url: pending.authorize_url.clone(),
            redirect_uri: redirect_uri(state.public_url.as_deref(), headers)?,
            reuse_stored_client,
        }))
        .await
        .map_err(|status| Error::upstream("credentials", &status))?
        .into_inner();
    state.store.insert_connect(&begun.state, &pending).await?;
    tracing::info!(
        tenant_id = %pending.tenant_id,
        connection_id = %pending.connection_id,
        connector = %pending.connector,
        reconnect = pending.reconnect,
        "sent the customer to the partner to consent"
    );
    Ok(redirect_to(&begun.authorize_url))
}

/// The query of the partner's redirect back.
#[derive(Debug, Deserialize)]
pub struct Callback {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    error: String,
}

/// `GET /oauth/callback`: finishes the connect the state names.
pub async fn callback(State(state): State<AppState>, Query(query): Query<Callback>) -> Response {
    match complete(&state, &query).await {
        Ok(pending) => {
            let context = context! {
                connector => pending.connector,
                connection_id => pending.connection_id,
            };
            match state.templates.render("connected.html", context) {
                Ok(body) => page(StatusCode::OK, body),
                Err(error) => message_page(&state.templates, &error),
            }
        }
        Err(error) => message_page(&state.templates, &error),
    }
}

async fn complete(state: &AppState, query: &Callback) -> Result<PendingConnect, Error> {
    let Some(pending) = state.store.take_connect(&query.state).await? else {
        return Err(Error::ConnectExpired);
    };
    let tenant_id = pending.tenant_id.as_str();
    state
        .mesh
        .oauth_for(tenant_id)
        .complete_o_auth(with_timeout(CompleteOAuthRequest {
            state: query.state.clone(),
            code: query.code.clone(),
            error: query.error.clone(),
        }))
        .await
        .map_err(|status| match reason_of(&status).as_deref() {
            Some("OAUTH_DENIED" | "CREDENTIALS_REJECTED") => Error::ConnectDenied,
            Some("OAUTH_STATE_INVALID") => Error::ConnectExpired,
            _ => Error::upstream("credentials", &status),
        })?;
    state.store.remember_oauth_integration(&pending).await?;
    let mut sync = state.mesh.sync_for(tenant_id);
    if !pending.reconnect {
        sync.create_sync(with_timeout(CreateSyncRequest {
            connection_id: pending.connection_id.clone(),
            connector: pending.connector.clone(),
            settings_json: pending.settings_json.clone(),
            streams: Vec::new(),
            interval_seconds: DEFAULT_INTERVAL_SECONDS,
        }))
        .await
        .map_err(|status| Error::upstream("sync", &status))?;
    }
    tracing::info!(tenant_id, connection_id = %pending.connection_id, reconnect = pending.reconnect, "integration connected through oauth");
    // As after any connect: the first run now; the schedule catches up if it cannot start.
    if let Err(status) = sync
        .trigger_run(with_timeout(TriggerRunRequest {
            connection_id: pending.connection_id.clone(),
        }))
        .await
    {
        tracing::warn!(code = ?status.code(), message = status.message(), "first run did not start");
    }
    Ok(pending)
}

/// `POST /integrations/{id}/reconnect`: consent again at the partner for an OAuth-connected
/// integration; other integrations get their credentials form.
pub async fn reconnect(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return message_page(&state.templates, &error);
    }
    match begin_reconnect(&state, &tenant_id, &id, &headers).await {
        Ok(response) => response,
        Err(error) => message_page(&state.templates, &error),
    }
}

async fn begin_reconnect(
    state: &AppState,
    tenant_id: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    // Another tenant's integration is not found, whatever the OAuth table holds.
    let integration = crate::integrations::get(&state.mesh, tenant_id, id).await?;
    let Some((connector, authorize_url)) = state.store.oauth_integration(tenant_id, id).await?
    else {
        // Not connected through OAuth: type the credentials again.
        return Ok(redirect_to(&format!(
            "/connect/{}?reconnect={}",
            encode(&integration.connector),
            encode(id)
        )));
    };
    manifest(state, &connector).await?;
    let pending = PendingConnect {
        tenant_id: tenant_id.to_owned(),
        connection_id: id.to_owned(),
        connector,
        settings_json: String::new(),
        authorize_url,
        reconnect: true,
    };
    start(state, pending, None, headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_is_under_the_public_origin_when_there_is_one() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "10.0.0.7:8080".parse().unwrap());
        assert_eq!(
            redirect_uri(Some("https://plugboard.example.com"), &headers).unwrap(),
            "https://plugboard.example.com/oauth/callback"
        );
        assert_eq!(
            redirect_uri(None, &headers).unwrap(),
            "http://10.0.0.7:8080/oauth/callback"
        );
        headers.insert(HOST, "evil.example/..".parse().unwrap());
        assert!(redirect_uri(None, &headers).is_err());
    }
}
