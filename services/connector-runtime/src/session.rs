//! Connection settings and sessions: what every partner request of a connection carries.
//!
//! A session is the manifest's auth scheme applied to a leased secret: a header or query
//! parameter for API keys, Basic and Bearer; for OAuth2 (client credentials or authorization
//! code) the access token credentials leased, or, for a fixed client secret (the conformance
//! kit, tooling), a token from the token endpoint; a session token (and possibly a new base URL)
//! from a login request; a TLS client of its own presenting the client certificate for mTLS.
//! A session ends when its lease does, so a revoked or rotated secret takes effect.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::access::{Secret, token_digest};
use crate::error::Error;
use crate::guard::check_target;
use crate::http::{Answer, Body, Http, Limiter, Request};
use crate::manifest::{Auth, ClientAuth, KeyLocation, Manifest, Method, SettingType};
use crate::template;

/// A connection's settings with the manifest's defaults applied, and its base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub values: Value,
    pub base_url: Url,
}

impl Settings {
    /// Parses `settings_json` against the manifest's settings and guards every URL.
    pub async fn resolve(
        manifest: &Manifest,
        settings_json: &str,
        allow_private: bool,
    ) -> Result<Settings, Error> {
        let given: Map<String, Value> = if settings_json.trim().is_empty() {
            Map::new()
        } else {
            serde_json::from_str(settings_json)
                .map_err(|e| Error::InvalidSettings(format!("settings_json: {e}")))?
        };
        if let Some(unknown) = given
            .keys()
            .find(|key| !manifest.settings.contains_key(*key))
        {
            return Err(Error::InvalidSettings(format!(
                "unknown setting {unknown:?}; {} takes {}",
                manifest.name,
                manifest
                    .settings
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut values = Map::new();
        for (name, spec) in &manifest.settings {
            let value = match given.get(name).or(spec.default.as_ref()) {
                Some(value) => value.clone(),
                None => {
                    return Err(Error::InvalidSettings(format!(
                        "setting {name} is required"
                    )));
                }
            };
            let fits = match spec.kind {
                SettingType::String | SettingType::Url => value.is_string(),
                SettingType::Integer => value.is_i64() || value.is_u64(),
                SettingType::Boolean => value.is_boolean(),
            };
            if !fits {
                return Err(Error::InvalidSettings(format!(
                    "setting {name} must be a {:?}",
                    spec.kind
                )));
            }
            if spec.kind == SettingType::Url {
                let text = value.as_str().unwrap_or_default().trim_end_matches('/');
                check_target(text, allow_private).await?;
                values.insert(name.clone(), Value::String(text.to_owned()));
            } else {
                values.insert(name.clone(), value);
            }
        }
        let values = Value::Object(values);
        let base = template::render(&manifest.base_url, &json!({ "settings": &values }))
            .map_err(Error::InvalidSettings)?;
        let base_url = check_target(base.trim_end_matches('/'), allow_private).await?;
        Ok(Settings { values, base_url })
    }
}

/// What a request of one connection carries, until it expires.
#[derive(Debug, Clone)]
pub struct Session {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub base_url: Url,
    pub expires: Option<Instant>,
    /// The digest of the leased access token the session presents, to name it to credentials
    /// when the partner refuses it.
    pub access_token_sha256: Option<String>,
    /// The session's own HTTP client, presenting a client certificate (mTLS); the connector's
    /// shared client otherwise.
    pub http: Option<Http>,
    /// Credential values body templates read as `{{ auth.<name> }}` (an api_key `in: body`).
    pub body_values: Map<String, Value>,
}

impl Session {
    pub fn is_live(&self) -> bool {
        self.expires.is_none_or(|expires| expires > Instant::now())
    }

    /// Ends the session no later than `at` (a little early, so it never lapses mid-request).
    fn expire_by(&mut self, at: Option<chrono::DateTime<chrono::Utc>>) {
        let Some(at) = at else { return };
        let left = (at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_sub(EXPIRY_MARGIN)
            .max(Duration::from_secs(1));
        let by = Instant::now() + left;
        self.expires = Some(self.expires.map_or(by, |expires| expires.min(by)));
    }

    /// Presents `token` (leased from credentials) as a bearer token.
    fn bearer_from_lease(&mut self, token: &str, secret: &Secret) {
        self.headers
            .push(("Authorization".to_owned(), format!("Bearer {token}")));
        self.access_token_sha256 = Some(token_digest(token));
        self.expire_by(secret.access_token_expires_at());
    }
}

/// Sessions end this long before their token or lease does.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Applies the manifest's auth to `secret`, logging in or fetching a token when it says so.
pub async fn open(
    manifest: &Manifest,
    http: &Http,
    limiter: &Limiter,
    settings: &Settings,
    secret: &Secret,
    allow_private: bool,
) -> Result<Session, Error> {
    let needed = manifest.credential_kind();
    if needed != secret.kind && !(needed == "basic" && secret.kind == "oauth2_client") {
        return Err(Error::WrongCredentialKind {
            found: secret.kind,
            needed,
        });
    }
    let scope = json!({ "settings": &settings.values, "secret": secret.scope() });
    let render = |text: &str| template::render(text, &scope).map_err(Error::InvalidSettings);
    let mut session = Session {
        headers: Vec::new(),
        query: Vec::new(),
        base_url: settings.base_url.clone(),
        expires: None,
        access_token_sha256: None,
        http: None,
        body_values: Map::new(),
    };
    session.expire_by(secret.lease_expires_at());
    match &manifest.auth {
        Auth::ApiKey {
            location,
            name,
            value,
        } => {
            let value = render(value)?;
            match location {
                KeyLocation::Header => session.headers.push((name.clone(), value)),
                KeyLocation::Query => session.query.push((name.clone(), value)),
                KeyLocation::Body => {
                    session
                        .body_values
                        .insert(name.clone(), Value::String(value));
                }
            }
        }
        Auth::Basic { username, password } => {
            let pair = format!("{}:{}", render(username)?, render(password)?);
            session.headers.push((
                "Authorization".to_owned(),
                format!("Basic {}", STANDARD.encode(pair)),
            ));
        }
        Auth::Bearer { token } => {
            session.headers.push((
                "Authorization".to_owned(),
                format!("Bearer {}", render(token)?),
            ));
        }
        // Credentials fetched and refreshes the token: use it, never the token endpoint.
        Auth::Oauth2ClientCredentials { .. } if secret.access_token().is_some() => {
            if let Some(token) = secret.access_token() {
                session.bearer_from_lease(token, secret);
            }
            // An OAuth2 client stored with a certificate (ADP): the API wants both.
            if let (Some(chain), Some(key)) = (
                secret.get("certificate_chain_pem"),
                secret.get("private_key_pem"),
            ) {
                let identity = format!("{chain}\n{key}");
                let server_ca = secret.get("server_ca_pem").unwrap_or_default();
                session.http = Some(Http::with_client_certificate(
                    identity.as_bytes(),
                    server_ca.as_bytes(),
                )?);
            }
        }
        Auth::Oauth2ClientCredentials {
            token_url,
            scopes,
            client_auth,
            extra,
        } => {
            let url = match token_url {
                Some(url) => render(url)?,
                None => secret.get("token_url").unwrap_or_default().to_owned(),
            };
            let url = check_target(&url, allow_private).await?;
            let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
            if !scopes.is_empty() {
                form.push(("scope".to_owned(), scopes.join(" ")));
            }
            for (key, value) in extra {
                form.push((key.clone(), render(value)?));
            }
            let client_id = secret.get("client_id").unwrap_or_default();
            let client_secret = secret.get("client_secret").unwrap_or_default();
            let mut headers = Vec::new();
            match client_auth {
                ClientAuth::Basic => headers.push((
                    "Authorization".to_owned(),
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("{client_id}:{client_secret}"))
                    ),
                )),
                ClientAuth::Body => {
                    form.push(("client_id".to_owned(), client_id.to_owned()));
                    form.push(("client_secret".to_owned(), client_secret.to_owned()));
                }
            }
            let request = Request {
                method: Method::Post,
                url,
                headers,
                query: Vec::new(),
                body: Body::Form(form),
            };
            let body = call(http, limiter, &request, "token request").await?;
            let token = body["access_token"].as_str().ok_or_else(|| {
                Error::PartnerResponse("the token response has no access_token".to_owned())
            })?;
            session
                .headers
                .push(("Authorization".to_owned(), format!("Bearer {token}")));
            // Renew a little early so a token never expires mid-request.
            session.expires = body["expires_in"].as_u64().map(|seconds| {
                Instant::now() + Duration::from_secs(seconds.saturating_sub(30).max(1))
            });
        }
        // The customer consented through the gateway's connect flow; credentials holds the
        // refresh token and leases only access tokens.
        Auth::Oauth2AuthorizationCode { .. } => {
            let Some(token) = secret.access_token() else {
                return Err(Error::CredentialsRejected(
                    "no access token was leased: connect the integration at the partner's \
                     consent page"
                        .to_owned(),
                ));
            };
            session.bearer_from_lease(token, secret);
        }
        Auth::Mtls {
            certificate,
            private_key,
        } => {
            let identity = format!("{}\n{}", render(certificate)?, render(private_key)?);
            let server_ca = secret.get("server_ca_pem").unwrap_or_default();
            session.http = Some(Http::with_client_certificate(
                identity.as_bytes(),
                server_ca.as_bytes(),
            )?);
        }
        Auth::Login {
            token,
            base_url,
            apply,
            ..
        } => {
            let steps = manifest.auth.login_steps();
            let answer =
                crate::login::run_steps(&steps, http, limiter, settings, &scope, allow_private)
                    .await?;
            let token = answer
                .pointer(token)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::PartnerResponse(format!("the login response has no {token}"))
                })?;
            if let Some(pointer) = base_url {
                let url = answer
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::PartnerResponse(format!("the login response has no {pointer}"))
                    })?;
                // The partner names the base URL, and it receives the session: guard it too.
                session.base_url = check_target(url.trim_end_matches('/'), allow_private).await?;
            }
            let value = template::render(&apply.value, &json!({"session": {"token": token}}))
                .map_err(Error::InvalidSettings)?;
            if let Some(header) = &apply.header {
                session.headers.push((header.clone(), value));
            } else if let Some(query) = &apply.query {
                session.query.push((query.clone(), value));
            }
        }
    }
    for (name, value) in &manifest.headers {
        session.headers.push((name.clone(), render(value)?));
    }
    Ok(session)
}

/// A request of the auth flow itself: a 401 or 403 means the credential is wrong.
async fn call(
    http: &Http,
    limiter: &Limiter,
    request: &Request,
    what: &str,
) -> Result<Value, Error> {
    let mut waits = 0;
    match http.send(limiter, request, &mut waits).await {
        Ok(Answer::Ok(response)) => Ok(response.body),
        Ok(Answer::Unauthorized) => Err(Error::CredentialsRejected(format!("{what} answered 401"))),
        Err(Error::PartnerRejected { status, message }) if matches!(status, 400 | 403) => Err(
            Error::CredentialsRejected(format!("{what} answered {status}: {message}")),
        ),
        Err(error) => Err(error),
    }
}
