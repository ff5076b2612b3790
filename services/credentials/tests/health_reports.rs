//! Credentials tells health when a connection's access changes, once per change, across real
//! servers on 127.0.0.1:0: a credentials service (its own `run`, SQLite) reporting to a health
//! service (its own `run`, SQLite), with the strict OAuth2 sandbox as the partner. A revoked
//! consent turns the integration to needs_reconnect with the partner's reason and an action;
//! leases after that fail fast and report nothing; a reconnect is reported once.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::time::Duration;

use plugboard_credentials::Config;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::oauth::token_digest;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::o_auth_service_client::OAuthServiceClient;
use plugboard_proto::credentials::v1::{
    BeginOAuthRequest, CompleteOAuthRequest, LeaseAccessRequest, OAuth2Client,
};
use plugboard_proto::error::reason_of;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::{
    GetStatusRequest, IntegrationStatus, WatchStatusRequest, WatchStatusResponse,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};
use secrecy::SecretString;
use serde_json::json;
use tokio_stream::StreamExt;

const MESH_KEY: &str = "credentials-health-reports-mesh-key-32+";
const TENANT: &str = "acme";

fn identity(subject: &str, connector: Option<&str>) -> MeshCredentials {
    MeshCredentials::new(
        MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap(),
        Caller {
            subject: subject.into(),
            tenant: Some(TENANT.into()),
            connector: connector.map(str::to_owned),
        },
    )
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

struct World {
    partner: String,
    credentials: String,
    health: String,
    http: reqwest::Client,
}

impl World {
    async fn start() -> World {
        let dir = std::env::temp_dir().join(format!("pb-health-reports-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mesh = SecretString::from(MESH_KEY.to_owned());

        let (partner_listener, partner) = listener().await;
        let partner = format!("http://{partner}");
        tokio::spawn(plugboard_sandbox::oauth::serve(
            partner_listener,
            OAuthOptions::default(),
            std::future::pending(),
        ));
        let (health_listener, health) = listener().await;
        let health_db = format!("sqlite://{}/health.db?mode=rwc", dir.display());
        tokio::spawn(plugboard_health::run(
            plugboard_health::Config::new(health_db, mesh.clone()),
            health_listener,
            std::future::pending(),
        ));
        let (credentials_listener, credentials) = listener().await;
        let credentials_db = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        let mut config = Config::new(
            credentials_listener.local_addr().unwrap(),
            credentials_db,
            mesh,
            MasterKey::generate_base64().unwrap(),
        );
        config.health_addr = Some(health.clone());
        config.allow_private_targets = true;
        tokio::spawn(plugboard_credentials::run(
            config,
            credentials_listener,
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        World {
            partner,
            credentials,
            health,
            http,
        }
    }

    /// BeginOAuth, the partner's consent page, CompleteOAuth: what the gateway's routes do.
    async fn connect(&self, connection_id: &str) {
        let channel = lazy_channel(&self.credentials).unwrap();
        let mut oauth = OAuthServiceClient::with_interceptor(channel, identity("gateway", None));
        let client = OAuth2Client {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            token_url: format!("{}/oauth2/token", self.partner),
            scopes: vec!["read".into()],
            ..OAuth2Client::default()
        };
        let mut begun = None;
        let mut last_error = None;
        // The credentials server may still be opening its store.
        for _ in 0..100 {
            let request = BeginOAuthRequest {
                connection_id: connection_id.into(),
                connector: "oauth-demo".into(),
                client: Some(client.clone()),
                authorize_url: format!("{}/oauth2/authorize", self.partner),
                redirect_uri: "http://127.0.0.1:1/oauth/callback".into(),
                ..BeginOAuthRequest::default()
            };
            match oauth.begin_o_auth(request).await {
                Ok(response) => {
                    begun = Some(response.into_inner());
                    break;
                }
                Err(status) => {
                    last_error = Some(status);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let begun = begun.unwrap_or_else(|| panic!("credentials serves: {last_error:?}"));
        let consent = self.http.get(&begun.authorize_url).send().await.unwrap();
        let location = consent.headers()["location"].to_str().unwrap().to_owned();
        let redirect = reqwest::Url::parse(&location).unwrap();
        let param = |name: &str| {
            redirect
                .query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        oauth
            .complete_o_auth(CompleteOAuthRequest {
                state: param("state"),
                code: param("code"),
                error: String::new(),
            })
            .await
            .unwrap();
    }

    async fn lease(&self, connection_id: &str, refused: &str) -> Result<String, tonic::Status> {
        let channel = lazy_channel(&self.credentials).unwrap();
        let mut client = CredentialsServiceClient::with_interceptor(
            channel,
            identity("connector:oauth-demo", Some("oauth-demo")),
        );
        client
            .lease_access(LeaseAccessRequest {
                connection_id: connection_id.into(),
                run_id: "run-1".into(),
                refused_access_token_sha256: refused.into(),
                ..LeaseAccessRequest::default()
            })
            .await
            .map(|response| response.into_inner().access_token)
    }

    fn health(
        &self,
    ) -> IntegrationHealthServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
    > {
        let channel = lazy_channel(&self.health).unwrap();
        IntegrationHealthServiceClient::with_interceptor(channel, identity("gateway", None))
    }
}

/// Status changes of `connection_id` that arrive within `quiet`.
async fn changes(
    stream: &mut tonic::Streaming<WatchStatusResponse>,
    connection_id: &str,
    quiet: Duration,
) -> Vec<(IntegrationStatus, String)> {
    let mut seen = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(quiet, stream.next()).await {
        let message = message.unwrap();
        let integration = message.integration.unwrap();
        if !message.snapshot && integration.connection_id == connection_id {
            seen.push((integration.status(), integration.reason));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_consent_is_reported_once_as_needs_reconnect_and_the_reconnect_once() {
    let world = World::start().await;
    world.connect("od-1").await;
    let token = world.lease("od-1", "").await.unwrap();

    let mut watch = world
        .health()
        .watch_status(WatchStatusRequest::default())
        .await
        .unwrap()
        .into_inner();

    // The partner forgets the consent; the connector's next call is refused, so it leases again
    // naming the refused token, and credentials' refresh meets invalid_grant.
    let faults = format!("{}/_sandbox/oauth2/faults", world.partner);
    world
        .http
        .post(faults)
        .json(&json!({ "revoke_consent": true }))
        .send()
        .await
        .unwrap();
    let refused = world
        .lease("od-1", &token_digest(&token))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&refused).as_deref(), Some("CREDENTIALS_REJECTED"));
    // Many more leases, all failing fast: none of them is another report.
    for _ in 0..10 {
        let again = world.lease("od-1", "").await.unwrap_err();
        assert_eq!(reason_of(&again).as_deref(), Some("CREDENTIALS_REJECTED"));
    }

    let seen = changes(&mut watch, "od-1", Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 1, "one change for one refusal: {seen:?}");
    assert_eq!(seen[0].0, IntegrationStatus::NeedsReconnect);
    let status = world
        .health()
        .get_status(GetStatusRequest {
            connection_id: "od-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .integrations
        .remove(0);
    assert_eq!(status.status(), IntegrationStatus::NeedsReconnect);
    assert!(
        status
            .reason
            .contains("refused the connection's authorization")
            && status.reason.contains("invalid_grant"),
        "{}",
        status.reason
    );
    assert!(status.action.starts_with("Reconnect"), "{}", status.action);
    assert!(!status.reason.contains(&token), "no token in the reason");

    // The customer reconnects: one report, and the status no longer asks for a reconnect.
    world.connect("od-1").await;
    world.lease("od-1", "").await.unwrap();
    let seen = changes(&mut watch, "od-1", Duration::from_secs(2)).await;
    assert_eq!(seen.len(), 1, "one change for one reconnect: {seen:?}");
    assert_eq!(seen[0].0, IntegrationStatus::Operational, "{seen:?}");
}
