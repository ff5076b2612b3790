//! No leaks: every credentials flow runs with canary secret values under a tracing subscriber
//! that captures every event and span (with their fields) at TRACE for our crates, and the
//! captured log, every error message and every audit row are scanned for the canaries and for
//! anything shaped like a token the OAuth2 sandbox issued.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::oauth::OAuthPolicy;
use plugboard_credentials::store::CredentialStore;
use plugboard_credentials::{Config, Credentials};
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::o_auth_service_client::OAuthServiceClient;
use plugboard_proto::credentials::v1::{
    ApiKey, Basic, BeginOAuthRequest, CompleteOAuthRequest, LeaseAccessRequest, OAuth2Client,
    PutCredentialRequest, RevokeRequest, Secret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};
use secrecy::SecretString;
use sqlx::Row;
use tracing_subscriber::fmt::format::FmtSpan;

const MESH_KEY: &str = "credentials-test-mesh-key-32-bytes-or-more";
const CANARY_API_KEY: &str = "CANARY-apikey-3b1f9e";
const CANARY_PASSWORD: &str = "CANARY-password-77c2d0";
const CANARY_BEARER_PREFIXES: [&str; 3] = ["at_", "rt_", "code_"];

/// A `Write` into a shared buffer, for the fmt layer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn identity(subject: &str, connector: Option<&str>) -> MeshCredentials {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    MeshCredentials::new(
        key,
        Caller {
            subject: subject.to_owned(),
            tenant: Some("acme".to_owned()),
            connector: connector.map(str::to_owned),
        },
    )
}

fn put(connection_id: &str, kind: secret::Kind) -> PutCredentialRequest {
    PutCredentialRequest {
        connection_id: connection_id.into(),
        connector: "partner".into(),
        secret: Some(Secret { kind: Some(kind) }),
    }
}

