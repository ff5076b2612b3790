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
    /// How the outbox delivers pushes.
    pub push: PushOptions,
}

/// How the outbox worker delivers pushes to partners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// How often the worker looks for pushes queued by other replicas or due again.
    pub poll_interval: Duration,
    /// The first wait after a transient failure; it doubles, with jitter, up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Attempts before a push that keeps failing transiently fails for good.
    pub max_attempts: u32,
    /// How long one write through the connector may take (429 waits included).
    pub write_timeout: Duration,
    /// How long a settled push (delivered or failed) is kept as the record of its idempotency
    /// key; `None` keeps every push. A retry with the same key after that writes again, so this
    /// must outlast any caller's retries.
    pub retention: Option<Duration>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            poll_interval: Duration::from_secs(1),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_attempts: 12,
            write_timeout: Duration::from_secs(120),
            retention: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

impl PushOptions {
    fn from_env(env: &Env) -> Result<PushOptions, ConfigError> {
        let defaults = PushOptions::default();
        let retry_min_ms: u64 = env.parse_or(
            "PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS",
            defaults.retry_min.as_millis() as u64,
        )?;
        let retry_max_seconds: u64 = env.parse_or(
            "PLUGBOARD_SYNC_PUSH_RETRY_MAX_SECONDS",
            defaults.retry_max.as_secs(),
        )?;
        let max_attempts: u32 =
            env.parse_or("PLUGBOARD_SYNC_PUSH_MAX_ATTEMPTS", defaults.max_attempts)?;
        let write_timeout_seconds: u64 = env.parse_or(
            "PLUGBOARD_SYNC_PUSH_WRITE_TIMEOUT_SECONDS",
            defaults.write_timeout.as_secs(),
        )?;
        // 0 keeps every push for ever.
        let retention_days: u64 = env.parse_or("PLUGBOARD_SYNC_PUSH_RETENTION_DAYS", 30)?;
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if retry_min_ms == 0
            || Duration::from_millis(retry_min_ms) > Duration::from_secs(retry_max_seconds)
        {
            return Err(invalid(
                "PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS",
                retry_min_ms.to_string(),
                "must be at least 1 and at most PLUGBOARD_SYNC_PUSH_RETRY_MAX_SECONDS",
            ));
        }
        if max_attempts == 0 {
            return Err(invalid(
                "PLUGBOARD_SYNC_PUSH_MAX_ATTEMPTS",
                "0".into(),
                "must be at least 1",
            ));
        }
        if write_timeout_seconds == 0 {
            return Err(invalid(
                "PLUGBOARD_SYNC_PUSH_WRITE_TIMEOUT_SECONDS",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(PushOptions {
            poll_interval: defaults.poll_interval,
            retry_min: Duration::from_millis(retry_min_ms),
            retry_max: Duration::from_secs(retry_max_seconds),
            max_attempts,
            write_timeout: Duration::from_secs(write_timeout_seconds),
            retention: (retention_days > 0)
                .then(|| Duration::from_secs(retention_days.saturating_mul(86_400))),
        })
    }
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
            listen_addr: env.listen_addr(([0, 0, 0, 0], 50053).into())?,
            database_url: env
                .required(
                    "PLUGBOARD_DATABASE_URL",
                    "set it to postgres://... or sqlite://path?mode=rwc",
                )?
                .to_owned(),
            mesh_key: env.mesh_key()?,
            redis_url: env.redis_url()?,
            registry_addr: required_addr(env, "PLUGBOARD_REGISTRY_ADDR")?,
            mapping_addr: required_addr(env, "PLUGBOARD_MAPPING_ADDR")?,
            health_addr: required_addr(env, "PLUGBOARD_HEALTH_ADDR")?,
            scheduler_tick: Duration::from_secs(tick_seconds),
            page_size,
            lease_ttl: Duration::from_secs(lease_ttl_seconds),
            push: PushOptions::from_env(env)?,
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

    const MESH_KEY: &str = "a-mesh-key-of-at-least-32-characters";

    #[test]
    fn missing_address_names_the_variable() {
        let env = Env::from_pairs([
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_MESH_KEY", MESH_KEY),
        ]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("PLUGBOARD_REGISTRY_ADDR"), "{error}");
    }

    #[test]
    fn a_weak_mesh_key_or_a_malformed_redis_url_stops_the_start_naming_it() {
        let complete = [
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_REGISTRY_ADDR", "r:1"),
            ("PLUGBOARD_MAPPING_ADDR", "m:1"),
            ("PLUGBOARD_HEALTH_ADDR", "h:1"),
        ];
        let start = |extra: [(&'static str, &'static str); 2]| {
            let mut pairs = complete.to_vec();
            pairs.extend(extra);
            Config::from_env(&Env::from_pairs(pairs)).map(|_| ())
        };
        let short = start([("PLUGBOARD_MESH_KEY", "k"), ("PLUGBOARD_LOG", "info")]);
        let error = short.unwrap_err().to_string();
        assert!(error.starts_with("PLUGBOARD_MESH_KEY="), "{error}");
        assert!(!error.contains("\"k\""), "the key is never shown: {error}");
        let redis = start([
            ("PLUGBOARD_MESH_KEY", MESH_KEY),
            ("PLUGBOARD_REDIS_URL", "redis://x:port"),
        ]);
        let error = redis.unwrap_err().to_string();
        assert!(error.starts_with("PLUGBOARD_REDIS_URL="), "{error}");
        start([
            ("PLUGBOARD_MESH_KEY", MESH_KEY),
            ("PLUGBOARD_REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap();
    }

    #[test]
    fn push_settings_are_read_and_checked() {
        let base = [
            ("PLUGBOARD_DATABASE_URL", "sqlite://x.db"),
            ("PLUGBOARD_MESH_KEY", MESH_KEY),
            ("PLUGBOARD_REGISTRY_ADDR", "r:1"),
            ("PLUGBOARD_MAPPING_ADDR", "m:1"),
            ("PLUGBOARD_HEALTH_ADDR", "h:1"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            Config::from_env(&Env::from_pairs(pairs))
        };
        let config = with(("PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS", "250")).unwrap();
        assert_eq!(config.push.retry_min, Duration::from_millis(250));
        assert_eq!(
            config.push.max_attempts,
            PushOptions::default().max_attempts
        );
        assert_eq!(
            config.push.retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        let keep_all = with(("PLUGBOARD_SYNC_PUSH_RETENTION_DAYS", "0")).unwrap();
        assert_eq!(keep_all.push.retention, None);
        let error = with(("PLUGBOARD_SYNC_PUSH_MAX_ATTEMPTS", "0"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("PLUGBOARD_SYNC_PUSH_MAX_ATTEMPTS"),
            "{error}"
        );
        let error = with(("PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS", "999999999"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS"),
            "{error}"
        );
    }
}
