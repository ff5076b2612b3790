//! OAuth2 in the credentials service against the strict OAuth2 sandbox over real HTTP, through
//! real tonic servers: client credentials, the authorization code flow with PKCE and rotating
//! refresh tokens, single-flight refresh (in-process, and across two servers on one Redis and
//! one PostgreSQL schema), and the failure classes.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::oauth::OAuthPolicy;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::o_auth_service_client::OAuthServiceClient;
use plugboard_proto::credentials::v1::{
    BeginOAuthRequest, CompleteOAuthRequest, LeaseAccessRequest, LeaseAccessResponse, OAuth2Client,
    PutCredentialRequest, Secret, secret,
};
use plugboard_proto::error::reason_of;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};
use secrecy::SecretString;
use serde_json::{Value, json};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const MESH_KEY: &str = "credentials-test-mesh-key-32-bytes-or-more";
const TENANT: &str = "acme";

type Client = CredentialsServiceClient<InterceptedService<Channel, MeshCredentials>>;
type Connect = OAuthServiceClient<InterceptedService<Channel, MeshCredentials>>;

fn mesh_key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

fn identity(subject: &str, connector: Option<&str>) -> MeshCredentials {
    MeshCredentials::new(
        mesh_key(),
        Caller {
            subject: subject.to_owned(),
            tenant: Some(TENANT.to_owned()),
            connector: connector.map(str::to_owned),
        },
    )
}

/// The OAuth2 sandbox on 127.0.0.1:0.
struct Partner {
    base: String,
    http: reqwest::Client,
}

impl Partner {
    async fn start() -> Partner {
        Partner::start_with(OAuthOptions::default()).await
    }

    async fn start_with(options: OAuthOptions) -> Partner {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(plugboard_sandbox::oauth::serve(
            listener,
            options,
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Partner { base, http }
    }

    fn client(&self) -> OAuth2Client {
        OAuth2Client {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            token_url: format!("{}/oauth2/token", self.base),
            scopes: vec!["read".into()],
            username: String::new(),
            password: String::new(),
            token_parameters: Default::default(),
            client_secret_in_body: false,
            client_certificate: None,
        }
    }

    async fn token_calls(&self) -> u64 {
        self.stats().await["token_calls"].as_u64().unwrap()
    }

    async fn stats(&self) -> Value {
        let url = format!("{}/_sandbox/oauth2/stats", self.base);
        let response = self.http.get(url).send().await.unwrap();
        response.json().await.unwrap()
    }

    async fn faults(&self, body: Value) {
        let url = format!("{}/_sandbox/oauth2/faults", self.base);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }

    async fn token_works(&self, token: &str) -> bool {
        let url = format!("{}/oauth2/me", self.base);
        let response = self.http.get(url).bearer_auth(token).send().await.unwrap();
        response.status().is_success()
    }
}

/// A credentials server on 127.0.0.1:0 over `store`.
struct Server {
    addr: SocketAddr,
    store: CredentialStore,
}

async fn start(credentials: Credentials) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = credentials.store().clone();
    tokio::spawn(plugboard_credentials::serve(
        credentials,
        plugboard_runtime::identity::RequireCaller::new(mesh_key()),
        listener,
        std::future::pending(),
    ));
    Server { addr, store }
}

impl Server {
    fn gateway(&self) -> Client {
        let channel = lazy_channel(&self.addr.to_string()).unwrap();
        CredentialsServiceClient::with_interceptor(channel, identity("gateway", None))
    }

    fn connector(&self) -> Client {
        let channel = lazy_channel(&self.addr.to_string()).unwrap();
        CredentialsServiceClient::with_interceptor(
            channel,
            identity("connector:partner", Some("partner")),
        )
    }

    fn connect(&self, subject: &str, connector: Option<&str>) -> Connect {
        let channel = lazy_channel(&self.addr.to_string()).unwrap();
        OAuthServiceClient::with_interceptor(channel, identity(subject, connector))
    }

