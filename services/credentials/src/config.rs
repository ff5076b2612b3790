//! The credentials service's configuration, read once at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use plugboard_runtime::config::{ConfigError, Env};
use plugboard_runtime::connector_keys::ConnectorKeys;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use secrecy::SecretString;

use secrecy::ExposeSecret;

use crate::crypto::{Keyring, MasterKey};

pub const LISTEN_ADDR_VAR: &str = "PLUGBOARD_LISTEN_ADDR";
pub const DATABASE_URL_VAR: &str = "PLUGBOARD_DATABASE_URL";
pub const MESH_KEY_VAR: &str = "PLUGBOARD_MESH_KEY";
pub const MASTER_KEY_VAR: &str = "PLUGBOARD_MASTER_KEY";
pub const PREVIOUS_MASTER_KEYS_VAR: &str = "PLUGBOARD_MASTER_KEY_PREVIOUS";
pub const REDIS_URL_VAR: &str = "PLUGBOARD_REDIS_URL";
pub const HEALTH_ADDR_VAR: &str = "PLUGBOARD_HEALTH_ADDR";
pub const CONNECTOR_PUBLIC_KEYS_VAR: &str = "PLUGBOARD_CONNECTOR_PUBLIC_KEYS";
pub const AUDIT_SPOOL_DIR_VAR: &str = "PLUGBOARD_AUDIT_SPOOL_DIR";

/// Where the service listens, where it stores, and its two keys. Debug output redacts the keys
/// (both are `SecretString`).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    /// `sqlite:...` or `postgres://...`; on PostgreSQL the service uses the `credentials` schema.
    pub database_url: String,
    /// Signs and verifies service tokens; at least 32 characters.
    pub mesh_key: SecretString,
    /// Base64 of exactly 32 bytes: the AES-256-GCM master key that wraps every tenant's data
    /// key.
    pub master_key: SecretString,
    /// Comma-separated base64 master keys that still unwrap data keys during a rotation; at
    /// start every data key is re-wrapped under `master_key`. See [`crate::keys`].
    pub previous_master_keys: Option<SecretString>,
    /// The file `master_key` was read from (`PLUGBOARD_MASTER_KEY_FILE`), re-read when the
    /// running service is told to rotate (a Kubernetes secret mount changes it in place).
    pub master_key_file: Option<PathBuf>,
    /// The file `previous_master_keys` was read from, re-read likewise.
    pub previous_master_keys_file: Option<PathBuf>,
    /// Redis for single-flight token refresh across replicas; in-process without it.
    pub redis_url: Option<String>,
    /// The health service (`host:port`), told when a connection's access is refused or valid
    /// again; without it those changes reach health only through sync's run outcomes.
    pub health_addr: Option<String>,
    /// The connectors' Ed25519 public keys: with them, only a connector that proves its identity
    /// with its own key is served a lease (see `plugboard_runtime::connector_keys`). Without
    /// them any holder of the mesh key can claim to be a connector; the service warns at start.
    pub connector_keys: Option<ConnectorKeys>,
    /// `PLUGBOARD_ALLOW_PRIVATE_TARGETS`: let OAuth2 token URLs resolve to loopback and private
    /// networks (dev mode and tests only; default `false`).
    pub allow_private_targets: bool,
    /// `PLUGBOARD_AUDIT_SPOOL_DIR`: where audit rows wait, on local disk, to be shipped to the
    /// database ([`crate::audit`]). It must survive a restart of the process (a Kubernetes
    /// `emptyDir` does) and serve this database only. Unset, [`Config::from_env`] puts the
    /// default here ([`crate::audit::default_spool_dir`]); `None` (in code) means the same.
    pub audit_spool_dir: Option<PathBuf>,
}

