use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spool::Spool;
use crate::store::{AuditEntry, AuditRow, CredentialStore};

fn entry(index: usize) -> AuditEntry {
    AuditEntry {
        at: plugboard_runtime::storage::now_text(),
        tenant: "acme".into(),
        connection_id: "c1".into(),
        subject: "connector:x".into(),
        action: "lease".into(),
        outcome: "ok".into(),
        run_id: format!("run-{index}"),
        version: 1,
    }
}

fn row(id: &str, run_id: &str) -> AuditRow {
    AuditRow {
        id: id.into(),
        entry: AuditEntry {
            run_id: run_id.into(),
            ..entry(0)
        },
    }
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pb-audit-{name}-{}", uuid::Uuid::new_v4()))
}

async fn sqlite_store(dir: &Path, spool: &Path) -> CredentialStore {
    let url = format!("sqlite://{}/credentials.db?mode=rwc", dir.display());
    CredentialStore::open_with_audit_spool(&url, "credentials", spool)
        .await
        .unwrap()
}

/// The run ids of the audit rows in the table, sorted.
async fn run_ids(store: &CredentialStore) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT run_id FROM credential_audit")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let mut ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort();
    ids
}

/// A segment as a process that died left it: rows as JSON lines, the last one maybe torn.
fn write_segment(spool: &Path, name: &str, rows: &[AuditRow], torn_tail: &str) -> PathBuf {
    std::fs::create_dir_all(spool).unwrap();
    let path = spool.join(format!("{name}.audit"));
    let mut file = std::fs::File::create(&path).unwrap();
    for row in rows {
        file.write_all(&serde_json::to_vec(row).unwrap()).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.write_all(torn_tail.as_bytes()).unwrap();
    path
}

#[tokio::test]
async fn spooled_rows_reach_the_table_without_a_flush_and_at_once_with_one() {
    let dir = temp_dir("ship");
    let spool = dir.join("spool");
    let store = sqlite_store(&dir, &spool).await;

    for index in 0..3 {
        store.record(entry(index)).await.unwrap();
    }
    // The background shipment, every SHIP_EVERY.
    let mut shipped = Vec::new();
    for _ in 0..100 {
        shipped = run_ids(&store).await;
        if shipped.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shipped, ["run-0", "run-1", "run-2"]);

    // A flush ships what was spooled before it, whatever the timer.
    for index in 3..103 {
        store.record(entry(index)).await.unwrap();
    }
    store.flush_audit().await.unwrap();
    assert_eq!(run_ids(&store).await.len(), 103);
    let log = store.audit_log("acme", "c1").await.unwrap();
    assert_eq!(log.len(), 103);
    assert!(log.iter().all(|entry| entry.action == "lease"));

    // Shipped segments are deleted; only the current, empty one is left.
    let files = std::fs::read_dir(&spool).unwrap().count();
    assert_eq!(files, 1);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn segments_a_dead_process_left_are_shipped_once_and_held_ones_are_left() {
    let dir = temp_dir("orphans");
    let spool = dir.join("spool");
    let rows = [
        row("00000000-0000-7000-8000-000000000001", "dead-1"),
        row("00000000-0000-7000-8000-000000000002", "dead-2"),
    ];
    // One dead process's segment, torn mid-line by a crash of the machine...
    let torn = write_segment(&spool, "000000000000001-a", &rows, "{\"id\":\"00000000-00");
    // ...the same rows again, as if a process died after its commit but before deleting it...
    let again = write_segment(&spool, "000000000000002-b", &rows, "");
    // ...and a live process's segment, which it holds locked.
    let live_row = row("00000000-0000-7000-8000-000000000003", "live");
    let live = write_segment(&spool, "000000000000003-c", &[live_row], "");
    let held = std::fs::File::open(&live).unwrap();
    held.lock().unwrap();

    let store = sqlite_store(&dir, &spool).await;
    store.audit.inner.shipper.ship(true).await.unwrap();
    assert_eq!(run_ids(&store).await, ["dead-1", "dead-2"]);
    assert!(!torn.exists() && !again.exists());
    assert!(
        live.exists(),
        "a segment a live process holds is not shipped"
    );

    // Once its process is gone, it is.
    drop(held);
    store.audit.inner.shipper.ship(true).await.unwrap();
    assert_eq!(run_ids(&store).await, ["dead-1", "dead-2", "live"]);
    assert!(!live.exists());
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn rows_stay_spooled_while_the_table_refuses_them_and_ship_once_it_takes_them() {
    let dir = temp_dir("refused");
    let spool = dir.join("spool");
    let store = sqlite_store(&dir, &spool).await;
    sqlx::query("ALTER TABLE credential_audit RENAME TO audit_away")
        .execute(store.pool())
        .await
        .unwrap();

    // Leases do not wait for the table: their rows are spooled...
    for index in 0..5 {
        store.record(entry(index)).await.unwrap();
    }
    // ...and a flush says the table did not take them.
    let error = store.flush_audit().await.unwrap_err();
    assert!(matches!(error, crate::Error::Storage(_)), "{error:?}");

    sqlx::query("ALTER TABLE audit_away RENAME TO credential_audit")
        .execute(store.pool())
        .await
        .unwrap();
    store.flush_audit().await.unwrap();
    assert_eq!(run_ids(&store).await.len(), 5);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_full_spool_refuses_rows_and_names_why() {
    let dir = temp_dir("full");
    let spool = Spool::open(&dir, 3).unwrap();
    for index in 0..3 {
        spool.append(entry(index)).unwrap();
    }
    let error = spool.append(entry(3)).unwrap_err();
    assert!(
        matches!(&error, crate::Error::AuditFailed(reason) if reason.contains("3 audit rows")),
        "{error:?}"
    );
    // Shipped rows make room again.
    spool.shipped(1);
    spool.append(entry(4)).unwrap();
    drop(spool);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_insert_numbers_every_column_of_every_row_and_skips_known_ids() {
    let postgres = plugboard_runtime::placeholders::Placeholders::for_backend("PostgreSQL");
    let text = super::ship::insert_text(postgres, 2);
    assert!(
        text.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT (id) DO NOTHING"
        ),
        "{text}"
    );
}

#[test]
fn the_default_spool_sits_beside_a_sqlite_file_and_is_per_database_otherwise() {
    assert_eq!(
        super::default_spool_dir("sqlite:///data/credentials.db?mode=rwc", "credentials"),
        PathBuf::from("/data/credentials.db.audit-spool")
    );
    let one = super::default_spool_dir("postgres://db/one", "credentials");
    let two = super::default_spool_dir("postgres://db/two", "credentials");
    assert_ne!(one, two);
    assert_eq!(
        one,
        super::default_spool_dir("postgres://db/one", "credentials")
    );
    assert!(!one.display().to_string().contains("db/one"));
    let memory = super::default_spool_dir("sqlite::memory:", "credentials");
    assert_ne!(
        memory,
        super::default_spool_dir("sqlite::memory:", "credentials")
    );
}
