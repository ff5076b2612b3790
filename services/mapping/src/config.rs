//! The mapping service's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

/// Where the mapping service listens when `PLUGBOARD_LISTEN_ADDR` is unset.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 50052);

#[derive(Debug, Clone)]
pub struct Config {
    /// `PLUGBOARD_LISTEN_ADDR`, default `0.0.0.0:50052`.
    pub listen_addr: SocketAddr,
    /// `PLUGBOARD_MESH_KEY` or `PLUGBOARD_MESH_KEY_FILE`, at least 32 characters.
    pub mesh_key: SecretString,
    /// `PLUGBOARD_REGISTRY_ADDR` (`host:port`), where connector manifests and specs come from.
    pub registry_addr: String,
    /// `PLUGBOARD_DATABASE_URL`: where tenant overrides are stored.
    pub database_url: String,
    /// `PLUGBOARD_DATABASE_SCHEMA`, default `mapping`: the PostgreSQL schema.
    pub database_schema: String,
    /// `PLUGBOARD_MAPPING_SPEC_POLL_SECONDS`, default 30, 0 to turn it off: how often the
    /// registry is asked for new versions of the connectors tenants override, so their
    /// overrides are checked against new specs before a sync needs them.
    pub spec_poll_interval: Duration,
}

/// How often new connector versions are looked for when the variable is unset.
pub const DEFAULT_SPEC_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The PostgreSQL schema when `PLUGBOARD_DATABASE_SCHEMA` is unset.
pub const DEFAULT_DATABASE_SCHEMA: &str = "mapping";

impl Config {
    /// For in-process use (dev mode, tests); `run` checks the mesh key.
    pub fn new(
        listen_addr: SocketAddr,
        mesh_key: SecretString,
        registry_addr: String,
        database_url: String,
    ) -> Config {
        Config {
            listen_addr,
            mesh_key,
            registry_addr,
            database_url,
            database_schema: DEFAULT_DATABASE_SCHEMA.to_owned(),
            spec_poll_interval: DEFAULT_SPEC_POLL_INTERVAL,
        }
    }

    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.listen_addr(DEFAULT_LISTEN_ADDR)?;
        let mesh_key = env.mesh_key()?;
        let registry_addr = env
            .required(
                "PLUGBOARD_REGISTRY_ADDR",
                "the registry's gRPC address (host:port), where mapping specs come from",
            )?
            .to_owned();
        let database_url = env
            .required(
                "PLUGBOARD_DATABASE_URL",
                "where tenant overrides are stored: postgres://user@host:5432/db or \
                 sqlite://path/mapping.db?mode=rwc",
            )?
            .to_owned();
        let poll_seconds: u64 = env.parse_or(
            "PLUGBOARD_MAPPING_SPEC_POLL_SECONDS",
            DEFAULT_SPEC_POLL_INTERVAL.as_secs(),
        )?;
        let mut config = Config::new(listen_addr, mesh_key, registry_addr, database_url);
        if let Some(schema) = env.get("PLUGBOARD_DATABASE_SCHEMA") {
            schema.clone_into(&mut config.database_schema);
        }
        config.spec_poll_interval = Duration::from_secs(poll_seconds);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-test-mesh-key-of-at-least-32-bytes!!";

    #[test]
    fn reads_defaults_and_requires_the_registry() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", KEY),
            ("PLUGBOARD_REGISTRY_ADDR", "r:50055"),
            ("PLUGBOARD_DATABASE_URL", "sqlite:///tmp/m.db"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.listen_addr, DEFAULT_LISTEN_ADDR);
        assert_eq!(config.registry_addr, "r:50055");
        assert_eq!(config.database_url, "sqlite:///tmp/m.db");
        assert_eq!(config.database_schema, "mapping");
        assert_eq!(config.spec_poll_interval, DEFAULT_SPEC_POLL_INTERVAL);

        let error = Config::from_env(&Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", KEY),
            ("PLUGBOARD_REGISTRY_ADDR", "r:50055"),
            ("PLUGBOARD_DATABASE_URL", "sqlite:///tmp/m.db"),
            ("PLUGBOARD_MAPPING_SPEC_POLL_SECONDS", "soon"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("PLUGBOARD_MAPPING_SPEC_POLL_SECONDS"),
            "{error}"
        );

        let error = Config::from_env(&Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", KEY),
            ("PLUGBOARD_REGISTRY_ADDR", "r:50055"),
        ]))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("PLUGBOARD_DATABASE_URL is required")
        );

        let error = Config::from_env(&Env::from_pairs([("PLUGBOARD_MESH_KEY", KEY)])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("PLUGBOARD_REGISTRY_ADDR is required")
        );
    }

    #[test]
    fn weak_mesh_key_is_refused_without_echoing_it() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "short-secret"),
            ("PLUGBOARD_REGISTRY_ADDR", "r:1"),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_MESH_KEY"));
        assert!(!error.contains("short-secret"));
    }
}
