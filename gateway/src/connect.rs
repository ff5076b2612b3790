//! Connecting an integration from the registry's catalogue: the catalogue, a form generated
//! from the connector's manifest ([`crate::forms`]), and the post that stores the credential
//! (credentials `PutCredential`) and defines the sync (sync `CreateSync`), both signed for the
//! session's tenant.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use rand::RngCore;
use serde::Deserialize;

use plugboard_proto::credentials::v1::PutCredentialRequest;
use plugboard_proto::registry::v1::ConnectorManifest;
use plugboard_proto::sync::v1::{CreateSyncRequest, TriggerRunRequest};

use crate::dashboard::{SessionTenant, check_same_origin, message_page, page, redirect_to};
use crate::detail::encode;
use crate::error::Error;
use crate::forms::{self, Field};
use crate::mesh::CALL_TIMEOUT;
use crate::routes::AppState;

/// Seconds between scheduled runs of a new integration.
pub(crate) const DEFAULT_INTERVAL_SECONDS: u32 = 300;

pub(crate) fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

async fn catalogue(state: &AppState) -> Result<Vec<ConnectorManifest>, Error> {
    let mut manifests: Vec<ConnectorManifest> = state.mesh.manifests().await?.to_vec();
    manifests.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(manifests)
}

pub(crate) async fn manifest(
    state: &AppState,
    connector: &str,
) -> Result<ConnectorManifest, Error> {
    catalogue(state)
        .await?
        .into_iter()
        .find(|manifest| manifest.name == connector)
        .ok_or_else(|| Error::ConnectorNotFound(connector.to_owned()))
}

/// `GET /connect`: the connectors a tenant can connect.
pub async fn list(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
) -> Response {
    let result = catalogue(&state).await.and_then(|manifests| {
        let entries: Vec<_> = manifests
            .into_iter()
            .map(|manifest| {
                context! {
                    href => format!("/connect/{}", encode(&manifest.name)),
                    display_name => manifest.display_name,
                    category => manifest.category,
                    version => manifest.version,
                }
            })
            .collect();
        state.templates.render(
            "catalogue.html",
            context! { tenant_id => tenant_id, connectors => entries },
        )
    });
    match result {
        Ok(body) => page(StatusCode::OK, body),
        Err(error) => message_page(&state.templates, &error),
    }
}

/// A new connection id: the connector's name and a random suffix.
pub(crate) fn new_connection_id(connector: &str) -> String {
    let mut suffix = [0u8; 4];
    rand::rng().fill_bytes(&mut suffix);
    format!("{connector}-{}", hex::encode(suffix))
}

/// `?reconnect=<connection id>`: the form stores new credentials for an existing integration.
#[derive(Debug, Default, Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    reconnect: Option<String>,
}

fn form_page(
    state: &AppState,
    tenant_id: &str,
    manifest: &ConnectorManifest,
    error: Option<String>,
    values: &HashMap<String, String>,
    reconnect: Option<&str>,
) -> Result<String, Error> {
    let oauth = manifest.oauth_authorization.as_ref();
    // Reconnecting changes the credentials only; the settings stay as they are.
    let settings = match reconnect {
        Some(_) => Vec::new(),
        None => forms::settings_fields(&manifest.settings_schema_json)?,
    };
    let credentials = match oauth {
        Some(flow) => forms::oauth_client_fields(flow.token_url.is_empty()),
        None => forms::credential_fields(&manifest.credential_kind)?,
    };
    let action = match reconnect {
        Some(id) => format!(
            "/connect/{}?reconnect={}",
            encode(&manifest.name),
            encode(id)
        ),
        None => format!("/connect/{}", encode(&manifest.name)),
    };
    // Secrets are never echoed back into the form after a failed post.
    let with_values = |fields: Vec<Field>, keep: bool| -> Vec<Field> {
        fields
            .into_iter()
            .map(|mut field| {
                if keep && let Some(value) = values.get(&field.name) {
                    field.default.clone_from(value);
                }
                if field.input == "password" {
                    field.default.clear();
                }
                field
            })
            .collect()
    };
    state.templates.render(
        "connect.html",
        context! {
            tenant_id => tenant_id,
            connector => manifest.name,
            display_name => manifest.display_name,
            action => action,
            oauth => oauth.is_some(),
            reconnect => reconnect.is_some(),
            settings => with_values(settings, true),
            credentials => with_values(credentials, true),
            error => error,
        },
    )
}

/// `GET /connect/{connector}`: the form generated from the manifest.
pub async fn form(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(connector): Path<String>,
    Query(query): Query<FormQuery>,
) -> Response {
    let reconnect = query.reconnect.as_deref();
    let result = match manifest(&state, &connector).await {
        Ok(manifest) => form_page(
            &state,
            &tenant_id,
            &manifest,
            None,
            &HashMap::new(),
            reconnect,
        ),
        Err(error) => Err(error),
    };
    match result {
        Ok(body) => page(StatusCode::OK, body),
        Err(error) => message_page(&state.templates, &error),
    }
}