fn lease(connection_id: &str) -> LeaseAccessRequest {
    LeaseAccessRequest {
        connection_id: connection_id.into(),
        run_id: "run-canary".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_span_error_or_audit_row() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace,h2=debug,hyper=debug,hyper_util=debug,tower=debug")
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // The OAuth2 sandbox as the partner.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let partner = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(plugboard_sandbox::oauth::serve(
        listener,
        OAuthOptions::default(),
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The service through `run`, so its start-up (key check, rewrap) is covered too; the
    // master key itself is a canary.
    let dir = std::env::temp_dir().join(format!("pb-credleak-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    let old_master = MasterKey::generate_base64().unwrap();
    let master = MasterKey::generate_base64().unwrap();
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    // Something sealed under the old key, so start-up re-wraps.
    Credentials::new(store.clone(), MasterKey::from_base64(&old_master).unwrap())
        .put(
            &plugboard_credentials::service::Actor {
                subject: "gateway".into(),
                tenant: "acme".into(),
                connector: None,
            },
            "old",
            "partner",
            Some(Secret {
                kind: Some(secret::Kind::ApiKey(ApiKey {
                    key: CANARY_API_KEY.into(),
                })),
            }),
        )
        .await
        .unwrap();
    let mut config = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        url.clone(),
        SecretString::from(MESH_KEY.to_owned()),
        master.clone(),
    );
    config.previous_master_keys = Some(old_master.clone());
    config.allow_private_targets = true;
    tracing::info!(config = ?config, "config debug output is part of the log");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(plugboard_credentials::run(
        config,
        listener,
        std::future::pending(),
    ));
    // A second server on the same store with fast failure handling, for the failure flows.
    let fast = Credentials::new(store.clone(), MasterKey::from_base64(&master).unwrap())
        .with_oauth(
            Coordinator::local(),
            OAuthPolicy {
                attempts: 2,
                backoff: Duration::from_millis(5),
                failure_threshold: 1,
                allow_private_targets: true,
                ..OAuthPolicy::default()
            },
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast_addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(plugboard_credentials::serve(
        fast,
        plugboard_runtime::identity::RequireCaller::new(
            MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap(),
        ),
        listener,
        std::future::pending(),
    ));

    let client = |addr: &str, subject: &str, connector: Option<&str>| {
        CredentialsServiceClient::with_interceptor(
            lazy_channel(addr).unwrap(),
            identity(subject, connector),
        )
    };
    let mut gateway = client(&addr, "gateway", None);
    let mut connector = client(&addr, "connector:partner", Some("partner"));
    let mut intruder = client(&addr, "connector:other", Some("other"));
    let mut errors: Vec<String> = Vec::new();
    let mut tokens: Vec<String> = Vec::new();

    // Wait for start-up.
    let mut ready = false;
    for _ in 0..100 {
        if connector.lease_access(lease("old")).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(ready, "credentials did not start");

    let oauth = OAuth2Client {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        token_url: format!("{partner}/oauth2/token"),
        scopes: vec!["read".into()],
        username: String::new(),
        password: String::new(),
        token_parameters: Default::default(),
        client_secret_in_body: false,
        client_certificate: None,
    };
    // Puts of every kind, leases, a denied lease, a bad put, a revoke.
    let basic = secret::Kind::Basic(Basic {
        username: "canary-user".into(),
        password: CANARY_PASSWORD.into(),
    });
    gateway.put_credential(put("basic", basic)).await.unwrap();
    connector.lease_access(lease("basic")).await.unwrap();
    let denied = intruder.lease_access(lease("basic")).await.unwrap_err();
    errors.push(denied.message().to_owned());
    let bad = secret::Kind::Basic(Basic {
        username: String::new(),
        password: CANARY_PASSWORD.into(),
    });
    errors.push(
        gateway
            .put_credential(put("bad", bad))
            .await
            .unwrap_err()
            .message()
            .to_owned(),
    );
    gateway
        .put_credential(put("cc", secret::Kind::Oauth2Client(oauth.clone())))
        .await
        .unwrap();
    let leased = connector
        .lease_access(lease("cc"))
        .await
        .unwrap()
        .into_inner();
    tokens.push(leased.access_token.clone());

    // The authorization code flow and two refreshes.
    let mut connect = OAuthServiceClient::with_interceptor(
        lazy_channel(&addr).unwrap(),
        identity("gateway", None),
    );
    let begun = connect
        .begin_o_auth(BeginOAuthRequest {
            connection_id: "ac".into(),
            connector: "partner".into(),
            client: Some(oauth.clone()),
            authorize_url: format!("{partner}/oauth2/authorize"),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokens.push(begun.state.clone());
    let redirect = http.get(&begun.authorize_url).send().await.unwrap();
    let location = reqwest::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let query: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    tokens.push(query["code"].clone());
    connect
        .complete_o_auth(CompleteOAuthRequest {
            state: begun.state.clone(),
            code: query["code"].clone(),
            error: String::new(),
        })
        .await
        .unwrap();
    for _ in 0..2 {
        sqlx::query("UPDATE oauth_tokens SET access_expires_at = 0 WHERE connection_id = 'ac'")
            .execute(store.pool())
            .await
            .unwrap();
        let leased = connector
            .lease_access(lease("ac"))
            .await
            .unwrap()
            .into_inner();
        tokens.push(leased.access_token);
    }
    // Replayed state.
    let replay = connect
        .complete_o_auth(CompleteOAuthRequest {
            state: begun.state.clone(),
            code: query["code"].clone(),
            error: String::new(),
        })
        .await
        .unwrap_err();
    errors.push(replay.message().to_owned());

    // Failure flows: transient failures then cool-down, then a revoked consent.
    let mut fast_connector = client(&fast_addr, "connector:partner", Some("partner"));
    let faults = format!("{partner}/_sandbox/oauth2/faults");
    http.post(&faults)
        .json(&serde_json::json!({"fail_next": 10, "status": 503}))
        .send()
        .await
        .unwrap();
    gateway
        .put_credential(put("cc2", secret::Kind::Oauth2Client(oauth.clone())))
        .await
        .unwrap();
    for _ in 0..2 {
        let status = fast_connector.lease_access(lease("cc2")).await.unwrap_err();
        errors.push(status.message().to_owned());
    }
    http.post(&faults)
        .json(&serde_json::json!({"fail_next": 0, "revoke_consent": true}))
        .send()
        .await
        .unwrap();
    sqlx::query("UPDATE oauth_tokens SET access_expires_at = 0 WHERE connection_id = 'ac'")
        .execute(store.pool())
        .await
        .unwrap();
    let rejected = fast_connector.lease_access(lease("ac")).await.unwrap_err();
    errors.push(rejected.message().to_owned());
    gateway
        .revoke(RevokeRequest {
            connection_id: "basic".into(),
        })
        .await
        .unwrap();

    // Scan.
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("refreshed an access token") && log.contains("lease_access"),
        "the capture must hold the service's events and spans"
    );
    store.flush_audit().await.unwrap();
    let audit: Vec<String> = sqlx::query("SELECT * FROM credential_audit")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (0..row.len())
                .filter_map(|index| row.try_get::<String, _>(index).ok())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    assert!(audit.len() > 15, "{audit:?}");
    let mut canaries: Vec<String> = vec![
        CANARY_API_KEY.into(),
        CANARY_PASSWORD.into(),
        CLIENT_SECRET.into(),
        old_master_text(&old_master),
        old_master_text(&master),
        MESH_KEY.into(),
    ];
    canaries.extend(tokens.into_iter().filter(|token| !token.is_empty()));
    let haystacks = [
        ("log", log.clone()),
        ("errors", errors.join("\n")),
        ("audit", audit.join("\n")),
    ];
    for (name, text) in &haystacks {
        for canary in &canaries {
            assert!(!text.contains(canary.as_str()), "{name} leaks a secret");
        }
        for prefix in CANARY_BEARER_PREFIXES {
            // Sandbox tokens are `<prefix>` + 32 hex digits.
            let leaked = text.match_indices(prefix).any(|(at, _)| {
                let rest = &text[at + prefix.len()..];
                rest.len() >= 32 && rest[..32].chars().all(|c| c.is_ascii_hexdigit())
            });
            assert!(
                !leaked,
                "{name} holds something shaped like a sandbox {prefix} token"
            );
        }
    }
    assert!(errors.iter().any(|e| e.contains("reconnect")), "{errors:?}");
    let _ = std::fs::remove_dir_all(dir);
}

fn old_master_text(key: &SecretString) -> String {
    use secrecy::ExposeSecret;
    key.expose_secret().to_owned()
}
