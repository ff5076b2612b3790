//! The gateway's configuration, read once at start.

use std::net::SocketAddr;

use plugboard_runtime::config::{ConfigError, Env};
use plugboard_runtime::identity::MeshKey;
use secrecy::SecretString;

/// Where the gateway listens, its database, its mesh key and the services it fronts.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PLUGBOARD_LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen_addr: SocketAddr,
    /// `PLUGBOARD_DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// `PLUGBOARD_MESH_KEY` or `PLUGBOARD_MESH_KEY_FILE`, at least 32 characters.
    pub mesh_key: SecretString,
    /// gRPC addresses (`host:port`) of the services, `PLUGBOARD_<SERVICE>_ADDR`.
    pub credentials_addr: String,
    pub mapping_addr: String,
    pub sync_addr: String,
    pub health_addr: String,
    pub registry_addr: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.parse_or(
            "PLUGBOARD_LISTEN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        )?;
        let database_url = env
            .required(
                "PLUGBOARD_DATABASE_URL",
                "sqlite://<dir>/gateway.db?mode=rwc or postgres://user@host/db",
            )?
            .to_owned();
        let mesh_key = env.secret(
            "PLUGBOARD_MESH_KEY",
            "the key shared by the mesh to sign service tokens (>= 32 characters)",
        )?;
        // Fail at start, not on the first request.
        MeshKey::new(&mesh_key).map_err(|e| ConfigError::Invalid {
            key: "PLUGBOARD_MESH_KEY".to_owned(),
            value: "[redacted]".to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Config {
            listen_addr,
            database_url,
            mesh_key,
            credentials_addr: address(env, "PLUGBOARD_CREDENTIALS_ADDR")?,
            mapping_addr: address(env, "PLUGBOARD_MAPPING_ADDR")?,
            sync_addr: address(env, "PLUGBOARD_SYNC_ADDR")?,
            health_addr: address(env, "PLUGBOARD_HEALTH_ADDR")?,
            registry_addr: address(env, "PLUGBOARD_REGISTRY_ADDR")?,
        })
    }
}

/// A required `host:port`.
fn address(env: &Env, key: &str) -> Result<String, ConfigError> {
    let value = env.required(key, "the service's gRPC address as host:port")?;
    let valid = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: "expected host:port".to_owned(),
        });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("PLUGBOARD_DATABASE_URL", "sqlite://x/gateway.db?mode=rwc"),
            (
                "PLUGBOARD_MESH_KEY",
                "a-test-mesh-key-of-at-least-32-bytes!!",
            ),
            ("PLUGBOARD_CREDENTIALS_ADDR", "127.0.0.1:50051"),
            ("PLUGBOARD_MAPPING_ADDR", "127.0.0.1:50052"),
            ("PLUGBOARD_SYNC_ADDR", "127.0.0.1:50053"),
            ("PLUGBOARD_HEALTH_ADDR", "127.0.0.1:50054"),
            ("PLUGBOARD_REGISTRY_ADDR", "registry:50055"),
        ]
    }

    #[test]
    fn reads_a_complete_environment_with_defaults() {
        let config = Config::from_env(&Env::from_pairs(complete())).unwrap();
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.registry_addr, "registry:50055");
    }

    #[test]
    fn missing_address_is_named() {
        let pairs = complete()
            .into_iter()
            .filter(|(k, _)| *k != "PLUGBOARD_SYNC_ADDR");
        let error = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("PLUGBOARD_SYNC_ADDR is required")
        );
    }

    #[test]
    fn bad_address_and_weak_key_are_refused_without_echoing_the_key() {
        let mut pairs = complete();
        pairs.push(("PLUGBOARD_HEALTH_ADDR", "nohost"));
        let error = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(error.to_string().contains("PLUGBOARD_HEALTH_ADDR"));

        let mut pairs = complete();
        pairs.push(("PLUGBOARD_MESH_KEY", "short-secret"));
        let error = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(error.to_string().contains("PLUGBOARD_MESH_KEY"));
        assert!(!error.to_string().contains("short-secret"));
    }
}
