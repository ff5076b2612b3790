//! Calls to a partner's token endpoint through the `oauth2` crate, with failures sorted into
//! the classes the refresh logic acts on.

use std::borrow::Cow;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use plugboard_proto::credentials::v1::OAuth2Client;
use plugboard_runtime::target_guard::{GuardError, check_target};

use super::OAuthPolicy;

/// A token endpoint's answer.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    pub access_token: String,
    pub token_type: String,
    /// The new refresh token when the partner rotated it (or issued one).
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a token call failed. Messages are plain words from the partner's error code, never a
/// token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The grant or the client was refused (`invalid_grant`, revoked consent, `invalid_client`,
    /// `unauthorized_client`): retrying cannot help, the connection needs a reconnect.
    #[error("the partner refused the grant: {0}")]
    Rejected(String),
    /// The endpoint was unreachable, slow, answered 5xx or something unparseable: worth a retry.
    #[error("the token endpoint failed: {0}")]
    Transient(String),
    /// The stored client is unusable (a bad token_url), which a retry cannot fix either.
    #[error("the oauth2 client is misconfigured: {0}")]
    Config(String),
}

/// What to exchange.
pub enum Grant<'a> {
    ClientCredentials,
    RefreshToken(&'a str),
    Code {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
}

/// One call to `client.token_url` for `grant`, with client authentication as HTTP Basic (or
/// form fields), over `http` or, for a client stored with a certificate, over a client that
/// presents it. The URL is checked first: the client secret never goes to an internal address
/// unless the policy allows it (see [`OAuthPolicy::allow_private_targets`]).
pub async fn fetch(
    http: &reqwest::Client,
    policy: &OAuthPolicy,
    client: &OAuth2Client,
    grant: Grant<'_>,
) -> Result<Fetched, FetchError> {
    check_target(&client.token_url, policy.allow_private_targets)
        .await
        .map_err(|error| match error {
            GuardError::Refused { .. } => FetchError::Config(error.to_string()),
            // DNS may recover.
            GuardError::Unresolvable(reason) => FetchError::Transient(reason),
        })?;
    let presenting;
    let http = match &client.client_certificate {
        Some(certificate) => {
            presenting = super::mtls::client(certificate, policy.http_timeout)?;
            &presenting
        }
        None => http,
    };
    let token_url = TokenUrl::new(client.token_url.clone())
        .map_err(|error| FetchError::Config(format!("token_url: {error}")))?;
    let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_client_secret(ClientSecret::new(client.client_secret.clone()))
        .set_token_uri(token_url)
        .set_auth_type(if client.client_secret_in_body {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        });
    let scopes = client.scopes.iter().map(|scope| Scope::new(scope.clone()));
    let answer = match grant {
        Grant::ClientCredentials => {
            let mut request = oauth.exchange_client_credentials().add_scopes(scopes);
            for (name, value) in &client.token_parameters {
                request = request.add_extra_param(name.as_str(), value.as_str());
            }
            request.request_async(http).await
        }
        Grant::RefreshToken(refresh) => {
            let refresh = RefreshToken::new(refresh.to_owned());
            oauth
                .exchange_refresh_token(&refresh)
                .request_async(http)
                .await
        }
        Grant::Code {
            code,
            verifier,
            redirect_uri,
        } => {
            let redirect = RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|error| FetchError::Config(format!("redirect_uri: {error}")))?;
            oauth
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
                .set_redirect_uri(Cow::Owned(redirect))
                .request_async(http)
                .await
        }
    };
    match answer {
        Ok(token) => Ok(Fetched {
            access_token: token.access_token().secret().clone(),
            token_type: token.token_type().as_ref().to_owned(),
            refresh_token: token
                .refresh_token()
                .map(|refresh| refresh.secret().clone()),
            expires_in: token.expires_in(),
        }),
        Err(RequestTokenError::ServerResponse(response)) => Err(match response.error() {
            BasicErrorResponseType::InvalidGrant
            | BasicErrorResponseType::InvalidClient
            | BasicErrorResponseType::UnauthorizedClient => {
                FetchError::Rejected(response.error().to_string())
            }
            other => FetchError::Transient(format!("the partner answered {other}")),
        }),
        Err(RequestTokenError::Request(error))
            if super::mtls::refused_client_certificate(&error) =>
        {
            Err(FetchError::Rejected(
                "the token endpoint refused the TLS client certificate (missing, unknown or \
                 expired)"
                    .to_owned(),
            ))
        }
        // Only the kind of transport failure: reqwest's text can carry the url.
        Err(RequestTokenError::Request(_)) => Err(FetchError::Transient(
            "the token endpoint could not be reached".to_owned(),
        )),
        Err(RequestTokenError::Parse(_, _) | RequestTokenError::Other(_)) => Err(
            FetchError::Transient("the token endpoint answered unexpectedly".to_owned()),
        ),
    }
}