impl Config {
    pub const DEFAULT_LISTEN_ADDR: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 50051);

    /// A config built in code, as dev mode does. [`crate::run`] validates the keys again.
    pub fn new(
        listen_addr: SocketAddr,
        database_url: impl Into<String>,
        mesh_key: SecretString,
        master_key: SecretString,
    ) -> Config {
        Config {
            listen_addr,
            database_url: database_url.into(),
            mesh_key,
            master_key,
            previous_master_keys: None,
            master_key_file: None,
            previous_master_keys_file: None,
            redis_url: None,
            health_addr: None,
            connector_keys: None,
            allow_private_targets: false,
            audit_spool_dir: None,
        }
    }

    /// Reads `PLUGBOARD_LISTEN_ADDR` (default `0.0.0.0:50051`), `PLUGBOARD_DATABASE_URL`,
    /// `PLUGBOARD_MESH_KEY[_FILE]`, `PLUGBOARD_MASTER_KEY[_FILE]`, the optional
    /// `PLUGBOARD_MASTER_KEY_PREVIOUS[_FILE]` and `PLUGBOARD_REDIS_URL`, and checks every key.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.parse_or(LISTEN_ADDR_VAR, Config::DEFAULT_LISTEN_ADDR)?;
        let database_url = env
            .required(
                DATABASE_URL_VAR,
                "a sqlite: or postgres:// url for the credentials store",
            )?
            .to_owned();
        let mesh_key = env.secret(
            MESH_KEY_VAR,
            "the shared mesh signing key, >= 32 characters",
        )?;
        let master_key = env.secret(
            MASTER_KEY_VAR,
            "base64 of 32 random bytes, for example `openssl rand -base64 32`",
        )?;
        let previous_set = env.get(PREVIOUS_MASTER_KEYS_VAR).is_some()
            || env
                .get(&format!("{PREVIOUS_MASTER_KEYS_VAR}_FILE"))
                .is_some();
        let previous_master_keys = if previous_set {
            Some(env.secret(
                PREVIOUS_MASTER_KEYS_VAR,
                "comma-separated base64 master keys",
            )?)
        } else {
            None
        };
        let mut config = Config::new(listen_addr, database_url, mesh_key, master_key);
        config.previous_master_keys = previous_master_keys;
        config.master_key_file = env
            .get(&format!("{MASTER_KEY_VAR}_FILE"))
            .map(PathBuf::from);
        config.previous_master_keys_file = env
            .get(&format!("{PREVIOUS_MASTER_KEYS_VAR}_FILE"))
            .map(PathBuf::from);
        config.redis_url = env.redis_url()?;
        config.health_addr = env.get(HEALTH_ADDR_VAR).map(str::to_owned);
        config.connector_keys = connector_keys(env)?;
        config.allow_private_targets = env.parse_or("PLUGBOARD_ALLOW_PRIVATE_TARGETS", false)?;
        config.audit_spool_dir = audit_spool_dir(env, &config.database_url)?;
        config.mesh_key()?;
        config.keyring()?;
        Ok(config)
    }

    /// The server interceptor: the mesh key, and the connectors' keys when configured.
    pub(crate) fn require_caller(&self) -> Result<RequireCaller, ConfigError> {
        let require = RequireCaller::new(self.mesh_key()?);
        Ok(match &self.connector_keys {
            Some(keys) => require.with_connector_keys(keys.clone()),
            None => require,
        })
    }

    pub(crate) fn mesh_key(&self) -> Result<MeshKey, ConfigError> {
        MeshKey::new(&self.mesh_key).map_err(|error| invalid(MESH_KEY_VAR, error.to_string()))
    }

    /// The current master key and the previous ones, each checked.
    pub(crate) fn keyring(&self) -> Result<Keyring, ConfigError> {
        self.master_key_source().read()
    }

    /// Where the master keys come from, to read them again on a running service.
    pub fn master_key_source(&self) -> MasterKeySource {
        let current = match &self.master_key_file {
            Some(path) => KeyText::File(path.clone()),
            None => KeyText::Value(self.master_key.clone()),
        };
        let previous = match (&self.previous_master_keys_file, &self.previous_master_keys) {
            (Some(path), _) => Some(KeyText::File(path.clone())),
            (None, Some(list)) => Some(KeyText::Value(list.clone())),
            (None, None) => None,
        };
        MasterKeySource(Source::Configured { current, previous })
    }
}

/// A master key setting: its value as given at start, or the file to read it from each time.
#[derive(Debug, Clone)]
enum KeyText {
    Value(SecretString),
    File(PathBuf),
}

impl KeyText {
    fn read(&self, var: &str) -> Result<SecretString, ConfigError> {
        match self {
            KeyText::Value(text) => Ok(text.clone()),
            KeyText::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
                    key: format!("{var}_FILE"),
                    value: path.display().to_string(),
                    reason: format!("cannot read the file: {error}"),
                })?;
                Ok(SecretString::from(text.trim().to_owned()))
            }
        }
    }
}

/// The master keys' source: `PLUGBOARD_MASTER_KEY[_FILE]` and
/// `PLUGBOARD_MASTER_KEY_PREVIOUS[_FILE]`. Values given inline stay as they were at start;
/// files are read again on every [`MasterKeySource::read`]. Debug output holds no key.
#[derive(Debug, Clone)]
pub struct MasterKeySource(Source);

