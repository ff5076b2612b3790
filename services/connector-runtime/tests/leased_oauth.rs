//! The runtime on leased OAuth2 access, through the real path: a credentials server on
//! 127.0.0.1:0 (SQLite), the strict OAuth2 sandbox and its candidate API, and the connector
//! leasing as `connector:<name>`. The connector never calls the token endpoint: credentials
//! exchanges the authorization code, refreshes the rotating refresh token when the partner
//! refuses an access token mid-run, and reports a revoked consent as rejected credentials.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use plugboard_connector_runtime::access::Access;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::manifest::{load_for_serving, load_str};
use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::connector::v1::ConnectionRef;
use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::o_auth_service_client::OAuthServiceClient;
use plugboard_proto::credentials::v1::{
    BeginOAuthRequest, CompleteOAuthRequest, ListAuditRequest, OAuth2Client, PutCredentialRequest,
    Secret, secret,
};
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const MESH_KEY: &str = "connector-runtime-leased-oauth-mesh-key-32+";
const TENANT: &str = "acme";

fn mesh_key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap()
}

fn gateway() -> MeshCredentials {
    MeshCredentials::new(
        mesh_key(),
        Caller {
            subject: "gateway".into(),
            tenant: Some(TENANT.into()),
            connector: None,
        },
    )
}

struct World {
    partner: String,
    credentials: String,
    http: reqwest::Client,
}

