//! Configuration input, read once at start.
//!
//! Services never call `std::env::var` themselves: `main` builds an [`Env`] from the process
//! environment (and `PLUGBOARD_CONFIG_FILE`, an env-style file, beneath it) and each service's
//! `Config::from_env` reads typed values from it. Tests build an [`Env`] from pairs.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;

/// Names the optional env-style file whose values sit beneath the process environment.
pub const CONFIG_FILE_VAR: &str = "PLUGBOARD_CONFIG_FILE";
/// The address every service binds.
pub const LISTEN_ADDR: &str = "PLUGBOARD_LISTEN_ADDR";
/// The Redis that replicas of a service coordinate through.
pub const REDIS_URL: &str = "PLUGBOARD_REDIS_URL";
/// The key every service of the mesh signs and checks service tokens with.
pub const MESH_KEY: &str = "PLUGBOARD_MESH_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} is required: {hint}")]
    Missing { key: String, hint: String },
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// A snapshot of configuration variables. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Every key a service asked for, so that a set variable nobody read, a letter away from
    /// one that was, can be pointed out as misspelt.
    asked: Arc<Mutex<BTreeSet<String>>>,
}

/// Names this close (edits) to each other are taken for a misspelling of one another.
const MISSPELT_WITHIN: usize = 2;