#[derive(Debug, Clone)]
enum Source {
    /// A keyring built in code (dev mode, tests): reading it again gives the same keys.
    Fixed(Box<Keyring>),
    Configured {
        current: KeyText,
        previous: Option<KeyText>,
    },
}

impl From<Keyring> for MasterKeySource {
    fn from(keyring: Keyring) -> MasterKeySource {
        MasterKeySource(Source::Fixed(Box::new(keyring)))
    }
}

impl MasterKeySource {
    /// Reads and checks every key; an error names the variable, never a key.
    pub fn read(&self) -> Result<Keyring, ConfigError> {
        let (current, previous_source) = match &self.0 {
            Source::Fixed(keyring) => return Ok(keyring.as_ref().clone()),
            Source::Configured { current, previous } => (current, previous),
        };
        let text = current.read(MASTER_KEY_VAR)?;
        let current = MasterKey::from_base64(&text)
            .map_err(|error| invalid(MASTER_KEY_VAR, error.to_string()))?;
        let mut previous = Vec::new();
        if let Some(source) = previous_source {
            let list = source.read(PREVIOUS_MASTER_KEYS_VAR)?;
            for (index, text) in list.expose_secret().split(',').enumerate() {
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let key = MasterKey::from_base64(&SecretString::from(text.to_owned())).map_err(
                    |error| {
                        invalid(
                            PREVIOUS_MASTER_KEYS_VAR,
                            format!("key {}: {error}", index + 1),
                        )
                    },
                )?;
                previous.push(key);
            }
        }
        Ok(Keyring::new(current, previous))
    }
}

/// `PLUGBOARD_AUDIT_SPOOL_DIR`, or the default for the database, checked to be usable now, so
/// that a directory that is not stops the service before it binds its port. `None` for an
/// in-memory database, whose store makes a fresh one.
fn audit_spool_dir(env: &Env, database_url: &str) -> Result<Option<PathBuf>, ConfigError> {
    let dir = match env.get(AUDIT_SPOOL_DIR_VAR) {
        Some(dir) => PathBuf::from(dir),
        None if database_url.starts_with("sqlite:")
            && plugboard_runtime::storage::sqlite_path(database_url).is_none() =>
        {
            return Ok(None);
        }
        None => crate::audit::default_spool_dir(database_url, crate::store::SCHEMA),
    };
    let unset = env.get(AUDIT_SPOOL_DIR_VAR).is_none();
    crate::audit::check_writable(&dir).map_err(|reason| ConfigError::Invalid {
        key: AUDIT_SPOOL_DIR_VAR.to_owned(),
        value: dir.display().to_string(),
        reason: if unset {
            format!("{reason} (the default, as it is unset); set it to a writable local directory")
        } else {
            format!("{reason}; name a writable local directory")
        },
    })?;
    Ok(Some(dir))
}

/// An invalid secret: the error names the variable but never echoes the value.
fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: "[redacted]".to_owned(),
        reason,
    }
}