/// `POST /connect/{connector}`: stores the credential, defines the sync and starts a first run.
pub async fn submit(
    State(state): State<AppState>,
    SessionTenant(tenant_id): SessionTenant,
    Path(connector): Path<String>,
    Query(query): Query<FormQuery>,
    headers: HeaderMap,
    Form(posted): Form<HashMap<String, String>>,
) -> Response {
    if let Err(error) = check_same_origin(&headers) {
        return message_page(&state.templates, &error);
    }
    let manifest = match manifest(&state, &connector).await {
        Ok(manifest) => manifest,
        Err(error) => return message_page(&state.templates, &error),
    };
    let reconnect = query.reconnect.as_deref();
    let outcome = match reconnect {
        Some(id) => replace_credentials(&state, &tenant_id, &manifest, id, &posted).await,
        None if manifest.oauth_authorization.is_some() => {
            crate::oauth::begin(&state, &tenant_id, &manifest, &posted, &headers).await
        }
        None => connect(&state, &tenant_id, &manifest, &posted)
            .await
            .map(|id| redirect_to(&format!("/integrations/{}", encode(&id)))),
    };
    match outcome {
        Ok(response) => response,
        Err(error @ Error::InvalidForm(_)) => {
            let message = error.to_string();
            match form_page(
                &state,
                &tenant_id,
                &manifest,
                Some(message),
                &posted,
                reconnect,
            ) {
                Ok(body) => page(StatusCode::UNPROCESSABLE_ENTITY, body),
                Err(error) => message_page(&state.templates, &error),
            }
        }
        Err(error) => message_page(&state.templates, &error),
    }
}

/// Stores new credentials for one of the tenant's integrations and runs it.
async fn replace_credentials(
    state: &AppState,
    tenant_id: &str,
    manifest: &ConnectorManifest,
    connection_id: &str,
    posted: &HashMap<String, String>,
) -> Result<Response, Error> {
    let integration = crate::integrations::get(&state.mesh, tenant_id, connection_id).await?;
    if integration.connector != manifest.name {
        return Err(Error::IntegrationNotFound(connection_id.to_owned()));
    }
    let secret = forms::for_manifest(forms::secret(&manifest.credential_kind, posted)?, manifest);
    state
        .mesh
        .credentials_for(tenant_id)
        .put_credential(with_timeout(PutCredentialRequest {
            connection_id: connection_id.to_owned(),
            connector: manifest.name.clone(),
            secret: Some(secret),
        }))
        .await
        .map_err(|status| Error::upstream("credentials", &status))?;
    tracing::info!(
        tenant_id,
        connection_id,
        "integration reconnected with new credentials"
    );
    let run = state
        .mesh
        .sync_for(tenant_id)
        .trigger_run(with_timeout(TriggerRunRequest {
            connection_id: connection_id.to_owned(),
        }))
        .await;
    if let Err(status) = run {
        tracing::warn!(code = ?status.code(), message = status.message(), "run after reconnect did not start");
    }
    Ok(redirect_to(&format!(
        "/integrations/{}",
        encode(connection_id)
    )))
}

async fn connect(
    state: &AppState,
    tenant_id: &str,
    manifest: &ConnectorManifest,
    posted: &HashMap<String, String>,
) -> Result<String, Error> {
    let settings = forms::settings_fields(&manifest.settings_schema_json)?;
    let settings_json = forms::settings_json(&settings, posted)?;
    let secret = forms::for_manifest(forms::secret(&manifest.credential_kind, posted)?, manifest);
    let connection_id = new_connection_id(&manifest.name);

    state
        .mesh
        .credentials_for(tenant_id)
        .put_credential(with_timeout(PutCredentialRequest {
            connection_id: connection_id.clone(),
            connector: manifest.name.clone(),
            secret: Some(secret),
        }))
        .await
        .map_err(|status| Error::upstream("credentials", &status))?;
    let mut sync = state.mesh.sync_for(tenant_id);
    sync.create_sync(with_timeout(CreateSyncRequest {
        connection_id: connection_id.clone(),
        connector: manifest.name.clone(),
        settings_json,
        streams: Vec::new(),
        interval_seconds: DEFAULT_INTERVAL_SECONDS,
    }))
    .await
    .map_err(|status| Error::upstream("sync", &status))?;
    tracing::info!(tenant_id, connection_id = %connection_id, connector = %manifest.name, "integration connected");
    // The first run starts now rather than an interval from now; if it cannot start, the
    // schedule still runs it, so the connection stands.
    if let Err(status) = sync
        .trigger_run(with_timeout(TriggerRunRequest {
            connection_id: connection_id.clone(),
        }))
        .await
    {
        tracing::warn!(code = ?status.code(), message = status.message(), "first run did not start");
    }
    Ok(connection_id)
}
