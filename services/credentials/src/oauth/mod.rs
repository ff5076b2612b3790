//! OAuth2 handled by the credentials service itself, so connectors receive short-lived access
//! tokens rather than client secrets and refresh tokens.
//!
//! - [`refresh`]: the [`TokenBroker`]: client credentials and refresh-token grants, tokens
//!   cached sealed under the tenant's data key, refresh ahead of expiry, single flight across
//!   replicas through a coordination lease with a fencing token, failure classes and cool-down;
//! - [`connect`]: the authorization code flow with PKCE and `state` (BeginOAuth/CompleteOAuth);
//! - [`exchange`]: calls to the token endpoint through the `oauth2` crate;
//! - [`mtls`]: token calls that present the client's certificate (mTLS with OAuth2, ADP);
//! - [`store`]: the `oauth_tokens` and `oauth_pending` tables.
//!
//! An OAuth2 client secret is "managed" here when it has no user login (`username` empty): its
//! leases carry an access token. Clients with a login (Bullhorn's headless authorize) are
//! leased as stored and their connector logs in itself.

pub mod connect;
pub mod exchange;
pub mod mtls;
pub mod refresh;
pub mod store;

use std::time::Duration;

use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};

pub use refresh::{AccessToken, TokenBroker};

/// How tokens are refreshed and how failures are handled.
#[derive(Debug, Clone)]
pub struct OAuthPolicy {
    /// Refresh when the access token has less than this left.
    pub refresh_ahead: Duration,
    /// Token lifetime assumed when the partner does not say (`expires_in` missing).
    pub default_lifetime: Duration,
    /// Token calls per refresh when the endpoint fails transiently...
    pub attempts: u32,
    /// ...waiting this long before the second, doubling after.
    pub backoff: Duration,
    /// Consecutive failed refreshes after which the connection cools down...
    pub failure_threshold: u32,
    /// ...for this long: leases fail fast with UNAVAILABLE instead of calling the partner.
    pub cooldown: Duration,
    /// How long a refresh lease is held at most (a crashed holder frees it after this).
    pub lock_ttl: Duration,
    /// How long a lease waits for another replica's refresh before giving up (retryable).
    pub wait: Duration,
    /// Timeout of one token endpoint call.
    pub http_timeout: Duration,
    /// How long a BeginOAuth `state` stays valid.
    pub connect_ttl: Duration,
    /// Token endpoint URLs are tenant-supplied: unless this is set (dev mode, tests with local
    /// sandboxes: `PLUGBOARD_ALLOW_PRIVATE_TARGETS`), one that resolves to a loopback, private
    /// or link-local address is refused before any secret is sent to it.
    pub allow_private_targets: bool,
}

impl Default for OAuthPolicy {
    fn default() -> OAuthPolicy {
        OAuthPolicy {
            refresh_ahead: Duration::from_secs(60),
            default_lifetime: Duration::from_secs(3600),
            attempts: 3,
            backoff: Duration::from_millis(200),
            failure_threshold: 3,
            cooldown: Duration::from_secs(60),
            lock_ttl: Duration::from_secs(30),
            wait: Duration::from_secs(15),
            http_timeout: Duration::from_secs(10),
            connect_ttl: Duration::from_secs(600),
            allow_private_targets: false,
        }
    }
}

/// The OAuth2 client of `secret` when this service manages its tokens.
pub fn managed_client(secret: &Secret) -> Option<&OAuth2Client> {
    match &secret.kind {
        Some(secret::Kind::Oauth2Client(client))
            if client.username.is_empty() && !client.token_url.is_empty() =>
        {
            Some(client)
        }
        _ => None,
    }
}

/// What the service seals for a connection's tokens.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct TokenSet {
    #[prost(string, tag = "1")]
    pub access_token: String,
    #[prost(string, tag = "2")]
    pub token_type: String,
    /// Empty for client credentials.
    #[prost(string, tag = "3")]
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet([redacted])")
    }
}

/// What a pending authorization code connect seals: the client and the PKCE verifier.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct PendingConnect {
    #[prost(message, optional, tag = "1")]
    pub client: Option<OAuth2Client>,
    #[prost(string, tag = "2")]
    pub verifier: String,
    #[prost(string, tag = "3")]
    pub redirect_uri: String,
}

impl std::fmt::Debug for PendingConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingConnect([redacted])")
    }
}

/// Seconds since the epoch, now.
pub fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Hex SHA-256 of a token: how a connector names a refused access token without sending it, and
/// how a connect `state` is stored.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The connection id the token row's ciphertext is bound to ('#' cannot occur in a real id).
pub fn token_binding_id(connection_id: &str) -> String {
    format!("{connection_id}#oauth")
}
