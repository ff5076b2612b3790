//! Checking a registration before anything is stored, and the manifest's storage encoding.
//!
//! Manifests are stored as prost-encoded bytes in base64 text: portable across SQLite and
//! PostgreSQL, and new proto fields survive a round trip without a migration.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plugboard_proto::registry::v1::ConnectorManifest;
use prost::Message as _;

use crate::error::Error;

/// The categories a connector may declare, as documented in `registry.proto`.
pub const CATEGORIES: &[&str] = &[
    "ats",
    "vms",
    "cv_parsing",
    "job_distribution",
    "job_board",
    "payroll",
    "hris",
];

/// Checks the fields the registry relies on; the error names the first bad field.
pub fn validate(
    manifest: &ConnectorManifest,
    instance_id: &str,
    address: &str,
) -> Result<(), Error> {
    let invalid =
        |field: &'static str, problem: String| Error::InvalidRegistration { field, problem };

    let name_ok = !manifest.name.is_empty()
        && manifest
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(invalid(
            "manifest.name",
            format!(
                "must be lowercase letters, digits and hyphens, got {:?}",
                manifest.name
            ),
        ));
    }
    if !CATEGORIES.contains(&manifest.category.as_str()) {
        return Err(invalid(
            "manifest.category",
            format!(
                "must be one of {}, got {:?}",
                CATEGORIES.join(", "),
                manifest.category
            ),
        ));
    }
    if manifest.version.trim().is_empty() {
        return Err(invalid("manifest.version", "must not be empty".to_owned()));
    }
    if instance_id.trim().is_empty() {
        return Err(invalid("instance_id", "must not be empty".to_owned()));
    }
    if !is_host_port(address) {
        return Err(invalid(
            "address",
            format!("must be host:port, got {address:?}"),
        ));
    }
    Ok(())
}

/// `host:port` with a non-empty host (names, IPv4, or bracketed IPv6) and a port in 1..=65535.
fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|port| port != 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    port_ok && host_ok
}

/// True when version `a` is older than `b`. Dotted numeric parts compare as numbers
/// (`1.10.0` > `1.9.2`); anything else compares as text.
pub fn is_older(a: &str, b: &str) -> bool {
    let numeric = |version: &str| -> Option<Vec<u64>> {
        version
            .trim_start_matches('v')
            .split('.')
            .map(|part| part.parse::<u64>().ok())
            .collect()
    };
    match (numeric(a), numeric(b)) {
        (Some(a), Some(b)) => a < b,
        _ => a < b,
    }
}

pub fn encode(manifest: &ConnectorManifest) -> String {
    STANDARD.encode(manifest.encode_to_vec())
}

pub fn decode(connector: &str, text: &str) -> Result<ConnectorManifest, Error> {
    let corrupt = |detail: String| Error::CorruptManifest {
        connector: connector.to_owned(),
        detail,
    };
    let bytes = STANDARD.decode(text).map_err(|e| corrupt(e.to_string()))?;
    ConnectorManifest::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use plugboard_proto::registry::v1::{MappingSpecFile, StreamInfo};

    use super::*;

    fn manifest() -> ConnectorManifest {
        ConnectorManifest {
            name: "bullhorn".to_owned(),
            display_name: "Bullhorn".to_owned(),
            category: "ats".to_owned(),
            version: "1.2.0".to_owned(),
            streams: vec![StreamInfo {
                name: "JobOrder".to_owned(),
                entity: "job".to_owned(),
                cursor_field: "dateLastModified".to_owned(),
            }],
            mapping_specs: vec![MappingSpecFile {
                name: "job.inbound.yaml".to_owned(),
                yaml: "entity: job\n".to_owned(),
            }],
            settings_schema_json: "{}".to_owned(),
            credential_kind: "oauth2_client".to_owned(),
            oauth_authorization: None,
            receives_webhooks: false,
            client_secret_in_body: false,
        }
    }

    fn field_of(result: Result<(), Error>) -> &'static str {
        match result {
            Err(Error::InvalidRegistration { field, .. }) => field,
            other => panic!("expected an invalid registration, got {other:?}"),
        }
    }

    #[test]
    fn a_good_registration_passes() {
        validate(&manifest(), "i-1", "127.0.0.1:50061").unwrap();
        validate(&manifest(), "i-1", "connector-bullhorn:50061").unwrap();
        validate(&manifest(), "i-1", "[::1]:50061").unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut bad = manifest();
        bad.name = "Bull horn".to_owned();
        assert_eq!(field_of(validate(&bad, "i", "h:1")), "manifest.name");

        let mut bad = manifest();
        bad.category = "crm".to_owned();
        assert_eq!(field_of(validate(&bad, "i", "h:1")), "manifest.category");

        let mut bad = manifest();
        bad.version = " ".to_owned();
        assert_eq!(field_of(validate(&bad, "i", "h:1")), "manifest.version");

        assert_eq!(field_of(validate(&manifest(), "", "h:1")), "instance_id");
        for address in ["h", "h:0", ":80", "h:http", "h:70000", "[::1:80", "a b:80"] {
            assert_eq!(
                field_of(validate(&manifest(), "i", address)),
                "address",
                "{address}"
            );
        }
    }

    #[test]
    fn versions_compare_numerically_when_they_can() {
        assert!(is_older("1.9.2", "1.10.0"));
        assert!(!is_older("1.10.0", "1.9.2"));
        assert!(!is_older("2.0.0", "2.0.0"));
        assert!(is_older("v1", "v2"));
        assert!(is_older("2024-01-beta", "2024-02"));
    }

    #[test]
    fn manifests_round_trip_through_storage_text() {
        let original = manifest();
        let text = encode(&original);
        assert_eq!(decode("bullhorn", &text).unwrap(), original);
        assert!(matches!(
            decode("bullhorn", "not base64!"),
            Err(Error::CorruptManifest { .. })
        ));
    }
}
