//! HTTP calls to Bullhorn: the three-step login and entity requests with retries.
//!
//! Login: `GET {auth_url}/oauth/authorize` (headless, redirects are not followed; the `code`
//! is read from `Location`), the code exchange at `{auth_url}/oauth/token` through the `oauth2`
//! crate, then `GET {login_url}/rest-services/login` for the `BhRestToken` and `restUrl`.
//! Entity requests wait out 429s as `Retry-After` says and retry 5xx and connection errors with
//! exponential backoff.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, AuthorizationCode, ClientId, ClientSecret, TokenResponse, TokenUrl};
use reqwest::{StatusCode, Url, header};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::access::OAuthSecret;
use crate::error::{Error, transport};
use crate::settings::{Settings, check_target};

/// Longest single wait a `Retry-After` can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Wait when a 429 carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Consecutive 429s on one request before the read gives up.
const MAX_RATE_LIMIT_WAITS: u32 = 50;
/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A logged-in Bullhorn session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Base of entity calls, ending in `/`.
    pub rest_url: Url,
    pub token: String,
}

/// What one entity request came to.
#[derive(Debug)]
pub enum Fetched {
    Json(Value),
    /// The session was refused (401): log in again.
    Unauthorized,
}

#[derive(Debug, Clone)]
pub struct Partner {
    http: reqwest::Client,
    allow_private: bool,
    backoff: ExponentialBuilder,
}

#[derive(Deserialize)]
struct LoginResponse {
    #[serde(rename = "BhRestToken")]
    token: String,
    #[serde(rename = "restUrl")]
    rest_url: String,
}

impl Partner {
    pub fn new(allow_private: bool) -> Result<Partner, Error> {
        let http = reqwest::Client::builder()
            // The authorize step answers with a redirect whose Location holds the code; it
            // must be read, never followed (following would also defeat the target guard).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Startup(format!("cannot build the http client: {e}")))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(4)
            .with_jitter();
        Ok(Partner {
            http,
            allow_private,
            backoff,
        })
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The whole login: authorize, token exchange, REST login. Transient failures are retried.
    pub async fn login(&self, settings: &Settings, secret: &OAuthSecret) -> Result<Session, Error> {
        let code = (|| self.authorize(settings, secret))
            .retry(self.backoff)
            .when(Error::is_transient)
            .await?;
        let access_token = self.exchange(settings, secret, code).await?;
        let session = (|| self.rest_login(settings, &access_token))
            .retry(self.backoff)
            .when(Error::is_transient)
            .await?;
        tracing::debug!(rest_url = %session.rest_url, "logged in to bullhorn");
        Ok(session)
    }

    async fn authorize(&self, settings: &Settings, secret: &OAuthSecret) -> Result<String, Error> {
        let url = format!("{}/oauth/authorize", settings.auth_url);
        let response = self
            .http
            .get(&url)
            .headers(plugboard_proto::trace_context::current_http_headers())
            .query(&[
                ("client_id", secret.client_id.as_str()),
                ("response_type", "code"),
                ("action", "Login"),
                ("username", secret.username.as_str()),
                ("password", secret.password.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| transport("authorize", e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Error::PartnerUnavailable(format!(
                "authorize answered {status}"
            )));
        }
        if !status.is_redirection() {
            return Err(Error::CredentialsRejected(format!(
                "the authorize step answered {status} instead of redirecting with a code"
            )));
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| Error::PartnerResponse("authorize redirect has no Location".into()))?;
        let target = response
            .url()
            .join(location)
            .map_err(|e| Error::PartnerResponse(format!("authorize Location is invalid: {e}")))?;
        if let Some((_, error)) = target.query_pairs().find(|(key, _)| key == "error") {
            return Err(Error::CredentialsRejected(format!(
                "authorize refused: {error}"
            )));
        }
        target
            .query_pairs()
            .find(|(key, _)| key == "code")
            .map(|(_, code)| code.into_owned())
            .ok_or_else(|| Error::PartnerResponse("authorize redirect has no code".into()))
    }

    async fn exchange(
        &self,
        settings: &Settings,
        secret: &OAuthSecret,
        code: String,
    ) -> Result<String, Error> {
        let token_url = TokenUrl::new(format!("{}/oauth/token", settings.auth_url))
            .map_err(|e| Error::InvalidSettings(format!("auth_url: {e}")))?;
        let client = BasicClient::new(ClientId::new(secret.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                secret.client_secret.expose_secret().to_owned(),
            ))
            .set_token_uri(token_url)
            // Bullhorn takes the client credentials as parameters, not HTTP Basic.
            .set_auth_type(AuthType::RequestBody);
        // An authorization code is single use, so the exchange itself is never retried.
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                oauth2::RequestTokenError::ServerResponse(response) => match response.error() {
                    BasicErrorResponseType::InvalidGrant
                    | BasicErrorResponseType::InvalidClient
                    | BasicErrorResponseType::UnauthorizedClient => Error::CredentialsRejected(
                        format!("token exchange refused: {}", response.error()),
                    ),
                    other => Error::PartnerResponse(format!("token exchange refused: {other}")),
                },
                oauth2::RequestTokenError::Request(error) => {
                    Error::PartnerUnavailable(format!("token exchange failed: {error}"))
                }
                oauth2::RequestTokenError::Parse(_, _) | oauth2::RequestTokenError::Other(_) => {
                    Error::PartnerResponse("token endpoint answered unexpectedly".to_owned())
                }
            })?;
        Ok(token.access_token().secret().to_owned())
    }

    async fn rest_login(&self, settings: &Settings, access_token: &str) -> Result<Session, Error> {
        let response = self
            .http
            .get(format!("{}/rest-services/login", settings.login_url))
            .headers(plugboard_proto::trace_context::current_http_headers())
            .query(&[("version", "2.0"), ("access_token", access_token)])
            .send()
            .await
            .map_err(|e| transport("rest login", e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Error::PartnerUnavailable(format!(
                "rest login answered {status}"
            )));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::CredentialsRejected(format!(
                "rest login answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(Error::PartnerResponse(format!(
                "rest login answered {status}"
            )));
        }
        let login: LoginResponse = response
            .json()
            .await
            .map_err(|e| Error::PartnerResponse(format!("rest login body: {}", e.without_url())))?;
        // restUrl comes from the partner, and it receives the session token: guard it too.
        let mut rest_url = check_target(&login.rest_url, self.allow_private).await?;
        if !rest_url.path().ends_with('/') {
            rest_url.set_path(&format!("{}/", rest_url.path()));
        }
        Ok(Session {
            rest_url,
            token: login.token,
        })
    }