    async fn put(&self, connection_id: &str, client: OAuth2Client) -> u64 {
        let request = PutCredentialRequest {
            connection_id: connection_id.into(),
            connector: "partner".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(client)),
            }),
        };
        let response = self.gateway().put_credential(request).await.unwrap();
        response.into_inner().version
    }

    async fn lease(&self, connection_id: &str) -> Result<LeaseAccessResponse, tonic::Status> {
        let request = LeaseAccessRequest {
            connection_id: connection_id.into(),
            run_id: "run-7".into(),
            ..Default::default()
        };
        self.connector()
            .lease_access(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Makes the cached access token look expired, as time passing would.
    async fn expire(&self, connection_id: &str) {
        let changed = sqlx::query(
            "UPDATE oauth_tokens SET access_expires_at = 0 WHERE tenant = $1 AND connection_id = $2",
        )
        .bind(TENANT)
        .bind(connection_id)
        .execute(self.store.pool())
        .await
        .unwrap();
        assert_eq!(changed.rows_affected(), 1);
    }

    async fn audit(&self, connection_id: &str) -> Vec<(String, String)> {
        let log = self.store.audit_log(TENANT, connection_id).await.unwrap();
        log.into_iter()
            .map(|entry| (entry.action, entry.outcome))
            .collect()
    }
}

async fn sqlite_store() -> CredentialStore {
    let dir = std::env::temp_dir().join(format!("pb-credoauth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    CredentialStore::open(&url, "credentials").await.unwrap()
}

fn master_key() -> MasterKey {
    MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap()
}

fn fast_policy() -> OAuthPolicy {
    OAuthPolicy {
        attempts: 2,
        backoff: Duration::from_millis(10),
        failure_threshold: 2,
        cooldown: Duration::from_secs(30),
        // The OAuth2 sandbox listens on loopback.
        allow_private_targets: true,
        ..OAuthPolicy::default()
    }
}

async fn local_server() -> Server {
    let credentials = Credentials::new(sqlite_store().await, master_key())
        .with_oauth(Coordinator::local(), fast_policy())
        .unwrap();
    start(credentials).await
}

#[tokio::test]
async fn client_credentials_are_fetched_cached_and_refreshed() {
    let partner = Partner::start().await;
    let server = local_server().await;
    server.put("cc", partner.client()).await;

    let first = server.lease("cc").await.unwrap();
    assert!(!first.access_token.is_empty());
    assert_eq!(first.token_type, "bearer");
    assert!(partner.token_works(&first.access_token).await);
    // The connector never sees the client secret.
    let Some(secret::Kind::Oauth2Client(leased)) = first.secret.unwrap().kind else {
        panic!("an oauth2 client");
    };
    assert_eq!(leased.client_id, CLIENT_ID);
    assert!(leased.client_secret.is_empty());
    let token_expiry = chrono::DateTime::parse_from_rfc3339(&first.access_token_expires_at)
        .unwrap()
        .signed_duration_since(chrono::Utc::now());
    assert!(
        token_expiry > chrono::Duration::minutes(59),
        "{token_expiry}"
    );

    // Cached: no second token call.
    let second = server.lease("cc").await.unwrap();
    assert_eq!(second.access_token, first.access_token);
    assert_eq!(partner.token_calls().await, 1);

    // Expired: refreshed, once.
    server.expire("cc").await;
    let third = server.lease("cc").await.unwrap();
    assert_ne!(third.access_token, first.access_token);
    assert!(partner.token_works(&third.access_token).await);
    assert_eq!(partner.token_calls().await, 2);

    // At rest the token is ciphertext only.
    let raw: Vec<String> = sqlx::query_scalar("SELECT sealed FROM oauth_tokens")
        .fetch_all(server.store.pool())
        .await
        .unwrap();
    assert!(
        raw.iter()
            .all(|sealed| !sealed.contains(&third.access_token))
    );

    let refreshes: Vec<_> = server
        .audit("cc")
        .await
        .into_iter()
        .filter(|(action, _)| action == "refresh")
        .collect();
    assert_eq!(refreshes.len(), 2, "{refreshes:?}");
}

#[tokio::test]
async fn fifty_concurrent_leases_on_an_expired_token_make_one_token_call() {
    let partner = Partner::start().await;
    let server = local_server().await;
    server.put("cc", partner.client()).await;
    let before = server.lease("cc").await.unwrap().access_token;
    server.expire("cc").await;
    // A slow partner widens the window in which leases pile up.
    partner.faults(json!({ "delay_ms": 300 })).await;
    let calls = partner.token_calls().await;

    let leases = (0..50).map(|_| server.lease("cc"));
    let tokens: Vec<String> = futures::future::join_all(leases)
        .await
        .into_iter()
        .map(|lease| lease.unwrap().access_token)
        .collect();
    assert_eq!(partner.token_calls().await, calls + 1);
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    assert_ne!(tokens[0], before);
}

#[tokio::test]
async fn authorization_code_connect_and_rotating_refresh() {
    let partner = Partner::start().await;
    let server = local_server().await;
    let redirect_uri = "http://127.0.0.1:1/oauth/callback";
    let begin = |subject: &'static str, connector: Option<&'static str>| {
        let mut connect = server.connect(subject, connector);
        let client = partner.client();
        let authorize_url = format!("{}/oauth2/authorize", partner.base);
        async move {
            connect
                .begin_o_auth(BeginOAuthRequest {
                    connection_id: "ac".into(),
                    connector: "partner".into(),
                    client: Some(client),
                    authorize_url,
                    redirect_uri: redirect_uri.into(),
                    ..Default::default()
                })
                .await
        }
    };
    // Connectors may not start a connect.
    let refused = begin("connector:partner", Some("partner"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let begun = begin("gateway", None).await.unwrap().into_inner();
    let url = reqwest::Url::parse(&begun.authorize_url).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["state"], begun.state);
    assert!(!begun.authorize_url.contains(CLIENT_SECRET));

    // The user consents at the partner, which redirects back with code and state.
    let response = partner.http.get(url).send().await.unwrap();
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let back: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(back["state"], begun.state);

    let complete = |state: String, code: String| {
        let mut connect = server.connect("gateway", None);
        async move {
            connect
                .complete_o_auth(CompleteOAuthRequest {
                    state,
                    code,
                    error: String::new(),
                })
                .await
        }
    };
    let completed = complete(back["state"].clone(), back["code"].clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (completed.connection_id.as_str(), completed.version),
        ("ac", 1)
    );
    // A state is single use.
    let replay = complete(back["state"].clone(), back["code"].clone())
        .await
        .unwrap_err();
    assert_eq!(reason_of(&replay).as_deref(), Some("OAUTH_STATE_INVALID"));

    // The first lease uses the exchanged token; the code exchange was the only token call.
    let first = server.lease("ac").await.unwrap();
    assert!(partner.token_works(&first.access_token).await);
    assert_eq!(partner.token_calls().await, 1);

    // Refresh twice: each refresh rotates the refresh token, and the rotated one was stored
    // (the sandbox revokes the whole family if an old one is ever presented again).
    let mut previous = first.access_token;
    for _ in 0..2 {
        server.expire("ac").await;
        let next = server.lease("ac").await.unwrap();
        assert_ne!(next.access_token, previous);
        assert!(partner.token_works(&next.access_token).await);
        previous = next.access_token;
    }
    let stats = partner.stats().await;
    assert_eq!(stats["grants"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["refresh_reuses"], 0, "{stats}");

    // A refused consent at the partner's page: the connect is dropped with the reason.
    let begun = begin("gateway", None).await.unwrap().into_inner();
    let mut connect = server.connect("gateway", None);
    let denied = connect
        .complete_o_auth(CompleteOAuthRequest {
            state: begun.state,
            code: String::new(),
            error: "access_denied".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason_of(&denied).as_deref(), Some("OAUTH_DENIED"));
    let audit = server.audit("ac").await;
    for action in ["begin_oauth", "complete_oauth", "refresh", "lease", "put"] {
        assert!(
            audit.iter().any(|(a, _)| a == action),
            "{action}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_client_rejects_the_lease_and_fails_fast_after() {
    let partner = Partner::start().await;
    let server = local_server().await;
    // The client secret was rotated at the partner: invalid_client, like a revoked grant.
    let mut wrong = partner.client();
    wrong.client_secret = "rotated-at-the-partner".into();
    server.put("cc", wrong).await;
    let status = server.lease("cc").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIALS_REJECTED"));
    assert!(
        status.message().contains("reconnect"),
        "{}",
        status.message()
    );
    let calls = partner.token_calls().await;
    // No storm: later leases fail the same way without calling the partner.
    for _ in 0..5 {
        let status = server.lease("cc").await.unwrap_err();
        assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIALS_REJECTED"));
    }
    assert_eq!(partner.token_calls().await, calls);
    // A new put (the user reconnected) clears the state.
    server.put("cc", partner.client()).await;
    assert!(server.lease("cc").await.is_ok());
    assert!(
        server
            .audit("cc")
            .await
            .contains(&("refresh".to_owned(), "rejected".to_owned()))
    );
}

#[tokio::test]
async fn invalid_grant_after_revoked_consent_marks_needs_reconnect() {
    let partner = Partner::start().await;
    let server = local_server().await;
    let client = partner.client();
    // Connect through the code flow, then the user revokes consent at the partner.
    let mut connect = server.connect("gateway", None);
    let begun = connect
        .begin_o_auth(BeginOAuthRequest {
            connection_id: "ac".into(),
            connector: "partner".into(),
            client: Some(client),
            authorize_url: format!("{}/oauth2/authorize", partner.base),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let response = partner.http.get(&begun.authorize_url).send().await.unwrap();
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let back: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    connect
        .complete_o_auth(CompleteOAuthRequest {
            state: back["state"].clone(),
            code: back["code"].clone(),
            error: String::new(),
        })
        .await
        .unwrap();
    partner.faults(json!({ "revoke_consent": true })).await;
    server.expire("ac").await;
    let status = server.lease("ac").await.unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIALS_REJECTED"));
    assert!(
        status.message().contains("invalid_grant"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn transient_failures_back_off_then_cool_down_then_recover() {
    let partner = Partner::start().await;
    let server = local_server().await;
    server.put("cc", partner.client()).await;
    partner
        .faults(json!({ "fail_next": 100, "status": 503 }))
        .await;

    // First refresh: two calls (one backoff retry), then a retryable error.
    let status = server.lease("cc").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        reason_of(&status).as_deref(),
        Some("TOKEN_ENDPOINT_UNAVAILABLE")
    );
    assert_eq!(partner.token_calls().await, 2);
    // Second failed refresh reaches the threshold: cooling down, with a retry-after.
    let status = server.lease("cc").await.unwrap_err();
    assert_eq!(
        reason_of(&status).as_deref(),
        Some("CREDENTIALS_COOLING_DOWN")
    );
    assert_eq!(status.metadata().get("retry-after").unwrap(), "30");
    assert_eq!(partner.token_calls().await, 4);
    // While cooling, leases fail fast without calling the partner.
    for _ in 0..10 {
        let status = server.lease("cc").await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            reason_of(&status).as_deref(),
            Some("CREDENTIALS_COOLING_DOWN")
        );
        let retry_after: u64 = status
            .metadata()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry_after));
    }
    assert_eq!(partner.token_calls().await, 4);

    // The cool-down ends and the partner is back: the lease succeeds, audited as recovered.
    partner.faults(json!({ "fail_next": 0 })).await;
    sqlx::query("UPDATE oauth_tokens SET cool_until = 1")
        .execute(server.store.pool())
        .await
        .unwrap();
    let lease = server.lease("cc").await.unwrap();
    assert!(partner.token_works(&lease.access_token).await);
    let audit = server.audit("cc").await;
    let refreshes: Vec<&str> = audit
        .iter()
        .filter(|(action, _)| action == "refresh")
        .map(|(_, outcome)| outcome.as_str())
        .collect();
    assert_eq!(refreshes, ["failed", "failed", "recovered"]);
}

/// Two credentials servers, each with its own Redis-backed coordinator, on one PostgreSQL
/// schema: 50 concurrent leases spread over both cause exactly one token call.
#[tokio::test]
async fn single_flight_across_two_servers_on_redis_and_postgres() {
    let partner = Partner::start().await;
    let base_url = std::env::var("PLUGBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let redis_url = std::env::var("PLUGBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let schema = format!("credentials_o{}", uuid::Uuid::new_v4().simple());
    let key_text = MasterKey::generate_base64().unwrap();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store = CredentialStore::open(&base_url, &schema).await.unwrap();
        let coordinator = Coordinator::redis(&redis_url).await.unwrap();
        let credentials = Credentials::new(store, MasterKey::from_base64(&key_text).unwrap())
            .with_oauth(coordinator, fast_policy())
            .unwrap();
        servers.push(start(credentials).await);
    }
    let outcome = tokio::spawn({
        let (a, b) = (servers[0].addr, servers[1].addr);
        let store = servers[0].store.clone();
        let partner_base = partner.base.clone();
        async move {
            let servers = [
                Server {
                    addr: a,
                    store: store.clone(),
                },
                Server { addr: b, store },
            ];
            let partner = Partner {
                base: partner_base,
                http: reqwest::Client::new(),
            };
            // A unique id keeps concurrent runs on the same Redis apart.
            let connection_id = format!("cc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            servers[0].put(&connection_id, partner.client()).await;
            let before = servers[1].lease(&connection_id).await.unwrap().access_token;
            servers[0].expire(&connection_id).await;
            partner.faults(json!({ "delay_ms": 300 })).await;
            let calls = partner.token_calls().await;
            let leases = (0..50).map(|index| servers[index % 2].lease(&connection_id));
            let tokens: Vec<String> = futures::future::join_all(leases)
                .await
                .into_iter()
                .map(|lease| lease.unwrap().access_token)
                .collect();
            assert_eq!(partner.token_calls().await, calls + 1);
            assert!(tokens.iter().all(|token| *token == tokens[0]));
            assert_ne!(tokens[0], before);
            assert!(partner.token_works(&tokens[0]).await);
        }
    })
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(servers[0].store.pool())
        .await
        .unwrap();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn refresh_happens_ahead_of_expiry_and_a_failed_early_refresh_keeps_the_live_token() {
    let partner = Partner::start().await;
    let server = local_server().await;
    server.put("cc", partner.client()).await;
    let first = server.lease("cc").await.unwrap().access_token;
    let set_expiry = |seconds_left: i64| {
        let pool = server.store.pool().clone();
        async move {
            sqlx::query("UPDATE oauth_tokens SET access_expires_at = $1")
                .bind(chrono::Utc::now().timestamp() + seconds_left)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    // Two minutes left: outside the 60 s refresh-ahead window, served from the cache.
    set_expiry(120).await;
    assert_eq!(server.lease("cc").await.unwrap().access_token, first);
    assert_eq!(partner.token_calls().await, 1);

    // 30 s left: still valid, but refreshed ahead of expiry.
    set_expiry(30).await;
    let second = server.lease("cc").await.unwrap();
    assert_ne!(second.access_token, first);
    assert_eq!(partner.token_calls().await, 2);

    // 30 s left and the partner is down: the still-valid token is handed out, and the lease
    // must come back before that token expires.
    set_expiry(30).await;
    partner.faults(json!({ "fail_next": 10 })).await;
    let third = server.lease("cc").await.unwrap();
    assert_eq!(third.access_token, second.access_token);
    let lease_expiry = chrono::DateTime::parse_from_rfc3339(&third.expires_at)
        .unwrap()
        .signed_duration_since(chrono::Utc::now());
    assert!(
        lease_expiry <= chrono::Duration::seconds(30),
        "{lease_expiry}"
    );
    assert_eq!(partner.token_calls().await, 4, "one refresh, retried once");
}

#[tokio::test]
async fn a_token_url_on_an_internal_address_is_never_sent_the_client_secret() {
    let partner = Partner::start().await;
    let credentials = Credentials::new(sqlite_store().await, master_key())
        .with_oauth(
            Coordinator::local(),
            OAuthPolicy {
                allow_private_targets: false,
                ..fast_policy()
            },
        )
        .unwrap();
    let server = start(credentials).await;
    server.put("internal", partner.client()).await;
    let status = server.lease("internal").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("not allowed"),
        "{}",
        status.message()
    );
    assert_eq!(
        partner.token_calls().await,
        0,
        "the sandbox saw no token request"
    );
}

#[tokio::test]
async fn a_client_flagged_for_the_body_reaches_a_partner_that_refuses_basic() {
    let partner = Partner::start_with(OAuthOptions {
        client_in_body_only: true,
        ..OAuthOptions::default()
    })
    .await;
    let server = local_server().await;

    // As HTTP Basic (the default) the partner does not see a client at all.
    server.put("basic", partner.client()).await;
    let refused = server.lease("basic").await.unwrap_err();
    assert!(refused.message().contains("invalid_client"), "{refused:?}");

    // With the manifest's `client_auth: body`, the client goes in the form and is served.
    let in_body = OAuth2Client {
        client_secret_in_body: true,
        ..partner.client()
    };
    server.put("body", in_body).await;
    let leased = server.lease("body").await.unwrap();
    assert!(leased.secret.is_some());
}
