//! Every auth scheme the runtime implements, against a small partner stand-in on 127.0.0.1:0:
//! API key in a header and in the query, bearer, OAuth2 client credentials and a login step,
//! each with a session that the partner expires mid-run.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_proto::connector::v1::ConnectionRef;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The partner: valid tokens, how many were issued, and the items it serves.
#[derive(Clone, Default)]
struct Partner {
    valid: Arc<Mutex<Vec<String>>>,
    issued: Arc<Mutex<u32>>,
}

impl Partner {
    fn issue(&self) -> String {
        let mut issued = self.issued.lock().unwrap();
        *issued += 1;
        let token = format!("token-{issued}");
        self.valid.lock().unwrap().push(token.clone());
        token
    }

    fn expire_all(&self) {
        self.valid.lock().unwrap().clear();
    }

    fn allows(&self, token: &str) -> bool {
        self.valid
            .lock()
            .unwrap()
            .iter()
            .any(|valid| valid == token)
    }
}

async fn token(State(partner): State<Partner>, headers: HeaderMap, body: String) -> Response {
    // client_id "cid", client_secret "cs" as HTTP Basic.
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
    if basic != Some("Basic Y2lkOmNz") || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    Json(json!({"access_token": partner.issue(), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn login(
    State(partner): State<Partner>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if body != json!({"user": "u", "password": "p"}) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let host = headers.get("host").unwrap().to_str().unwrap();
    Json(json!({"session": {"id": partner.issue()}, "api": format!("http://{host}/dc2")}))
        .into_response()
}

async fn items(
    State(partner): State<Partner>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let presented = header("x-api-key")
        .or_else(|| query.get("api_key").cloned())
        .or_else(|| {
            header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        })
        .or_else(|| header("x-session"))
        .unwrap_or_default();
    let fixed_key = presented == "key-1";
    if !fixed_key && !partner.allows(&presented) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"items": [{"id": 1}, {"id": 2}]})).into_response()
}

async fn start() -> (String, Partner) {
    let partner = Partner::default();
    let router = Router::new()
        .route("/oauth/token", post(token))
        .route("/login", post(login))
        .route("/items", get(items))
        .route("/dc2/items", get(items))
        .with_state(partner.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, partner)
}

fn manifest(auth: &str) -> String {
    format!(
        "manifest_version: 1\nname: stand-in\ndisplay_name: Stand-in\ncategory: ats\nversion: '1'\n\
         base_url: \"{{{{ settings.base_url }}}}\"\nsettings:\n  base_url: {{type: url}}\n\
         auth: {auth}\nstreams:\n  items: {{entity: candidate, path: /items, records: /items}}\n"
    )
}

async fn read_twice_across_expiry(auth: &str, secret: Secret) -> (usize, u32) {
    let (url, partner) = start().await;
    let manifest = load_str("stand-in.yaml", &manifest(auth)).unwrap();
    let connector = Connector::new(manifest, SecretSource::Fixed(secret), true).unwrap();
    let params = ReadParams {
        tenant: "t".to_owned(),
        connection: ConnectionRef {
            connection_id: "c".to_owned(),
            settings_json: json!({"base_url": url}).to_string(),
        },
        stream: "items".to_owned(),
        checkpoint: String::new(),
        page_size: 0,
        run_id: String::new(),
    };
    let first = connector.read_all(params.clone()).await.unwrap();
    partner.expire_all();
    let second = connector.read_all(params).await.unwrap();
    let records = first
        .iter()
        .chain(&second)
        .map(|page| page.records.len())
        .sum();
    let issued = *partner.issued.lock().unwrap();
    (records, issued)
}

#[tokio::test]
async fn api_keys_in_a_header_or_the_query() {
    let (records, _) = read_twice_across_expiry(
        "{type: api_key, in: header, name: X-Api-Key}",
        Secret::api_key("key-1"),
    )
    .await;
    assert_eq!(records, 4);
    let (records, _) = read_twice_across_expiry(
        "{type: api_key, in: query, name: api_key}",
        Secret::api_key("key-1"),
    )
    .await;
    assert_eq!(records, 4);
}

#[tokio::test]
async fn a_wrong_key_is_refused_as_rejected_credentials() {
    let (url, _) = start().await;
    let manifest = load_str("s.yaml", &manifest("{type: bearer}")).unwrap();
    let connector =
        Connector::new(manifest, SecretSource::Fixed(Secret::api_key("nope")), true).unwrap();
    let connection = ConnectionRef {
        connection_id: "c".to_owned(),
        settings_json: json!({"base_url": url}).to_string(),
    };
    let check = connector.check("t", &connection).await.unwrap();
    assert!(!check.ok);
    assert!(
        check
            .reason
            .contains("rejected the connection's credentials"),
        "{}",
        check.reason
    );
}

#[tokio::test]
async fn oauth2_client_credentials_fetch_a_new_token_when_it_expires() {
    let auth =
        "{type: oauth2_client_credentials, token_url: \"{{ settings.base_url }}/oauth/token\"}";
    let (records, issued) =
        read_twice_across_expiry(auth, Secret::oauth2_client("cid", "cs", "", "", "")).await;
    assert_eq!(records, 4);
    assert_eq!(
        issued, 2,
        "one token, then one after the partner expired it"
    );
}

#[tokio::test]
async fn a_login_step_gives_a_session_and_a_base_url_and_is_repeated_on_expiry() {
    let auth = "{type: login, request: {method: POST, url: /login, json: {user: \"{{ secret.username }}\", \
                password: \"{{ secret.password }}\"}}, token: /session/id, base_url: /api, \
                apply: {header: X-Session}}";
    let (records, issued) = read_twice_across_expiry(auth, Secret::basic("u", "p")).await;
    assert_eq!(records, 4);
    assert_eq!(
        issued, 2,
        "one login, then one after the partner expired the session"
    );
}

#[tokio::test]
async fn a_credential_of_the_wrong_kind_is_refused() {
    let (url, _) = start().await;
    let manifest = load_str("s.yaml", &manifest("{type: bearer}")).unwrap();
    let connector =
        Connector::new(manifest, SecretSource::Fixed(Secret::basic("u", "p")), true).unwrap();
    let params = ReadParams {
        tenant: "t".to_owned(),
        connection: ConnectionRef {
            connection_id: "c".to_owned(),
            settings_json: json!({"base_url": url}).to_string(),
        },
        stream: "items".to_owned(),
        checkpoint: String::new(),
        page_size: 0,
        run_id: String::new(),
    };
    let error = connector.read_all(params).await.unwrap_err();
    assert!(error.to_string().contains("needs api_key"), "{error}");
}