/// `PLUGBOARD_CONNECTOR_PUBLIC_KEYS` (`name=base64` pairs), or the file `..._FILE` names.
fn connector_keys(env: &Env) -> Result<Option<ConnectorKeys>, ConfigError> {
    let file_var = format!("{CONNECTOR_PUBLIC_KEYS_VAR}_FILE");
    let (key, text) = match (env.get(&file_var), env.get(CONNECTOR_PUBLIC_KEYS_VAR)) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                path: path.into(),
                reason: error.to_string(),
            })?;
            (file_var.as_str(), text)
        }
        (None, Some(text)) => (CONNECTOR_PUBLIC_KEYS_VAR, text.to_owned()),
        (None, None) => return Ok(None),
    };
    let keys = ConnectorKeys::parse(&text).map_err(|error| invalid(key, error.to_string()))?;
    if keys.is_empty() {
        return Err(invalid(
            key,
            "names no connector; unset it or give `name=base64` pairs".to_owned(),
        ));
    }
    Ok(Some(keys))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const MESH: &str = "a-test-mesh-key-of-at-least-32-bytes!!";
    const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn env(master: &str) -> Env {
        Env::from_pairs([
            (DATABASE_URL_VAR, "sqlite::memory:"),
            (MESH_KEY_VAR, MESH),
            (MASTER_KEY_VAR, master),
        ])
    }

    #[test]
    fn reads_defaults_and_keys() {
        let config = Config::from_env(&env(MASTER)).unwrap();
        assert_eq!(config.listen_addr, Config::DEFAULT_LISTEN_ADDR);
        assert_eq!(config.master_key.expose_secret(), MASTER);
        let debug = format!("{config:?}");
        assert!(!debug.contains(MASTER) && !debug.contains(MESH), "{debug}");
    }

    #[test]
    fn bad_master_key_names_the_variable_without_its_value() {
        for bad in ["c2hvcnQ=", "%%%not-base64%%%"] {
            let message = Config::from_env(&env(bad)).unwrap_err().to_string();
            assert!(message.contains(MASTER_KEY_VAR), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
        let missing =
            Env::from_pairs([(DATABASE_URL_VAR, "sqlite::memory:"), (MESH_KEY_VAR, MESH)]);
        let message = Config::from_env(&missing).unwrap_err().to_string();
        assert!(message.contains("PLUGBOARD_MASTER_KEY or PLUGBOARD_MASTER_KEY_FILE"));
    }

    #[test]
    fn previous_master_keys_are_comma_separated_and_checked() {
        let other = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let third = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
        let list = format!("{other}, {third}");
        let env = Env::from_pairs([
            (DATABASE_URL_VAR, "sqlite::memory:"),
            (MESH_KEY_VAR, MESH),
            (MASTER_KEY_VAR, MASTER),
            (PREVIOUS_MASTER_KEYS_VAR, list.as_str()),
            (REDIS_URL_VAR, "redis://127.0.0.1:6379"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.keyring().unwrap().key_ids().len(), 3);
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert!(!format!("{config:?}").contains(other));

        let bad = format!("{other},c2hvcnQ=");
        let env = Env::from_pairs([
            (DATABASE_URL_VAR, "sqlite::memory:"),
            (MESH_KEY_VAR, MESH),
            (MASTER_KEY_VAR, MASTER),
            (PREVIOUS_MASTER_KEYS_VAR, bad.as_str()),
        ]);
        let message = Config::from_env(&env).unwrap_err().to_string();
        assert!(
            message.contains(PREVIOUS_MASTER_KEYS_VAR) && message.contains("key 2"),
            "{message}"
        );
        assert!(!message.contains(other), "{message}");
    }

    #[test]
    fn the_audit_spool_directory_is_checked_at_start_and_named_when_unusable() {
        let dir = std::env::temp_dir().join(format!("pb-spoolconf-{}", uuid::Uuid::new_v4()));
        let spool = dir.join("spool");
        let spool_text = spool.display().to_string();
        let configured = Env::from_pairs([
            (DATABASE_URL_VAR, "postgres://postgres@127.0.0.1/db"),
            (MESH_KEY_VAR, MESH),
            (MASTER_KEY_VAR, MASTER),
            (AUDIT_SPOOL_DIR_VAR, spool_text.as_str()),
        ]);
        let config = Config::from_env(&configured).unwrap();
        assert_eq!(config.audit_spool_dir.as_deref(), Some(spool.as_path()));
        assert!(spool.is_dir(), "created at start");

        // A file where the directory should be: refused, naming the variable.
        let in_the_way = dir.join("file");
        std::fs::write(&in_the_way, "").unwrap();
        let blocked = in_the_way.join("spool").display().to_string();
        let bad = Env::from_pairs([
            (DATABASE_URL_VAR, "postgres://postgres@127.0.0.1/db"),
            (MESH_KEY_VAR, MESH),
            (MASTER_KEY_VAR, MASTER),
            (AUDIT_SPOOL_DIR_VAR, blocked.as_str()),
        ]);
        let message = Config::from_env(&bad).unwrap_err().to_string();
        assert!(message.contains(AUDIT_SPOOL_DIR_VAR), "{message}");

        // Unset on PostgreSQL: the default, whatever the password.
        let unset = |url: &str| {
            let env = Env::from_pairs([
                (DATABASE_URL_VAR, url),
                (MESH_KEY_VAR, MESH),
                (MASTER_KEY_VAR, MASTER),
            ]);
            Config::from_env(&env).unwrap().audit_spool_dir.unwrap()
        };
        assert_eq!(
            unset("postgres://app:old@db.internal/plugboard"),
            unset("postgres://app:new@db.internal/plugboard")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn database_url_is_required() {
        let env = Env::from_pairs([(MESH_KEY_VAR, MESH), (MASTER_KEY_VAR, MASTER)]);
        let message = Config::from_env(&env).unwrap_err().to_string();
        assert!(message.contains(DATABASE_URL_VAR), "{message}");
    }
}
