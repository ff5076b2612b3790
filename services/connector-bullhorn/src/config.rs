//! The connector's configuration, read once at start.

use std::net::SocketAddr;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

/// Where the connector listens, whom it calls, and how it authenticates to the mesh.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PLUGBOARD_LISTEN_ADDR`, default `0.0.0.0:50061`.
    pub listen_addr: SocketAddr,
    /// `PLUGBOARD_ADVERTISE_ADDR`: the address registered with the registry. Default: the bound
    /// address, with an unspecified IP replaced by `127.0.0.1`.
    pub advertise_addr: Option<String>,
    /// `PLUGBOARD_REGISTRY_ADDR`, default `127.0.0.1:50055`.
    pub registry_addr: String,
    /// `PLUGBOARD_CREDENTIALS_ADDR`, default `127.0.0.1:50051`.
    pub credentials_addr: String,
    /// `PLUGBOARD_MESH_KEY` or `PLUGBOARD_MESH_KEY_FILE`.
    pub mesh_key: SecretString,
    /// `PLUGBOARD_ALLOW_PRIVATE_TARGETS`: let connection settings point at loopback and private
    /// networks (dev mode and tests only; default `false`).
    pub allow_private_targets: bool,
    /// This process's instance id in the registry, new on every start.
    pub instance_id: String,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        Ok(Config {
            listen_addr: env.parse_or("PLUGBOARD_LISTEN_ADDR", ([0, 0, 0, 0], 50061).into())?,
            advertise_addr: env.get("PLUGBOARD_ADVERTISE_ADDR").map(str::to_owned),
            registry_addr: env
                .get("PLUGBOARD_REGISTRY_ADDR")
                .unwrap_or("127.0.0.1:50055")
                .to_owned(),
            credentials_addr: env
                .get("PLUGBOARD_CREDENTIALS_ADDR")
                .unwrap_or("127.0.0.1:50051")
                .to_owned(),
            mesh_key: env.secret(
                "PLUGBOARD_MESH_KEY",
                "the shared mesh signing key, at least 32 characters",
            )?,
            allow_private_targets: env.parse_or("PLUGBOARD_ALLOW_PRIVATE_TARGETS", false)?,
            instance_id: format!("bullhorn-{}", uuid::Uuid::new_v4()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let env = Env::from_pairs([("PLUGBOARD_MESH_KEY", "k".repeat(32))]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:50061");
        assert!(!config.allow_private_targets);
        assert_eq!(config.registry_addr, "127.0.0.1:50055");

        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
            ("PLUGBOARD_ADVERTISE_ADDR", "bullhorn:50061".to_owned()),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert!(config.allow_private_targets);
        assert_eq!(config.advertise_addr.as_deref(), Some("bullhorn:50061"));

        let env = Env::from_pairs([
            ("PLUGBOARD_MESH_KEY", "k".repeat(32)),
            ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "sometimes".to_owned()),
        ]);
        assert!(Config::from_env(&env).is_err());
        assert!(Config::from_env(&Env::default()).is_err());
    }
}