    /// `GET {restUrl}{path}?{query}` with the session, waiting out 429s (counted in `waits`)
    /// and retrying transient failures.
    pub async fn get_json(
        &self,
        session: &Session,
        path: &str,
        query: &[(&str, String)],
        waits: &mut u32,
    ) -> Result<Fetched, Error> {
        let url = session
            .rest_url
            .join(path)
            .map_err(|e| Error::PartnerResponse(format!("cannot build url for {path}: {e}")))?;
        let mut consecutive = 0;
        loop {
            let attempt = (|| self.get_once(&url, &session.token, query))
                .retry(self.backoff)
                .when(Error::is_transient)
                .notify(|error, delay| {
                    tracing::info!(error = %error, ?delay, "retrying bullhorn request");
                })
                .await?;
            match attempt {
                Attempt::Done(fetched) => return Ok(fetched),
                Attempt::RateLimited(delay) => {
                    consecutive += 1;
                    if consecutive > MAX_RATE_LIMIT_WAITS {
                        return Err(Error::RateLimited(consecutive - 1));
                    }
                    *waits += 1;
                    tracing::info!(?delay, "bullhorn rate limited the request, waiting");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn get_once(
        &self,
        url: &Url,
        token: &str,
        query: &[(&str, String)],
    ) -> Result<Attempt, Error> {
        let response = self
            .http
            .get(url.clone())
            .headers(plugboard_proto::trace_context::current_http_headers())
            .header("BhRestToken", token)
            .query(query)
            .send()
            .await
            .map_err(|e| transport("bullhorn request", e))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let delay = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            return Ok(Attempt::RateLimited(delay));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Attempt::Done(Fetched::Unauthorized));
        }
        if status.is_server_error() {
            return Err(Error::PartnerUnavailable(format!(
                "bullhorn answered {status}"
            )));
        }
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or_default();
            let message = body["errorMessage"]
                .as_str()
                .unwrap_or("no error message")
                .to_owned();
            return Err(Error::PartnerRejected {
                status: status.as_u16(),
                message,
            });
        }
        let body = response
            .json()
            .await
            .map_err(|e| Error::PartnerResponse(format!("invalid json: {}", e.without_url())))?;
        Ok(Attempt::Done(Fetched::Json(body)))
    }
}

enum Attempt {
    Done(Fetched),
    RateLimited(Duration),
}
