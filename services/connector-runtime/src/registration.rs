//! What the registry is told about a manifest connector, and keeping it told: register,
//! heartbeat every ttl/3, register again when the registry forgot the instance, and keep
//! trying (never crash) while the registry is unreachable.

use std::time::Duration;

use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::registry::v1::{
    ConnectorManifest, HeartbeatRequest, MappingSpecFile, OAuthAuthorization, RegisterRequest,
    StreamInfo,
};
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::manifest::{Auth, ClientAuth, Loaded, SettingType};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(15);

/// The registry's view of a loaded connector folder.
pub fn registry_manifest(loaded: &Loaded) -> ConnectorManifest {
    let manifest = &loaded.manifest;
    ConnectorManifest {
        name: manifest.name.clone(),
        display_name: manifest.display_name.clone(),
        category: manifest.category.clone(),
        version: manifest.version.clone(),
        streams: manifest
            .streams
            .iter()
            .map(|(name, stream)| StreamInfo {
                name: name.clone(),
                entity: stream.entity.clone(),
                cursor_field: stream
                    .incremental
                    .as_ref()
                    .map(|incremental| incremental.field.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        mapping_specs: loaded
            .mappings
            .iter()
            .map(|(name, yaml)| MappingSpecFile {
                name: name.clone(),
                yaml: yaml.clone(),
            })
            .collect(),
        settings_schema_json: settings_schema(loaded).to_string(),
        credential_kind: manifest.credential_kind().to_owned(),
        oauth_authorization: oauth_authorization(&manifest.auth),
        receives_webhooks: manifest.webhooks.is_some(),
        client_secret_in_body: matches!(
            &manifest.auth,
            Auth::Oauth2ClientCredentials {
                client_auth: ClientAuth::Body,
                ..
            } | Auth::Oauth2AuthorizationCode {
                client_auth: ClientAuth::Body,
                ..
            }
        ),
    }
}

/// How the gateway connects a partner that uses OAuth2's authorization code flow.
fn oauth_authorization(auth: &Auth) -> Option<OAuthAuthorization> {
    match auth {
        Auth::Oauth2AuthorizationCode {
            authorize_url,
            token_url,
            scopes,
            ..
        } => Some(OAuthAuthorization {
            authorize_url: authorize_url.clone(),
            token_url: token_url.clone().unwrap_or_default(),
            scopes: scopes.clone(),
        }),
        _ => None,
    }
}

/// JSON Schema of the connection settings, from the manifest's `settings`.
pub fn settings_schema(loaded: &Loaded) -> Value {
    let manifest = &loaded.manifest;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, setting) in &manifest.settings {
        let mut property = match setting.kind {
            SettingType::String => json!({"type": "string"}),
            SettingType::Url => json!({"type": "string", "format": "uri", "pattern": "^https?://"}),
            SettingType::Integer => json!({"type": "integer"}),
            SettingType::Boolean => json!({"type": "boolean"}),
        };
        if let Some(description) = &setting.description {
            property["description"] = json!(description);
        }
        match &setting.default {
            Some(default) => property["default"] = default.clone(),
            None => required.push(name.clone()),
        }
        properties.insert(name.clone(), property);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{} connection settings", manifest.display_name),
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// Runs until the task is aborted.
pub async fn maintain(
    channel: Channel,
    key: MeshKey,
    manifest: ConnectorManifest,
    instance_id: String,
    address: String,
) {
    let connector = manifest.name.clone();
    let identity = MeshCredentials::new(
        key,
        Caller {
            subject: format!("connector:{connector}"),
            tenant: None,
            connector: Some(connector.clone()),
        },
    );
    let mut client = RegistryServiceClient::with_interceptor(channel, identity);
    let mut retry = FIRST_RETRY;
    let mut failures = 0u32;
    loop {
        let request = RegisterRequest {
            manifest: Some(manifest.clone()),
            instance_id: instance_id.clone(),
            address: address.clone(),
        };
        let ttl = match client.register(request).await {
            Ok(response) => response.into_inner().liveness_ttl_seconds,
            Err(status) => {
                failures += 1;
                // Say it once loudly, then quietly: the registry may simply start later.
                if failures == 1 {
                    tracing::warn!(code = ?status.code(), message = status.message(), "cannot register with the registry yet, retrying");
                } else {
                    tracing::debug!(code = ?status.code(), failures, "registration still failing");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        tracing::info!(connector = %connector, instance_id = %instance_id, address = %address, ttl, "registered with the registry");
        retry = FIRST_RETRY;
        failures = 0;
        let period = (Duration::from_secs(u64::from(ttl)) / 3).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(period).await;
            let heartbeat = HeartbeatRequest {
                instance_id: instance_id.clone(),
            };
            match client.heartbeat(heartbeat).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {
                    tracing::info!("the registry forgot this instance, registering again");
                    break;
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "heartbeat failed");
                }
            }
        }
    }
}
