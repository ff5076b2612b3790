//! Connection settings and the guard that keeps them off internal networks.
//!
//! A connection's settings name Bullhorn's data-centre specific bases, and Bullhorn's login
//! answers with a `restUrl`. All three are URLs the connector will call with secrets attached,
//! so each one must be http(s) and resolve only to public addresses, unless the process runs
//! with `PLUGBOARD_ALLOW_PRIVATE_TARGETS=true` (dev mode and tests, whose sandbox is local).
//! The guard itself lives in `plugboard_connector_runtime::guard`, shared by every connector.

use plugboard_connector_runtime::guard::{self, GuardError};
use reqwest::Url;
use serde::Deserialize;

use crate::error::Error;

/// `ConnectionRef.settings_json` for Bullhorn.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Settings {
    /// OAuth base of the customer's data centre, e.g. `https://auth-east.bullhornstaffing.com`;
    /// the connector calls `{auth_url}/oauth/authorize` and `{auth_url}/oauth/token`.
    pub auth_url: String,
    /// REST login base, e.g. `https://rest-east.bullhornstaffing.com`; the connector calls
    /// `{login_url}/rest-services/login`.
    pub login_url: String,
}

impl Settings {
    pub fn parse(json: &str) -> Result<Settings, Error> {
        if json.trim().is_empty() {
            return Err(Error::InvalidSettings(
                "settings_json is empty; it needs auth_url and login_url".to_owned(),
            ));
        }
        let mut settings: Settings =
            serde_json::from_str(json).map_err(|e| Error::InvalidSettings(e.to_string()))?;
        settings.auth_url = settings.auth_url.trim_end_matches('/').to_owned();
        settings.login_url = settings.login_url.trim_end_matches('/').to_owned();
        Ok(settings)
    }

    /// Checks both bases against the target guard.
    pub async fn check(&self, allow_private: bool) -> Result<(), Error> {
        check_target(&self.auth_url, allow_private).await?;
        check_target(&self.login_url, allow_private).await?;
        Ok(())
    }
}

/// Accepts `url` when it is http(s) and every address its host resolves to is public: the
/// connector runtime's target guard, with its refusals as this crate's errors.
pub async fn check_target(url: &str, allow_private: bool) -> Result<Url, Error> {
    guard::check_target(url, allow_private)
        .await
        .map_err(|error| match error {
            GuardError::Refused { url, reason } => Error::TargetNotAllowed { url, reason },
            GuardError::Unresolvable(message) => Error::PartnerUnavailable(message),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_become_target_not_allowed() {
        assert!(matches!(
            check_target("http://127.0.0.1:9101", false).await,
            Err(Error::TargetNotAllowed { .. })
        ));
        assert!(check_target("http://127.0.0.1:9101", true).await.is_ok());
    }

    #[test]
    fn settings_parse_and_trim() {
        let settings = Settings::parse(
            r#"{"auth_url": "https://a.example/", "login_url": "https://r.example"}"#,
        )
        .unwrap();
        assert_eq!(settings.auth_url, "https://a.example");
        assert!(matches!(
            Settings::parse(""),
            Err(Error::InvalidSettings(_))
        ));
        assert!(matches!(
            Settings::parse(r#"{"auth_url": "x"}"#),
            Err(Error::InvalidSettings(_))
        ));
    }
}
