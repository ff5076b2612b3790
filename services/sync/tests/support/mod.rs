//! A sync service on a fresh SQLite file whose mesh points nowhere: what it does up to calling
//! another service can be tested without one.

use std::time::Duration;

use plugboard_runtime::coordination::Coordinator;
use plugboard_runtime::identity::MeshKey;
use plugboard_sync::mesh::Mesh;
use plugboard_sync::runner::Runner;
use plugboard_sync::service::SyncService;
use plugboard_sync::store::Store;
use secrecy::SecretString;

pub async fn service() -> (SyncService, Store, Runner) {
    let dir = std::env::temp_dir().join(format!("sync-test-{}", uuid::Uuid::new_v4()));
    let store = Store::open(&plugboard_runtime::storage::sqlite_url(&dir, "sync"))
        .await
        .unwrap();
    let key = MeshKey::new(&SecretString::from("k".repeat(32))).unwrap();
    // Nothing listens there: a started run fails at the registry, which is after the
    // scheduler's part, and leaves its run record behind.
    let mesh = Mesh::new(key, "127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9").unwrap();
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
