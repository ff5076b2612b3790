//! A fresh sync store on each backend, for the tests that run the same checks on both.

use plugboard_sync::store::{Store, StoredRecord};

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store in a new SQLite file under the temporary directory.
pub async fn sqlite() -> Store {
    let dir = std::env::temp_dir().join(format!("pb-sync-test-{}", uuid::Uuid::new_v4()));
    Store::open(&plugboard_runtime::storage::sqlite_url(&dir, "sync"))
        .await
        .expect("a SQLite store in the temporary directory")
}

/// A store in a new schema of the local PostgreSQL server.
pub async fn postgres() -> Store {
    let schema = format!("sync_t{}", uuid::Uuid::new_v4().simple());
    Store::open_in_schema(POSTGRES_URL, &schema)
        .await
        .expect("PostgreSQL must run for tests (the test command starts it)")
}

/// A stored candidate `id` with content hash `hash`.
#[allow(dead_code)] // not every test file that shares the stores stores records
pub fn record(id: &str, hash: &str) -> StoredRecord {
    StoredRecord {
        entity: "candidate".into(),
        external_id: id.into(),
        content_hash: hash.into(),
        body_json: format!("{{\"first_name\":\"{id}\"}}"),
        custom_fields_json: "{}".into(),
        raw_payload_json: format!("{{\"id\":{id}}}"),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}
