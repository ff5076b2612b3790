//! The generic OAuth2 sandbox over real HTTP on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions, serve};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct Server {
    base: String,
    http: reqwest::Client,
}

async fn start(options: OAuthOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, options, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Server { base, http }
}

const REDIRECT: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "a-code-verifier-of-sufficient-length-0123456789abcdef";

impl Server {
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form = form.to_vec();
        form.extend([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]);
        let response = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn stats(&self) -> Value {
        let url = format!("{}/_sandbox/oauth2/stats", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn me(&self, token: &str) -> StatusCode {
        self.http
            .get(format!("{}/oauth2/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn faults(&self, body: Value) {
        let url = format!("{}/_sandbox/oauth2/faults", self.base);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Authorize with PKCE; returns the redirect's query pairs.
    async fn authorize(&self, challenge: &str, state: &str) -> Vec<(String, String)> {
        let response = self
            .http
            .get(format!("{}/oauth2/authorize", self.base))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("state", state),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("scope", "read"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let url = reqwest::Url::parse(&location).unwrap();
        url.query_pairs().into_owned().collect()
    }
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn authorization_code_with_pkce_and_rotating_refresh_tokens() {
    let server = start(OAuthOptions::default()).await;
    let pairs = server.authorize(&challenge(VERIFIER), "st-1").await;
    assert_eq!(get(&pairs, "state"), "st-1");
    let code = get(&pairs, "code").to_owned();

    // A wrong verifier fails, and burns the code.
    let (status, body) = server
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "wrong-verifier"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let pairs = server.authorize(&challenge(VERIFIER), "st-2").await;
    let code = get(&pairs, "code").to_owned();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, first) = server.token(&exchange).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 3600);
    // Codes are single use.
    let (status, _) = server.token(&exchange).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.me(first["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // Refresh rotates the refresh token.
    let refresh_1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_1),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    let refresh_2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh_1, refresh_2);

    // Reusing the old one is invalid_grant and revokes the family, the new one included.
    let (status, body) = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_1),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = server
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_2),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.me(second["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );

    let stats = server.stats().await;
    assert_eq!(stats["token_calls"], 6, "{stats}");
    assert_eq!(stats["grants"]["refresh_token"], 3, "{stats}");
    assert_eq!(stats["refresh_reuses"], 1, "{stats}");
    assert_eq!(stats["authorizations"], 2, "{stats}");
}

#[tokio::test]
async fn authorize_requires_pkce_and_state() {
    let server = start(OAuthOptions::default()).await;
    let pairs = server.authorize("", "st").await;
    assert_eq!(get(&pairs, "error"), "invalid_request");
    assert_eq!(get(&pairs, "code"), "");
}

#[tokio::test]
async fn client_credentials_expiry_faults_and_revoked_consent() {
    let server = start(OAuthOptions {
        access_token_ttl: Duration::from_secs(1),
        ..OAuthOptions::default()
    })
    .await;
    let (status, body) = server.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.me(&access).await, StatusCode::UNAUTHORIZED);

    // Wrong client secret.
    let response = server
        .http
        .post(format!("{}/oauth2/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Injected failures, then recovery.
    server.faults(json!({"fail_next": 2, "status": 503})).await;
    for _ in 0..2 {
        let (status, body) = server.token(&[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let (status, body) = server.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    let live = body["access_token"].as_str().unwrap().to_owned();

    // Revoked consent: live tokens stop working.
    server.faults(json!({"revoke_consent": true})).await;
    assert_eq!(server.me(&live).await, StatusCode::UNAUTHORIZED);
    let stats = server.stats().await;
    assert_eq!(stats["token_calls"], 5, "{stats}");
    assert_eq!(stats["injected_failures"], 2, "{stats}");
}