impl World {
    async fn start() -> World {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let partner = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(plugboard_sandbox::oauth::serve(
            listener,
            OAuthOptions::default(),
            std::future::pending(),
        ));
        let dir = std::env::temp_dir().join(format!("pb-leased-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
        let store = CredentialStore::open(&url, "credentials").await.unwrap();
        let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let credentials = listener.local_addr().unwrap().to_string();
        tokio::spawn(plugboard_credentials::serve(
            Credentials::new(store, master)
                .with_oauth(
                    plugboard_runtime::coordination::Coordinator::local(),
                    plugboard_credentials::oauth::OAuthPolicy {
                        // The OAuth2 sandbox listens on loopback.
                        allow_private_targets: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
            plugboard_runtime::identity::RequireCaller::new(mesh_key()),
            listener,
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        World {
            partner,
            credentials,
            http,
        }
    }

    fn client(&self) -> OAuth2Client {
        OAuth2Client {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            token_url: format!("{}/oauth2/token", self.partner),
            scopes: vec!["read".into()],
            ..OAuth2Client::default()
        }
    }

    /// Connects `connection_id` as the gateway would: BeginOAuth, the partner's consent page,
    /// CompleteOAuth with the redirect's code and state.
    async fn connect(&self, connection_id: &str) {
        let channel = lazy_channel(&self.credentials).unwrap();
        let mut oauth = OAuthServiceClient::with_interceptor(channel, gateway());
        let begun = oauth
            .begin_o_auth(BeginOAuthRequest {
                connection_id: connection_id.into(),
                connector: "oauth-demo".into(),
                client: Some(self.client()),
                authorize_url: format!("{}/oauth2/authorize", self.partner),
                redirect_uri: "http://127.0.0.1:1/oauth/callback".into(),
                ..BeginOAuthRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        let consent = self.http.get(&begun.authorize_url).send().await.unwrap();
        assert_eq!(consent.status(), 302);
        let location = consent.headers()["location"].to_str().unwrap();
        let redirect = reqwest::Url::parse(location).unwrap();
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

    fn connector(&self, manifest: plugboard_connector_runtime::manifest::Manifest) -> Connector {
        let channel = lazy_channel(&self.credentials).unwrap();
        let name = manifest.name.clone();
        let access = Access::new(channel, mesh_key(), &name);
        Connector::new(manifest, SecretSource::Credentials(access), true).unwrap()
    }

    fn params(&self, connection_id: &str, run_id: &str, page_size: u32) -> ReadParams {
        ReadParams {
            tenant: TENANT.into(),
            connection: ConnectionRef {
                connection_id: connection_id.into(),
                settings_json: json!({ "base_url": self.partner }).to_string(),
            },
            stream: "candidates".into(),
            checkpoint: String::new(),
            page_size,
            run_id: run_id.into(),
        }
    }

    async fn stats(&self) -> Value {
        let url = format!("{}/_sandbox/oauth2/stats", self.partner);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn fault(&self, body: Value) {
        let url = format!("{}/_sandbox/oauth2/faults", self.partner);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
    }

    async fn audit_runs(&self, connection_id: &str) -> Vec<(String, String, String)> {
        let channel = lazy_channel(&self.credentials).unwrap();
        let mut client = CredentialsServiceClient::with_interceptor(channel, gateway());
        let page = client
            .list_audit(ListAuditRequest {
                connection_id: connection_id.into(),
                ..ListAuditRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        page.records
            .into_iter()
            .map(|record| (record.action, record.outcome, record.run_id))
            .collect()
    }
}

fn demo_manifest() -> plugboard_connector_runtime::manifest::Manifest {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/connector-oauth-demo");
    load_for_serving(&dir).unwrap().manifest
}

fn grant_calls(stats: &Value, grant: &str) -> u64 {
    stats["grants"][grant].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_authorization_code_connection_reads_with_leased_tokens_refreshed_mid_run() {
    let world = World::start().await;
    world.connect("ac-1").await;
    let connector = world.connector(demo_manifest());

    let first = connector
        .read_all(world.params("ac-1", "run-1", 0))
        .await
        .unwrap();
    let records: usize = first.iter().map(|page| page.records.len()).sum();
    assert_eq!(records, 57, "every candidate of the sandbox");
    let stats = world.stats().await;
    assert_eq!(grant_calls(&stats, "authorization_code"), 1);
    assert_eq!(
        stats["token_calls"], 1,
        "the connector never calls the token endpoint"
    );

    // The partner ends every access token while credentials still thinks its token has an
    // hour left: the connector is refused mid-run, names the token, and credentials refreshes.
    let settings = connector
        .prepare(&world.params("ac-1", "run-2", 5))
        .await
        .unwrap();
    let (pages, mut received) = mpsc::channel(1);
    let reading = tokio::spawn({
        let params = world.params("ac-1", "run-2", 5);
        async move { connector.read(params, settings, pages).await }
    });
    let mut records = received.recv().await.unwrap().unwrap().records.len();
    world.fault(json!({ "expire_access_tokens": true })).await;
    while let Some(page) = received.recv().await {
        records += page.unwrap().records.len();
    }
    reading.await.unwrap();
    assert_eq!(records, 57, "the run recovered from the refused token");
    let stats = world.stats().await;
    assert_eq!(
        grant_calls(&stats, "refresh_token"),
        1,
        "one refresh: {stats}"
    );
    assert_eq!(stats["refresh_reuses"], 0);
    assert!(stats["api_refusals"].as_u64().unwrap() >= 1, "{stats}");

    // Every lease names the run it served.
    let audit = world.audit_runs("ac-1").await;
    for run in ["run-1", "run-2"] {
        assert!(
            audit
                .iter()
                .any(|(action, outcome, run_id)| action == "lease"
                    && outcome == "ok"
                    && run_id == run),
            "no lease row for {run}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn revoked_consent_ends_the_read_as_rejected_credentials() {
    let world = World::start().await;
    world.connect("ac-2").await;
    let connector = world.connector(demo_manifest());
    connector
        .read_all(world.params("ac-2", "run-1", 0))
        .await
        .unwrap();

    world.fault(json!({ "revoke_consent": true })).await;
    let error = connector
        .read_all(world.params("ac-2", "run-2", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            plugboard_connector_runtime::Error::CredentialsRejected(_)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    let stats = world.stats().await;
    assert_eq!(grant_calls(&stats, "refresh_token"), 1, "{stats}");
}

#[tokio::test]
async fn a_managed_client_credentials_client_is_used_through_its_leased_token() {
    let world = World::start().await;
    let channel = lazy_channel(&world.credentials).unwrap();
    CredentialsServiceClient::with_interceptor(channel, gateway())
        .put_credential(PutCredentialRequest {
            connection_id: "cc-1".into(),
            connector: "oauth-demo".into(),
            secret: Some(Secret {
                kind: Some(secret::Kind::Oauth2Client(world.client())),
            }),
        })
        .await
        .unwrap();
    let manifest = load_str(
        "cc.yaml",
        "manifest_version: 1\nname: oauth-demo\ndisplay_name: OAuth Demo\ncategory: ats\n\
         version: '1'\nbase_url: \"{{ settings.base_url }}\"\nsettings:\n  base_url: {type: url}\n\
         auth: {type: oauth2_client_credentials}\nstreams:\n  candidates: {entity: candidate, \
         path: /oauth2/api/candidates, records: /items, primary_key: candidateId, pagination: \
         {type: offset, page_size: {param: limit, value: 50}}}\n",
    )
    .unwrap();
    let connector = world.connector(manifest);
    let pages = connector
        .read_all(world.params("cc-1", "run-1", 0))
        .await
        .unwrap();
    let records: usize = pages.iter().map(|page| page.records.len()).sum();
    assert_eq!(records, 57);
    let stats = world.stats().await;
    // The lease carries no client secret; a connector exchanging it itself would be refused.
    assert_eq!(stats["token_calls"], 1, "{stats}");
    assert_eq!(grant_calls(&stats, "client_credentials"), 1);
}
