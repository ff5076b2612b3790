//! The registry's configuration, read once at start.

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

/// Port 50055 on every interface.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 50055);
/// Seconds without a heartbeat after which an instance is gone.
pub const DEFAULT_LIVENESS_TTL: Duration = Duration::from_secs(15);
/// How long a gone instance stays listed before it is pruned.
pub const DEFAULT_GONE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The PostgreSQL schema the registry's tables live in (ignored on SQLite).
pub const DEFAULT_DATABASE_SCHEMA: &str = "registry";

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// PostgreSQL schema; `registry` unless tests or a shared database need another.
    pub database_schema: String,
    /// Signs and verifies service tokens; at least 32 characters.
    pub mesh_key: SecretString,
    /// An instance without a heartbeat for this long is gone. Whole seconds, at least one.
    pub liveness_ttl: Duration,
    /// Gone instances are pruned this long after their last heartbeat (each connector keeps
    /// its most recent one). Whole hours.
    pub gone_retention: Duration,
}

impl Config {
    /// A config with the default listen address, schema and liveness TTL.
    pub fn new(database_url: impl Into<String>, mesh_key: SecretString) -> Config {
        Config {
            listen_addr: DEFAULT_LISTEN_ADDR,
            database_url: database_url.into(),
            database_schema: DEFAULT_DATABASE_SCHEMA.to_owned(),
            mesh_key,
            liveness_ttl: DEFAULT_LIVENESS_TTL,
            gone_retention: DEFAULT_GONE_RETENTION,
        }
    }

    /// Reads `PLUGBOARD_LISTEN_ADDR`, `PLUGBOARD_DATABASE_URL`, `PLUGBOARD_DATABASE_SCHEMA`,
    /// `PLUGBOARD_MESH_KEY` (or `PLUGBOARD_MESH_KEY_FILE`),
    /// `PLUGBOARD_REGISTRY_LIVENESS_TTL_SECONDS` and `PLUGBOARD_REGISTRY_GONE_RETENTION_HOURS`.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.listen_addr(DEFAULT_LISTEN_ADDR)?;
        let database_url = env
            .required(
                "PLUGBOARD_DATABASE_URL",
                "set it to postgres://user@host:5432/db or sqlite://path/registry.db?mode=rwc",
            )?
            .to_owned();
        let database_schema = env
            .get("PLUGBOARD_DATABASE_SCHEMA")
            .unwrap_or(DEFAULT_DATABASE_SCHEMA)
            .to_owned();
        let mesh_key = env.mesh_key()?;
        let ttl_seconds: u32 = env.parse_or(
            "PLUGBOARD_REGISTRY_LIVENESS_TTL_SECONDS",
            DEFAULT_LIVENESS_TTL.as_secs() as u32,
        )?;
        if ttl_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "PLUGBOARD_REGISTRY_LIVENESS_TTL_SECONDS".to_owned(),
                value: "0".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        let retention_hours: u32 = env.parse_or(
            "PLUGBOARD_REGISTRY_GONE_RETENTION_HOURS",
            (DEFAULT_GONE_RETENTION.as_secs() / 3600) as u32,
        )?;
        Ok(Config {
            listen_addr,
            database_url,
            database_schema,
            mesh_key,
            liveness_ttl: Duration::from_secs(u64::from(ttl_seconds)),
            gone_retention: Duration::from_secs(u64::from(retention_hours) * 3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-test-mesh-key-of-at-least-32-bytes!!";

    #[test]
    fn defaults_apply_and_database_url_is_required() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", KEY),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.listen_addr, DEFAULT_LISTEN_ADDR);
        assert_eq!(config.liveness_ttl, Duration::from_secs(15));
        assert_eq!(config.database_schema, "registry");

        let env = Env::from_pairs([("PLUGBOARD_MESH_KEY", KEY)]);
        let error = Config::from_env(&env).unwrap_err();
        assert!(error.to_string().contains("PLUGBOARD_DATABASE_URL"));
    }

    #[test]
    fn bad_ttl_and_weak_key_are_refused_without_echoing_the_key() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", KEY),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_REGISTRY_LIVENESS_TTL_SECONDS", "0"),
        ]);
        let error = Config::from_env(&env).unwrap_err();
        assert!(error.to_string().contains("LIVENESS_TTL_SECONDS"));

        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "short-secret"),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_MESH_KEY"));
        assert!(!error.contains("short-secret"));
    }
}
