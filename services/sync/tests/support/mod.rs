//! A sync service on a fresh SQLite file beside a real registry, served in process on its own
//! SQLite file, where a test Bullhorn connector has registered its manifest (streams and a
//! settings schema like the real one's). Mapping, health and the connector's own address point
//! nowhere: what sync does up to calling them can be tested without them.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::time::Duration;

use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::registry::v1::{ConnectorManifest, RegisterRequest, StreamInfo};
use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use plugboard_sync::mesh::Mesh;
use plugboard_sync::runner::Runner;
use plugboard_sync::service::SyncService;
use plugboard_sync::store::Store;
use secrecy::SecretString;

/// The mesh key every service of a test signs with.
pub const MESH_KEY: &str = "sync-tests-mesh-key-of-32-bytes-or-more";

/// Where nothing listens: calls there fail as unreachable.
pub const NOWHERE: &str = "127.0.0.1:9";

/// The test connector's streams.
pub const STREAMS: [(&str, &str); 2] = [("JobOrder", "job"), ("Candidate", "candidate")];

/// Settings the test connector's schema accepts.
pub const SETTINGS: &str =
    r#"{"auth_url":"https://auth.example","login_url":"https://rest.example"}"#;

pub fn mesh_key() -> MeshKey {
    MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).expect("a key of 32 bytes or more")
}

/// A directory of its own under the temporary directory.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sync-test-{what}-{}", uuid::Uuid::new_v4()))
}

/// The manifest the test Bullhorn connector registers: two URL settings, both required, and
/// nothing else, as the connector runtime writes a manifest's `settings`.
pub fn manifest() -> ConnectorManifest {
    let url = serde_json::json!({"type": "string", "format": "uri", "pattern": "^https?://"});
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Bullhorn connection settings",
        "type": "object",
        "required": ["auth_url", "login_url"],
        "properties": {"auth_url": url, "login_url": url},
        "additionalProperties": false,
    });
    ConnectorManifest {
        name: "bullhorn".to_owned(),
        display_name: "Bullhorn".to_owned(),
        category: "ats".to_owned(),
        version: "1.0.0".to_owned(),
        streams: STREAMS
            .iter()
            .map(|(name, entity)| StreamInfo {
                name: (*name).to_owned(),
                entity: (*entity).to_owned(),
                cursor_field: String::new(),
            })
            .collect(),
        settings_schema_json: schema.to_string(),
        credential_kind: "oauth2_client".to_owned(),
        ..ConnectorManifest::default()
    }
}

/// Serves a registry on a loopback port for the rest of the test, with [`manifest`]
/// registered (at an address where nothing listens); answers its address.
pub async fn registry() -> String {
    let dir = temp_dir("registry");
    let url = plugboard_runtime::storage::sqlite_url(&dir, "registry");
    let config = plugboard_registry::Config::new(url, SecretString::from(MESH_KEY.to_owned()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(plugboard_registry::run(
        config,
        listener,
        std::future::pending(),
    ));
    let channel = plugboard_runtime::channel::lazy_channel(&addr).unwrap();
    let identity = MeshCredentials::service(mesh_key(), "connector:bullhorn");
    RegistryServiceClient::with_interceptor(channel, identity)
        .register(RegisterRequest {
            manifest: Some(manifest()),
            instance_id: "bullhorn-test-1".to_owned(),
            address: NOWHERE.to_owned(),
        })
        .await
        .expect("the test registry takes the test connector");
    addr
}

/// A sync service beside a fresh [`registry`].
pub async fn service() -> (SyncService, Store, Runner) {
    service_with_registry(&registry().await).await
}

/// A sync service whose registry is at `registry_addr`.
pub async fn service_with_registry(registry_addr: &str) -> (SyncService, Store, Runner) {
    let dir = temp_dir("sync");
    let store = Store::open(&plugboard_runtime::storage::sqlite_url(&dir, "sync"))
        .await
        .unwrap();
    // A started run resolves the connector and fails calling it, which is after the
    // scheduler's part, and leaves its run record behind.
    let mesh = Mesh::new(mesh_key(), registry_addr, NOWHERE, NOWHERE).unwrap();
    let runner = Runner::new(
        store.clone(),
        mesh,
        Coordinator::local(),
        10,
        Duration::from_secs(30),
    );
    (
        SyncService::new(store.clone(), runner.clone()),
        store,
        runner,
    )
}
