//! The generic connector's configuration, read once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use plugboard_runtime::config::{ConfigError, Env};
use plugboard_runtime::connector_keys::ConnectorSigningKey;
use secrecy::SecretString;

/// Which connector folder to serve, where to listen, whom to call.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PLUGBOARD_CONNECTOR_DIR`: the connector folder (`manifest.yaml`, `mappings/`).
    pub connector_dir: PathBuf,
    /// `PLUGBOARD_LISTEN_ADDR`, default `0.0.0.0:50062`.
    pub listen_addr: SocketAddr,
    /// `PLUGBOARD_ADVERTISE_ADDR`: the address registered with the registry. Default: the
    /// bound address, with an unspecified IP replaced by `127.0.0.1`.
    pub advertise_addr: Option<String>,
    /// `PLUGBOARD_REGISTRY_ADDR`, default `127.0.0.1:50055`.
    pub registry_addr: String,
    /// `PLUGBOARD_CREDENTIALS_ADDR`, default `127.0.0.1:50051`.
    pub credentials_addr: String,
    /// `PLUGBOARD_MESH_KEY` or `PLUGBOARD_MESH_KEY_FILE`.
    pub mesh_key: SecretString,
    /// `PLUGBOARD_ALLOW_PRIVATE_TARGETS`: let settings point at loopback and private networks
    /// (dev mode and tests only; default `false`).
    pub allow_private_targets: bool,
    /// `PLUGBOARD_INSTANCE_ID`: this process's id in the registry. Default: the connector's
    /// name and a new UUID on every start. A stable id (dev mode) makes a restarted process
    /// replace its old registration at once.
    pub instance_id: Option<String>,
    /// `PLUGBOARD_CONNECTOR_SIGNING_KEY[_FILE]`: this connector's own Ed25519 key (base64
    /// PKCS#8, from `plugboard keys connector <name>`), proving to credentials that a lease
    /// request comes from this connector. Without it, credentials configured with connector
    /// keys serves this connector no lease.
    pub signing_key: Option<ConnectorSigningKey>,
    /// `PLUGBOARD_REDIS_URL`: where every replica counts each partner account's request window
    /// (the manifest's `rate_limit`); unset counts in-process, right for one replica (dev mode).
    pub redis_url: Option<String>,
    /// `PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS`: the longest one 429 wait a read sits through,
    /// when lower than the manifest's `max_wait_seconds`; a partner asking for longer has a
    /// used-up quota and the run pauses until its reset. Unset keeps the manifest's.
    pub max_rate_limit_wait: Option<std::time::Duration>,
}

impl Config {
    /// The defaults, for embedding (dev mode): registry and credentials on their default
    /// loopback ports, private targets refused, a fresh instance id.
    pub fn new(connector_dir: PathBuf, listen_addr: SocketAddr, mesh_key: SecretString) -> Config {
        Config {
            connector_dir,
            listen_addr,
            advertise_addr: None,
            registry_addr: "127.0.0.1:50055".to_owned(),
            credentials_addr: "127.0.0.1:50051".to_owned(),
            mesh_key,
            allow_private_targets: false,
            instance_id: None,
            signing_key: None,
            redis_url: None,
            max_rate_limit_wait: None,
        }
    }

    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        Config::from_env_for(env, None)
    }

    /// As [`Config::from_env`], with the connector folder given (`plugboard connector serve
    /// <dir>`) rather than read from `PLUGBOARD_CONNECTOR_DIR`.
    pub fn from_env_for(env: &Env, connector_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let connector_dir = match connector_dir {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from(env.required(
                "PLUGBOARD_CONNECTOR_DIR",
                "the connector folder holding manifest.yaml and mappings/",
            )?),
        };
        Ok(Config {
            connector_dir,
            listen_addr: env.listen_addr(([0, 0, 0, 0], 50062).into())?,
            advertise_addr: advertise_addr(env)?,
            registry_addr: env
                .get("PLUGBOARD_REGISTRY_ADDR")
                .unwrap_or("127.0.0.1:50055")
                .to_owned(),
            credentials_addr: env
                .get("PLUGBOARD_CREDENTIALS_ADDR")
                .unwrap_or("127.0.0.1:50051")
                .to_owned(),
            mesh_key: env.mesh_key()?,
            allow_private_targets: env.parse_or("PLUGBOARD_ALLOW_PRIVATE_TARGETS", false)?,
            instance_id: env.get("PLUGBOARD_INSTANCE_ID").map(str::to_owned),
            signing_key: signing_key(env)?,
            redis_url: env.redis_url()?,
            max_rate_limit_wait: max_rate_limit_wait(env)?,
        })
    }
}

