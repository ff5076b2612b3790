//! A sync definition checked against its connector's manifest in the registry before it is
//! stored, so a definition that cannot run is refused when it is made, not at its first run.
//!
//! The connector must have registered (its manifest stays in the registry when no instance is
//! live), every stream the definition names must be one the manifest offers, and the settings
//! must pass the manifest's settings schema (JSON Schema), each refusal named. A definition the
//! registry cannot be asked about is refused as unavailable, never stored unchecked.

use std::time::Duration;

use jsonschema::error::ValidationErrorKind;
use plugboard_proto::error::ErrorKind;
use plugboard_proto::registry::v1::{ConnectorManifest, GetConnectorRequest};
use serde_json::Value;

use crate::error::Error;
use crate::mesh::Mesh;

/// How long the registry may take to answer; the caller of `CreateSync` waits for it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing a settings schema refuses: the setting (`a.b` below the settings object for a
/// nested one, `settings_json` for the object itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// `field: message; field: message`, for the error's text.
pub(crate) fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Streams as a list for the error's text.
pub(crate) fn list_streams(streams: &[String]) -> String {
    if streams.is_empty() {
        "no streams".to_owned()
    } else {
        streams.join(", ")
    }
}

/// Asks the registry for `connector`'s manifest and checks `streams` and `settings` with it.
pub async fn against_registry(
    mesh: &Mesh,
    connector: &str,
    streams: &[String],
    settings: &Value,
) -> Result<(), Error> {
    let manifest = manifest_of(mesh, connector).await?;
    against_manifest(&manifest, streams, settings)
}

/// Checks `streams` (empty: every stream) and `settings` with a connector's manifest.
pub fn against_manifest(
    manifest: &ConnectorManifest,
    streams: &[String],
    settings: &Value,
) -> Result<(), Error> {
    let offered: Vec<String> = manifest
        .streams
        .iter()
        .map(|stream| stream.name.clone())
        .collect();
    let mut not_offered: Vec<String> = Vec::new();
    for stream in streams {
        if !offered.contains(stream) && !not_offered.contains(stream) {
            not_offered.push(stream.clone());
        }
    }
    if !not_offered.is_empty() {
        return Err(Error::StreamsNotOffered {
            connector: manifest.name.clone(),
            streams: not_offered,
            offered,
        });
    }
    check_settings(manifest, settings)
}

async fn manifest_of(mesh: &Mesh, connector: &str) -> Result<ConnectorManifest, Error> {
    let mut request = tonic::Request::new(GetConnectorRequest {
        connector: connector.to_owned(),
    });
    request.set_timeout(LOOKUP_TIMEOUT);
    // The header bounds the registry's work; this bounds a registry that never answers.
    let answer = tokio::time::timeout(LOOKUP_TIMEOUT, mesh.registry().get_connector(request))
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "no answer to GetConnector within {LOOKUP_TIMEOUT:?}"
            )))
        });
    match answer {
        Ok(answer) => answer
            .into_inner()
            .connector
            .and_then(|entry| entry.manifest)
            .ok_or_else(|| Error::Dependency {
                service: "registry",
                kind: ErrorKind::Internal,
                reason: None,
                message: format!("GetConnector answered no manifest for {connector}"),
            }),
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(Error::ConnectorNotRegistered {
                connector: connector.to_owned(),
            })
        }
        // Unreachable or slow is retryable and leaves as UNAVAILABLE (see `error`).
        Err(status) => Err(Error::dependency("registry", &status)),
    }
}

/// Validates `settings` with the manifest's settings schema; an empty schema takes any object.
fn check_settings(manifest: &ConnectorManifest, settings: &Value) -> Result<(), Error> {
    let schema_text = manifest.settings_schema_json.trim();
    if schema_text.is_empty() {
        return Ok(());
    }
    let unusable = |reason: String| Error::SettingsSchemaUnusable {
        connector: manifest.name.clone(),
        reason,
    };
    let schema: Value = serde_json::from_str(schema_text)
        .map_err(|error| unusable(format!("not JSON: {error}")))?;
    // Offline: a `$ref` to a file or a URL in a registered schema is refused, not fetched by
    // the sync service.
    let validator = jsonschema::options()
        .offline()
        .build(&schema)
        .map_err(|error| unusable(error.to_string()))?;
    let violations: Vec<Violation> = validator
        .iter_errors(settings)
        .flat_map(|error| violations_of(&error))
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    Err(Error::SettingsRefused {
        connector: manifest.name.clone(),
        violations,
    })
}

