//! What the connector tells the registry about itself.

use plugboard_proto::registry::v1::{ConnectorManifest, MappingSpecFile, StreamInfo};

use crate::access::CONNECTOR;
use crate::streams::STREAMS;

/// The mapping specs, written by the mapping team, compiled in so the binary is self-contained.
const MAPPING_SPECS: [(&str, &str); 4] = [
    (
        "job.inbound.yaml",
        include_str!("../mappings/job.inbound.yaml"),
    ),
    (
        "candidate.inbound.yaml",
        include_str!("../mappings/candidate.inbound.yaml"),
    ),
    (
        "application.inbound.yaml",
        include_str!("../mappings/application.inbound.yaml"),
    ),
    (
        "placement.inbound.yaml",
        include_str!("../mappings/placement.inbound.yaml"),
    ),
];

/// JSON Schema of `ConnectionRef.settings_json`.
pub const SETTINGS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Bullhorn connection settings",
  "type": "object",
  "required": ["auth_url", "login_url"],
  "properties": {
    "auth_url": {
      "type": "string",
      "format": "uri",
      "pattern": "^https?://",
      "description": "OAuth base of the customer's Bullhorn data centre, e.g. https://auth-east.bullhornstaffing.com"
    },
    "login_url": {
      "type": "string",
      "format": "uri",
      "pattern": "^https?://",
      "description": "REST login base of the customer's Bullhorn data centre, e.g. https://rest-east.bullhornstaffing.com"
    }
  },
  "additionalProperties": false
}"#;

pub fn manifest() -> ConnectorManifest {
    ConnectorManifest {
        name: CONNECTOR.to_owned(),
        display_name: "Bullhorn".to_owned(),
        category: "ats".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        streams: STREAMS
            .iter()
            .map(|stream| StreamInfo {
                name: stream.name.to_owned(),
                entity: stream.entity.to_owned(),
                cursor_field: stream.cursor_field.to_owned(),
            })
            .collect(),
        mapping_specs: MAPPING_SPECS
            .iter()
            .map(|(name, yaml)| MappingSpecFile {
                name: (*name).to_owned(),
                yaml: (*yaml).to_owned(),
            })
            .collect(),
        settings_schema_json: SETTINGS_SCHEMA.to_owned(),
        credential_kind: "oauth2_client".to_owned(),
        oauth_authorization: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_every_stream_and_spec() {
        let manifest = manifest();
        assert_eq!(manifest.streams.len(), 4);
        assert_eq!(manifest.mapping_specs.len(), 4);
        assert!(
            manifest
                .mapping_specs
                .iter()
                .all(|spec| !spec.yaml.trim().is_empty())
        );
        let schema: serde_json::Value =
            serde_json::from_str(&manifest.settings_schema_json).unwrap();
        assert_eq!(
            schema["required"],
            serde_json::json!(["auth_url", "login_url"])
        );
    }
}