/// `PLUGBOARD_ADVERTISE_ADDR` is what the registry hands to sync to dial: `host:port`, no
/// scheme. Checked here, because a bad one would only show as warnings at every heartbeat.
fn advertise_addr(env: &Env) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.get("PLUGBOARD_ADVERTISE_ADDR") else {
        return Ok(None);
    };
    let valid = !value.contains("://")
        && value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if !valid {
        return Err(ConfigError::Invalid {
            key: "PLUGBOARD_ADVERTISE_ADDR".to_owned(),
            value: value.to_owned(),
            reason: "expected host:port without a scheme, for example connector-bullhorn:50061"
                .to_owned(),
        });
    }
    Ok(Some(value.to_owned()))
}

const SIGNING_KEY_VAR: &str = "PLUGBOARD_CONNECTOR_SIGNING_KEY";

fn signing_key(env: &Env) -> Result<Option<ConnectorSigningKey>, ConfigError> {
    let set =
        env.get(SIGNING_KEY_VAR).is_some() || env.get(&format!("{SIGNING_KEY_VAR}_FILE")).is_some();
    if !set {
        return Ok(None);
    }
    let text = env.secret(SIGNING_KEY_VAR, "base64 PKCS#8 Ed25519 key")?;
    ConnectorSigningKey::parse(&text)
        .map(Some)
        .map_err(|error| ConfigError::Invalid {
            key: SIGNING_KEY_VAR.to_owned(),
            // Never echo a private key, even a malformed one.
            value: "[redacted]".to_owned(),
            reason: format!("{error}; make one with `plugboard keys connector <name>`"),
        })
}

fn max_rate_limit_wait(env: &Env) -> Result<Option<std::time::Duration>, ConfigError> {
    const KEY: &str = "PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS";
    if env.get(KEY).is_none() {
        return Ok(None);
    }
    let seconds: u64 = env.parse_or(KEY, 0)?;
    if seconds == 0 {
        return Err(ConfigError::Invalid {
            key: KEY.into(),
            value: "0".into(),
            reason: "must be at least 1 second, or unset to keep the manifest's".into(),
        });
    }
    Ok(Some(std::time::Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_required_values() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            (
                "PLUGBOARD_CONNECTOR_DIR",
                "services/connector-greenhouse".to_owned(),
            ),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:50062");
        assert!(!config.allow_private_targets);
        let env = Env::from_pairs([("PLUGBOARD_MESH_KEY", "k".repeat(32))]);
        assert!(Config::from_env(&env).is_err());
        let config = Config::from_env_for(&env, Some(Path::new("x"))).unwrap();
        assert_eq!(config.connector_dir, PathBuf::from("x"));
        assert!(config.signing_key.is_none());
        assert_eq!(config.max_rate_limit_wait, None);
    }

    #[test]
    fn the_advertised_address_is_host_and_port() {
        let with = |addr: &str| {
            let env = Env::from_pairs([
                ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
                ("PLUGBOARD_ADVERTISE_ADDR", addr.to_owned()),
            ]);
            Config::from_env_for(&env, Some(Path::new("x")))
        };
        assert_eq!(
            with("10.0.0.7:50061").unwrap().advertise_addr.as_deref(),
            Some("10.0.0.7:50061")
        );
        for bad in ["http://127.0.0.1:56161", "127.0.0.1", "host:0", ":50061"] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains("PLUGBOARD_ADVERTISE_ADDR"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_bad_signing_key_stops_the_start_without_echoing_it() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            (
                "PLUGBOARD_CONNECTOR_SIGNING_KEY",
                "secret-but-wrong".to_owned(),
            ),
        ]);
        let error = Config::from_env_for(&env, Some(Path::new("x")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("PLUGBOARD_CONNECTOR_SIGNING_KEY"), "{error}");
        assert!(!error.contains("secret-but-wrong"), "{error}");
        let (_, good) = ConnectorSigningKey::generate();
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            (
                "PLUGBOARD_CONNECTOR_SIGNING_KEY",
                secrecy::ExposeSecret::expose_secret(&good).to_owned(),
            ),
        ]);
        let config = Config::from_env_for(&env, Some(Path::new("x"))).unwrap();
        assert!(config.signing_key.is_some());
    }

    #[test]
    fn a_zero_rate_limit_wait_is_refused_naming_the_variable() {
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            ("PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS", "0".to_owned()),
        ]);
        let error = Config::from_env_for(&env, Some(Path::new("x")))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS"),
            "{error}"
        );
        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            ("PLUGBOARD_RATE_LIMIT_MAX_WAIT_SECONDS", "5".to_owned()),
        ]);
        let config = Config::from_env_for(&env, Some(Path::new("x"))).unwrap();
        assert_eq!(
            config.max_rate_limit_wait,
            Some(std::time::Duration::from_secs(5))
        );
    }
}