/// The settings one validation error is about: a missing or unknown property is named itself,
/// not by the object that lacks or has it.
fn violations_of(error: &jsonschema::ValidationError<'_>) -> Vec<Violation> {
    let at = field_of_pointer(error.instance_path().as_str());
    let below = |name: &str| match &at {
        Some(parent) => format!("{parent}.{name}"),
        None => name.to_owned(),
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => vec![Violation {
            field: below(property.as_str().unwrap_or_default()),
            message: "is required".to_owned(),
        }],
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| Violation {
                field: below(name),
                message: "is not a setting the connector takes".to_owned(),
            })
            .collect(),
        // Masked: the message says what is wrong without repeating the value.
        _ => vec![Violation {
            field: at.unwrap_or_else(|| "settings_json".to_owned()),
            message: error.masked().to_string(),
        }],
    }
}

/// `/a/b` as `a.b`; None for the settings object itself.
fn field_of_pointer(pointer: &str) -> Option<String> {
    let path = pointer.trim_start_matches('/');
    (!path.is_empty()).then(|| path.replace('/', "."))
}

#[cfg(test)]
mod tests {
    use plugboard_proto::registry::v1::StreamInfo;
    use serde_json::json;

    use super::*;

    fn manifest(schema: Value) -> ConnectorManifest {
        ConnectorManifest {
            name: "board".to_owned(),
            streams: ["Candidate", "JobOrder"]
                .into_iter()
                .map(|name| StreamInfo {
                    name: name.to_owned(),
                    entity: "candidate".to_owned(),
                    cursor_field: String::new(),
                })
                .collect(),
            settings_schema_json: schema.to_string(),
            ..ConnectorManifest::default()
        }
    }

    fn schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["base_url"],
            "properties": {
                "base_url": {"type": "string", "pattern": "^https?://"},
                "page_limit": {"type": "integer", "minimum": 1},
                "paging": {
                    "type": "object",
                    "properties": {"size": {"type": "integer"}}
                }
            },
            "additionalProperties": false
        })
    }

    fn violations(settings: Value) -> Vec<(String, String)> {
        match against_manifest(&manifest(schema()), &[], &settings) {
            Err(Error::SettingsRefused { violations, .. }) => violations
                .into_iter()
                .map(|violation| (violation.field, violation.message))
                .collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn fitting_settings_and_offered_streams_pass() {
        let streams = vec!["JobOrder".to_owned()];
        let settings = json!({"base_url": "https://x.example", "paging": {"size": 5}});
        against_manifest(&manifest(schema()), &streams, &settings).unwrap();
        // No schema: any object.
        let mut open = manifest(Value::Null);
        open.settings_schema_json = String::new();
        against_manifest(&open, &[], &json!({"a": 1})).unwrap();
    }

    #[test]
    fn each_refused_setting_is_named() {
        let found = violations(json!({"page_limit": 0, "extra": true, "paging": {"size": "x"}}));
        let fields: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
        for expected in ["base_url", "extra", "page_limit", "paging.size"] {
            assert!(fields.contains(&expected), "{expected} in {found:?}");
        }
        let (_, message) = found.iter().find(|(field, _)| field == "base_url").unwrap();
        assert_eq!(message, "is required");
        assert_eq!(
            violations(json!([]))[0].0,
            "settings_json",
            "the object itself"
        );
    }

    #[test]
    fn streams_not_offered_are_named() {
        let streams = vec!["Candidate".to_owned(), "Invoice".to_owned()];
        let error = against_manifest(
            &manifest(schema()),
            &streams,
            &json!({"base_url": "https://x"}),
        )
        .unwrap_err();
        let Error::StreamsNotOffered {
            streams, offered, ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(streams, &["Invoice"]);
        assert_eq!(offered, &["Candidate", "JobOrder"]);
        assert!(error.to_string().contains("Invoice"), "{error}");
    }

    #[test]
    fn a_schema_that_cannot_be_used_is_the_connectors_fault() {
        let mut broken = manifest(Value::Null);
        broken.settings_schema_json = "{not json".to_owned();
        let error = against_manifest(&broken, &[], &json!({})).unwrap_err();
        assert!(
            matches!(error, Error::SettingsSchemaUnusable { .. }),
            "{error}"
        );
        // A reference the sync service would have to fetch is refused, not fetched.
        let remote = manifest(json!({"$ref": "https://schemas.example/settings.json"}));
        let error = against_manifest(&remote, &[], &json!({})).unwrap_err();
        assert!(
            matches!(error, Error::SettingsSchemaUnusable { .. }),
            "{error}"
        );
    }
}
