//! The health service's configuration, read once at start.

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

use crate::rules::Targets;

/// Port 50054 on every interface.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 50054);
/// The PostgreSQL schema the health tables live in (ignored on SQLite).
pub const DEFAULT_DATABASE_SCHEMA: &str = "health";
/// How often every integration is re-assessed, so silence and late data become status
/// changes (and incidents, and stream events) without anyone asking.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// PostgreSQL schema; `health` unless tests or a shared database need another.
    pub database_schema: String,
    /// Signs and verifies service tokens; at least 32 characters.
    pub mesh_key: SecretString,
    /// Freshness target per entity.
    pub freshness_targets: Targets,
    pub sweep_interval: Duration,
    /// Whether webhooks may target loopback and private addresses (dev and tests only).
    pub allow_private_webhooks: bool,
    /// Redis through which replicas hand each other's status changes to their watchers.
    /// `None` keeps changes in this process: right for dev mode and a single replica.
    pub redis_url: Option<String>,
}

impl Config {
    /// A config with the default listen address and schema.
    pub fn new(database_url: impl Into<String>, mesh_key: SecretString) -> Config {
        Config {
            listen_addr: DEFAULT_LISTEN_ADDR,
            database_url: database_url.into(),
            database_schema: DEFAULT_DATABASE_SCHEMA.to_owned(),
            mesh_key,
            freshness_targets: Targets::default(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            allow_private_webhooks: false,
            redis_url: None,
        }
    }

    /// Reads `PLUGBOARD_LISTEN_ADDR`, `PLUGBOARD_DATABASE_URL`, `PLUGBOARD_DATABASE_SCHEMA` and
    /// `PLUGBOARD_MESH_KEY` (or `PLUGBOARD_MESH_KEY_FILE`), `PLUGBOARD_HEALTH_FRESHNESS_TARGETS`
    /// (`job=900,*=3600`, seconds), `PLUGBOARD_HEALTH_SWEEP_SECONDS` and
    /// `PLUGBOARD_ALLOW_PRIVATE_TARGETS` (webhooks to private addresses; dev and tests only) and
    /// `PLUGBOARD_REDIS_URL` (status fan-out between replicas).
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.listen_addr(DEFAULT_LISTEN_ADDR)?;
        let database_url = env
            .required(
                "PLUGBOARD_DATABASE_URL",
                "set it to postgres://user@host:5432/db or sqlite://path/health.db?mode=rwc",
            )?
            .to_owned();
        let database_schema = env
            .get("PLUGBOARD_DATABASE_SCHEMA")
            .unwrap_or(DEFAULT_DATABASE_SCHEMA)
            .to_owned();
        let mesh_key = env.mesh_key()?;
        let freshness_targets = match env.get("PLUGBOARD_HEALTH_FRESHNESS_TARGETS") {
            None => Targets::default(),
            Some(text) => Targets::parse(text).map_err(|reason| ConfigError::Invalid {
                key: "PLUGBOARD_HEALTH_FRESHNESS_TARGETS".to_owned(),
                value: text.to_owned(),
                reason,
            })?,
        };
        let sweep_seconds: u64 = env.parse_or(
            "PLUGBOARD_HEALTH_SWEEP_SECONDS",
            DEFAULT_SWEEP_INTERVAL.as_secs(),
        )?;
        Ok(Config {
            listen_addr,
            database_url,
            database_schema,
            mesh_key,
            freshness_targets,
            sweep_interval: Duration::from_secs(sweep_seconds.max(1)),
            allow_private_webhooks: env.parse_or("PLUGBOARD_ALLOW_PRIVATE_TARGETS", false)?,
            redis_url: env.redis_url()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_weak_key_is_refused_without_echoing_it() {
        let env = Env::from_pairs([
            (
                "PLUGBOARD_MESH_KEY",
                "a-test-mesh-key-of-at-least-32-bytes!!",
            ),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.listen_addr, DEFAULT_LISTEN_ADDR);
        assert_eq!(config.database_schema, "health");
        assert_eq!(config.freshness_targets.of("job"), Duration::from_secs(900));

        let env = Env::from_pairs([
            (
                "PLUGBOARD_MESH_KEY",
                "a-test-mesh-key-of-at-least-32-bytes!!",
            ),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_HEALTH_FRESHNESS_TARGETS", "job=60, *=120"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.freshness_targets.of("job"), Duration::from_secs(60));
        assert_eq!(
            config.freshness_targets.of("placement"),
            Duration::from_secs(120)
        );
        let env = Env::from_pairs([
            (
                "PLUGBOARD_MESH_KEY",
                "a-test-mesh-key-of-at-least-32-bytes!!",
            ),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_HEALTH_FRESHNESS_TARGETS", "job=soon"),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_HEALTH_FRESHNESS_TARGETS"));

        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "short-secret"),
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_MESH_KEY"));
        assert!(!error.contains("short-secret"));
    }
}
