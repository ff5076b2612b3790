//! The gateway's configuration, read once at start.

use std::net::SocketAddr;

use plugboard_runtime::config::{ConfigError, Env};
use secrecy::SecretString;

use crate::webhook_budget::DeliveryBudget;

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
    /// `PLUGBOARD_PUBLIC_URL`: the origin customers reach the gateway at, for example
    /// `https://integrations.example.com` behind a TLS-terminating proxy. OAuth callbacks are
    /// built from it (not from the Host header), and with `https` the session cookie is
    /// `Secure`. Unset: `http://` and the request's Host, right for `plugboard dev` only.
    pub public_url: Option<String>,
    /// `PLUGBOARD_REDIS_URL`: where every gateway replica counts each connection's webhook
    /// deliveries, so that they share one budget. Unset: each replica counts its own, right
    /// for one replica (dev mode). A Redis that is away later is no error: replicas then count
    /// on their own until it answers.
    pub redis_url: Option<String>,
    /// Webhook deliveries a connection may send per window (not read from the environment).
    pub webhook_budget: DeliveryBudget,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let listen_addr = env.listen_addr(SocketAddr::from(([0, 0, 0, 0], 8080)))?;
        let database_url = env
            .required(
                "PLUGBOARD_DATABASE_URL",
                "sqlite://<dir>/gateway.db?mode=rwc or postgres://user@host/db",
            )?
            .to_owned();
        let mesh_key = env.mesh_key()?;
        Ok(Config {
            listen_addr,
            database_url,
            mesh_key,
            credentials_addr: address(env, "PLUGBOARD_CREDENTIALS_ADDR")?,
            mapping_addr: address(env, "PLUGBOARD_MAPPING_ADDR")?,
            sync_addr: address(env, "PLUGBOARD_SYNC_ADDR")?,
            health_addr: address(env, "PLUGBOARD_HEALTH_ADDR")?,
            registry_addr: address(env, "PLUGBOARD_REGISTRY_ADDR")?,
            public_url: public_url(env)?,
            redis_url: env.redis_url()?,
            webhook_budget: DeliveryBudget::default(),
        })
    }
}

/// An origin: http or https, a host, nothing after it but an optional `/`.
fn public_url(env: &Env) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "PLUGBOARD_PUBLIC_URL";
    let Some(value) = env.get(KEY) else {
        return Ok(None);
    };
    // A URL with a user part may carry a password: never echo it.
    let shown = if value.contains('@') {
        "[redacted]".to_owned()
    } else {
        value.to_owned()
    };
    let invalid = |reason: &str| ConfigError::Invalid {
        key: KEY.to_owned(),
        value: shown.clone(),
        reason: reason.to_owned(),
    };
    if value.contains('#') {
        return Err(invalid("give the origin only: no fragment"));
    }
    let uri: http::Uri = value
        .parse()
        .map_err(|_| invalid("expected an origin such as https://integrations.example.com"))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) {
        return Err(invalid(
            "the scheme must be https (or http for a local setup)",
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("a host is required"));
    };
    let bare = uri.path_and_query().is_none_or(|rest| rest.as_str() == "/");
    if !bare || authority.as_str().contains('@') {
        return Err(invalid(
            "give the origin only: no path, query or user, for example https://integrations.example.com",
        ));
    }
    let origin = format!("{}://{authority}", uri.scheme_str().unwrap_or("https"));
    if !origin.starts_with("https://") {
        tracing::warn!(
            public_url = %origin,
            "PLUGBOARD_PUBLIC_URL is http: session cookies are not Secure; use https outside a local setup"
        );
    }
    Ok(Some(origin))
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

    #[test]
    fn the_public_url_is_an_origin() {
        let with = |url: &str| public_url(&Env::from_pairs([("PLUGBOARD_PUBLIC_URL", url)]));
        assert_eq!(
            with("https://integrations.example.com/")
                .unwrap()
                .as_deref(),
            Some("https://integrations.example.com")
        );
        assert_eq!(
            with("http://127.0.0.1:8080").unwrap().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in [
            "integrations.example.com",
            "ftp://example.com",
            "https://example.com/dashboard",
            "https://example.com/?x=1",
            "https://user@example.com",
            "https://example.com/#top",
        ] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains("PLUGBOARD_PUBLIC_URL"), "{bad}: {error}");
        }
        assert_eq!(public_url(&Env::default()).unwrap(), None);
        let error = with("https://user:hunter2@example.com")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

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
        assert_eq!(config.redis_url, None);
    }

    #[test]
    fn a_malformed_redis_url_is_named() {
        let mut pairs = complete();
        pairs.push(("PLUGBOARD_REDIS_URL", "redis://redis:port"));
        let error = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(
            error.to_string().starts_with("PLUGBOARD_REDIS_URL="),
            "{error}"
        );
        let mut pairs = complete();
        pairs.push(("PLUGBOARD_REDIS_URL", "redis://redis:6379"));
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://redis:6379"));
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
