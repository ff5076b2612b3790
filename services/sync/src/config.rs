//! The sync service's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub mesh_key: SecretString,
    /// Redis for run leases shared by replicas. `None` keeps leases in-process, which is only
    /// right for a single replica (dev mode).
    pub redis_url: Option<String>,
    pub registry_addr: String,
    pub mapping_addr: String,
    pub health_addr: String,
    /// How often the scheduler looks for due syncs.
    pub scheduler_tick: Duration,
    /// Records asked of the connector per page.
    pub page_size: u32,
    /// How long a run's lease outlives a replica that died without releasing it.
    pub lease_ttl: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let tick_seconds: u64 = env.parse_or("PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS", 5)?;
        let page_size: u32 = env.parse_or("PLUGBOARD_SYNC_PAGE_SIZE", 200)?;
        let lease_ttl_seconds: u64 = env.parse_or("PLUGBOARD_SYNC_LEASE_TTL_SECONDS", 30)?;
        if lease_ttl_seconds < 3 {
            return Err(ConfigError::Invalid {
                key: "PLUGBOARD_SYNC_LEASE_TTL_SECONDS".into(),
                value: lease_ttl_seconds.to_string(),
                reason: "must be at least 3, so renewals every third of it keep it alive".into(),
            });
        }
        if tick_seconds == 0 || page_size == 0 {
            return Err(ConfigError::Invalid {
                key: "PLUGBOARD_SYNC_SCHEDULER_TICK_SECONDS or PLUGBOARD_SYNC_PAGE_SIZE".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Config {
            listen_addr: env.parse_or("PLUGBOARD_LISTEN_ADDR", ([0, 0, 0, 0], 50053).into())?,
            database_url: env
                .required(
                    "PLUGBOARD_DATABASE_URL",
                    "set it to postgres://... or sqlite://path?mode=rwc",
                )?
                .to_owned(),
            mesh_key: env.secret(
                "PLUGBOARD_MESH_KEY",
                "the key every service signs calls with",
            )?,
            redis_url: env.get("PLUGBOARD_REDIS_URL").map(str::to_owned),
            registry_addr: required_addr(env, "PLUGBOARD_REGISTRY_ADDR")?,
            mapping_addr: required_addr(env, "PLUGBOARD_MAPPING_ADDR")?,
            health_addr: required_addr(env, "PLUGBOARD_HEALTH_ADDR")?,
            scheduler_tick: Duration::from_secs(tick_seconds),
            page_size,
            lease_ttl: Duration::from_secs(lease_ttl_seconds),
        })
    }
}

fn required_addr(env: &Env, key: &str) -> Result<String, ConfigError> {
    Ok(env
        .required(key, "the host:port of that service")?
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_address_names_the_variable() {
        let env = Env::from_pairs([
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_MESH_KEY", "k"),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_REGISTRY_ADDR"), "{error}");
    }
}
