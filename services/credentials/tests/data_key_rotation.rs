//! A tenant data key rotation moves OAuth2 token rows and pending connects too, not only
//! secrets: after it, the cached access token is still served without a new token call (its
//! row re-sealed under the new key), a connect begun before the rotation completes after it,
//! and the old key is gone. In-process on SQLite against the OAuth2 sandbox; the rotation under
//! concurrent leases across processes is `tests/admin_rotation.rs`.

#![allow(clippy::unwrap_used)]

use plugboard_credentials::Credentials;
use plugboard_credentials::crypto::MasterKey;
use plugboard_credentials::oauth::OAuthPolicy;
use plugboard_credentials::service::Actor;
use plugboard_credentials::store::CredentialStore;
use plugboard_proto::credentials::v1::{OAuth2Client, Secret, secret};
use plugboard_runtime::coordination::Coordinator;
use plugboard_sandbox::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthOptions};

fn actor(subject: &str, connector: Option<&str>) -> Actor {
    Actor {
        subject: subject.to_owned(),
        tenant: "acme".to_owned(),
        connector: connector.map(str::to_owned),
    }
}

#[tokio::test]
async fn tokens_and_pending_connects_move_to_the_new_data_key() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(plugboard_sandbox::oauth::serve(
        listener,
        OAuthOptions::default(),
        std::future::pending(),
    ));
    let dir = std::env::temp_dir().join(format!("pb-dkrot-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    let store = CredentialStore::open(&url, "credentials").await.unwrap();
    let master = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
    let service = |master: MasterKey| {
        Credentials::new(store.clone(), master)
            .with_oauth(
                Coordinator::local(),
                OAuthPolicy {
                    allow_private_targets: true,
                    ..OAuthPolicy::default()
                },
            )
            .unwrap()
    };
    let credentials = service(master.clone());
    let client = OAuth2Client {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        token_url: format!("{base}/oauth2/token"),
        scopes: vec!["read".into()],
        ..OAuth2Client::default()
    };
    let gateway = actor("gateway", None);
    let connector = actor("connector:partner", Some("partner"));
    let kind = secret::Kind::Oauth2Client(client.clone());
    credentials
        .put(&gateway, "cc", "partner", Some(Secret { kind: Some(kind) }))
        .await
        .unwrap();
    let first = credentials
        .lease(&connector, "cc", "run", None)
        .await
        .unwrap();
    let token = first.access.unwrap().access_token;
    let begun = credentials
        .begin_oauth(
            &gateway,
            "code",
            "partner",
            Some(client),
            &format!("{base}/oauth2/authorize"),
            "https://gateway.example/callback",
            false,
        )
        .await
        .unwrap();
    let old = store.data_key("acme").await.unwrap().unwrap();
    let token_row = store.token("acme", "cc").await.unwrap().unwrap();
    assert_eq!(token_row.key_id, old.id);

    let rotation = credentials
        .rotate_data_key(&actor("admin", None), 1)
        .await
        .unwrap();
    // The client secret, its token row and the pending connect.
    assert_eq!(rotation.resealed, 3, "{rotation:?}");
    assert_eq!(rotation.retired_deleted, 1);
    let moved = store.token("acme", "cc").await.unwrap().unwrap();
    assert_eq!(moved.key_id, rotation.data_key_id);
    assert_eq!(moved.generation, token_row.generation);
    assert_ne!(moved.sealed, token_row.sealed);
    assert!(
        store
            .retired_data_key("acme", &old.id)
            .await
            .unwrap()
            .is_none()
    );

    // A fresh service (no keys in memory) still serves the same token: it opens under the new
    // key, and no token call is made for it.
    let fresh = service(master);
    let again = fresh.lease(&connector, "cc", "run", None).await.unwrap();
    assert_eq!(again.access.unwrap().access_token, token);
    let stats: serde_json::Value = reqwest::get(format!("{base}/_sandbox/oauth2/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["token_calls"], 1, "{stats}");

    // The connect begun before the rotation completes after it: the partner redirects with a
    // code for the state, and the pending row opens under the new key.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = http.get(&begun.authorize_url).send().await.unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let completed = fresh
        .complete_oauth(&gateway, &begun.state, &code, "")
        .await
        .unwrap();
    assert_eq!(completed.connection_id, "code");
    let _ = std::fs::remove_dir_all(dir);
}