impl Env {
    /// The process environment over the values of `PLUGBOARD_CONFIG_FILE`, when it is set.
    pub fn from_process() -> Result<Env, ConfigError> {
        let process: HashMap<String, String> = std::env::vars().collect();
        let mut vars = HashMap::new();
        if let Some(path) = process.get(CONFIG_FILE_VAR).filter(|path| !path.is_empty()) {
            let path = PathBuf::from(path);
            let file_error = |reason: String| ConfigError::File {
                path: path.clone(),
                reason,
            };
            let entries = dotenvy::from_path_iter(&path).map_err(|e| file_error(e.to_string()))?;
            for entry in entries {
                let (key, value) = entry.map_err(|e| file_error(e.to_string()))?;
                vars.insert(key, value);
            }
        }
        vars.extend(process);
        Ok(Env {
            vars,
            asked: Arc::default(),
        })
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
            asked: Arc::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned());
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    pub fn required(&self, key: &str, hint: &str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| ConfigError::Missing {
            key: key.to_owned(),
            hint: self.with_lookalike(key, hint),
        })
    }

    /// `hint`, plus the set variable `key` may have been misspelt as, if there is one.
    fn with_lookalike(&self, key: &str, hint: &str) -> String {
        match self.lookalike_of(key) {
            Some(set) => format!("{hint} ({set} is set: is it a misspelling of {key}?)"),
            None => hint.to_owned(),
        }
    }

    /// A set `PLUGBOARD_` variable a letter or two away from `key`.
    fn lookalike_of(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .filter(|(set, value)| !value.is_empty() && set.starts_with("PLUGBOARD_"))
            .map(|(set, _)| set.as_str())
            .filter(|set| *set != key)
            .find(|set| strsim::damerau_levenshtein(set, key) <= MISSPELT_WITHIN)
    }

    /// Set `PLUGBOARD_` variables nothing asked for that are a letter or two away from one that
    /// was asked for, each with the name it probably means: most likely misspellings, which
    /// would otherwise leave a setting at its default without a word.
    pub fn misspelt(&self) -> Vec<(String, String)> {
        let asked = self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut found: Vec<(String, String)> = self
            .vars
            .keys()
            .filter(|set| set.starts_with("PLUGBOARD_") && !asked.contains(*set))
            .filter_map(|set| {
                asked
                    .iter()
                    .find(|meant| strsim::damerau_levenshtein(set, meant) <= MISSPELT_WITHIN)
                    .map(|meant| (set.clone(), meant.clone()))
            })
            .collect();
        found.sort();
        found
    }

    /// Parses `key` when set, else returns `default`.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
                key: key.to_owned(),
                value: value.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// `PLUGBOARD_LISTEN_ADDR`, the address a service binds, or `default`. An IP address and a
    /// port: the error says so, since a host name (`localhost:50051`) is the usual mistake.
    pub fn listen_addr(&self, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
        self.parse_or(LISTEN_ADDR, default)
            .map_err(|error| match error {
                ConfigError::Invalid { key, value, reason } => ConfigError::Invalid {
                    key,
                    value,
                    reason: format!(
                        "{reason}: give an IP address and a port, for example 127.0.0.1:50051 or \
                     0.0.0.0:50051 (host names are not resolved)"
                    ),
                },
                other => other,
            })
    }

    /// `PLUGBOARD_REDIS_URL` when set, checked for a form the Redis client takes (whether a
    /// server answers there is known only once the service connects). A password in it is
    /// never echoed.
    pub fn redis_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.get(REDIS_URL) else {
            return Ok(None);
        };
        redis::Client::open(url).map_err(|error| ConfigError::Invalid {
            key: REDIS_URL.to_owned(),
            value: crate::process::redact_password(url),
            reason: format!("{error}; expected redis://host:port (or rediss://, unix://)"),
        })?;
        Ok(Some(url.to_owned()))
    }

    /// Parses a required `key`.
    pub fn parse_required<T>(&self, key: &str, hint: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.required(key, hint)?;
        value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: e.to_string(),
        })
    }

    /// A secret from `<key>_FILE` (a path, preferred in production) or from `key` itself. The
    /// value is never echoed in errors.
    pub fn secret(&self, key: &str, hint: &str) -> Result<SecretString, ConfigError> {
        let file_key = format!("{key}_FILE");
        if let Some(path) = self.get(&file_key) {
            if self.get(key).is_some() {
                // Which one wins would be a guess; a stale value left beside the file is a
                // common mistake during a rotation.
                return Err(ConfigError::Invalid {
                    key: file_key.clone(),
                    value: path.to_owned(),
                    reason: format!("{key} is set too; set only one of them"),
                });
            }
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: file_key.clone(),
                value: path.to_owned(),
                reason: format!("cannot read the file: {e}"),
            })?;
            return Ok(SecretString::from(text.trim().to_owned()));
        }
        let value = self.get(key).ok_or_else(|| ConfigError::Missing {
            key: format!("{key} or {file_key}"),
            hint: self.with_lookalike(key, hint),
        })?;
        Ok(SecretString::from(value.to_owned()))
    }

    /// The mesh key (`PLUGBOARD_MESH_KEY`, or `_FILE`), checked now so that a weak key stops
    /// the process before it binds a port rather than when it first signs a call.
    pub fn mesh_key(&self) -> Result<SecretString, ConfigError> {
        let key = self.secret(
            MESH_KEY,
            "the key shared by every service to sign service tokens, at least 32 characters",
        )?;
        crate::identity::MeshKey::new(&key).map_err(|error| ConfigError::Invalid {
            key: MESH_KEY.to_owned(),
            value: "[redacted]".to_owned(),
            reason: error.to_string(),
        })?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_misspelt_variable_is_named_where_its_meaning_is_missing_or_unread() {
        let env = Env::from_pairs([
            ("PLUGBOARD_DATABSE_URL", "postgres://db/x"),
            ("PLUGBOARD_REDSI_URL", "redis://r"),
            ("PLUGBOARD_MESH_KEY", "k"),
            ("HOME", "/root"),
        ]);
        let missing = env
            .required("PLUGBOARD_DATABASE_URL", "where the service's tables live")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains(
                "PLUGBOARD_DATABSE_URL is set: is it a misspelling of PLUGBOARD_DATABASE_URL?"
            ),
            "{missing}"
        );
        assert_eq!(env.get("PLUGBOARD_REDIS_URL"), None);
        env.get("PLUGBOARD_MESH_KEY");
        // Both near-misses of names read; the correctly spelt and non-Plugboard ones are not.
        assert_eq!(
            env.misspelt(),
            [
                (
                    "PLUGBOARD_DATABSE_URL".to_owned(),
                    "PLUGBOARD_DATABASE_URL".to_owned()
                ),
                (
                    "PLUGBOARD_REDSI_URL".to_owned(),
                    "PLUGBOARD_REDIS_URL".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_redis_url_is_checked_without_showing_its_password() {
        let url = |value: &str| Env::from_pairs([(REDIS_URL, value)]).redis_url();
        assert_eq!(
            url("redis://127.0.0.1:6379").unwrap().as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        assert_eq!(Env::default().redis_url().unwrap(), None);
        for bad in [
            "redis://127.0.0.1:notaport",
            "http://redis:6379",
            "redis://:hunter2@h:x",
        ] {
            let error = url(bad).unwrap_err().to_string();
            assert!(error.starts_with("PLUGBOARD_REDIS_URL="), "{bad}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("A", ""), ("B", "7")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.parse_or("B", 1u32).unwrap(), 7);
        assert_eq!(env.parse_or("A", 1u32).unwrap(), 1);
    }

    #[test]
    fn invalid_value_names_the_key() {
        let env = Env::from_pairs([("PLUGBOARD_LISTEN_ADDR", "nowhere")]);
        let error = env
            .parse_or::<std::net::SocketAddr>("PLUGBOARD_LISTEN_ADDR", ([0, 0, 0, 0], 1).into())
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("PLUGBOARD_LISTEN_ADDR=\"nowhere\"")
        );
    }

    #[test]
    fn a_listen_address_with_a_host_name_is_told_to_use_an_ip() {
        let env = Env::from_pairs([("PLUGBOARD_LISTEN_ADDR", "localhost:50051")]);
        let error = env
            .listen_addr(([0, 0, 0, 0], 1).into())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("PLUGBOARD_LISTEN_ADDR=\"localhost:50051\""),
            "{error}"
        );
        assert!(error.contains("IP address and a port"), "{error}");
        let env = Env::from_pairs([("PLUGBOARD_LISTEN_ADDR", "127.0.0.1:7")]);
        assert_eq!(
            env.listen_addr(([0, 0, 0, 0], 1).into()).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 7))
        );
    }

    #[test]
    fn secret_comes_from_one_place_and_errors_name_the_variable() {
        let dir = std::env::temp_dir().join(format!("pb-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "from-file\n").unwrap();
        let file = Env::from_pairs([("K_FILE", path.display().to_string())]);
        assert_eq!(file.secret("K", "x").unwrap().expose_secret(), "from-file");

        let both = Env::from_pairs([
            ("K", "from-env".to_owned()),
            ("K_FILE", path.display().to_string()),
        ]);
        let error = both.secret("K", "x").unwrap_err().to_string();
        assert!(
            error.contains("K_FILE") && error.contains("only one"),
            "{error}"
        );
        assert!(!error.contains("from-env"), "{error}");

        let absent = Env::from_pairs([("K_FILE", "/nonexistent/key")]);
        let error = absent.secret("K", "x").unwrap_err().to_string();
        assert!(error.starts_with("K_FILE=\"/nonexistent/key\""), "{error}");

        let missing = Env::default().secret("K", "set it").unwrap_err();
        assert_eq!(missing.to_string(), "K or K_FILE is required: set it");
    }
}
