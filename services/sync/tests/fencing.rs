//! One run per connection across replicas, enforced where it matters: two sync replicas (each
//! its own pool and Redis connection, on one PostgreSQL schema and one Redis) share a
//! connection; the first stalls past its lease, the second takes over, and the first's next
//! page and checkpoint are refused inside the page's transaction. The read's deletions commit
//! with its last page, atomically with the checkpoint.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use plugboard_runtime::coordination::Coordinator;
use plugboard_sync::Error;
use plugboard_sync::fence::{self, Fence};
use plugboard_sync::store::{PageCommit, RunPart, Store, StoredRecord, SyncDefinition};
use plugboard_sync::stream_end::StreamEnd;
use plugboard_sync::two_way::PageReview;

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn redis_url() -> String {
    std::env::var("PLUGBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn record(id: &str) -> StoredRecord {
    StoredRecord {
        entity: "candidate".into(),
        external_id: id.into(),
        content_hash: format!("h{id}"),
        body_json: format!("{{\"first_name\":\"{id}\"}}"),
        custom_fields_json: "{}".into(),
        raw_payload_json: format!("{{\"id\":{id}}}"),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

fn page<'a>(tenant: &'a str, ids: &[&str], checkpoint: &'a str) -> PageCommit<'a> {
    PageCommit {
        tenant_id: tenant,
        connection_id: "c1",
        stream: "Candidate",
        records: ids.iter().map(|id| record(id)).collect(),
        quarantined: Vec::new(),
        checkpoint,
    }
}

fn fenced(fence: Fence) -> RunPart<'static> {
    RunPart {
        fence: Some(fence),
        end: None,
        run_id: None,
    }
}

struct Replica {
    store: Store,
    coordinator: Coordinator,
    name: &'static str,
}

impl Replica {
    async fn start(schema: &str, name: &'static str) -> Replica {
        Replica {
            store: Store::open_in_schema(POSTGRES_URL, schema).await.unwrap(),
            coordinator: Coordinator::redis(&redis_url()).await.unwrap(),
            name,
        }
    }

    async fn acquire(
        &self,
        tenant: &str,
        ttl: Duration,
    ) -> Option<plugboard_runtime::coordination::Lease> {
        fence::acquire(&self.coordinator, &self.store, tenant, "c1", self.name, ttl)
            .await
            .unwrap()
    }
}

async fn define(store: &Store, tenant: &str) {
    store
        .upsert_sync(&SyncDefinition {
            tenant_id: tenant.into(),
            connection_id: "c1".into(),
            connector: "bullhorn".into(),
            settings_json: "{}".into(),
            streams: vec!["Candidate".into()],
            interval_seconds: 0,
            cron: String::new(),
            paused: false,
            last_sync_at: None,
            next_run_at: None,
            resumes_at: None,
        })
        .await
        .unwrap();
}

async fn live_ids(store: &Store, tenant: &str) -> Vec<String> {
    store
        .list_records(tenant, "c1", "candidate", "", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.external_id)
        .collect()
}

#[tokio::test]
async fn a_stalled_replica_that_lost_its_lease_cannot_commit() {
    let schema = format!("sync_fence_{}", uuid::Uuid::new_v4().simple());
    let tenant = format!("fence-{}", uuid::Uuid::new_v4().simple());
    let first = Replica::start(&schema, "replica-a").await;
    let second = Replica::start(&schema, "replica-b").await;
    define(&first.store, &tenant).await;
    let ttl = Duration::from_millis(1500);

    let lease_a = first
        .acquire(&tenant, ttl)
        .await
        .expect("the first run starts");
    assert!(
        second.acquire(&tenant, ttl).await.is_none(),
        "one run per connection while the lease lives"
    );
    first
        .store
        .commit_run_page(
            page(&tenant, &["1", "2"], "cp-1"),
            &PageReview::default(),
            fenced(Fence::of(&lease_a)),
        )
        .await
        .unwrap();

    // The first replica stalls (no renewal) past its lease; the second takes the connection.
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let lease_b = second
        .acquire(&tenant, ttl)
        .await
        .expect("the lease expired");
    assert!(lease_b.fencing_token > lease_a.fencing_token);

    // The first wakes up mid-run: its page and checkpoint are refused, nothing of it lands.
    let refused = first
        .store
        .commit_run_page(
            page(&tenant, &["3"], "cp-stale"),
            &PageReview::default(),
            fenced(Fence::of(&lease_a)),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Fenced { .. }), "{refused}");
    assert_eq!(
        first
            .store
            .load_checkpoint(&tenant, "c1", "Candidate")
            .await
            .unwrap()
            .as_deref(),
        Some("cp-1")
    );
    assert_eq!(live_ids(&first.store, &tenant).await, ["1", "2"]);
    assert!(!first.coordinator.renew(&lease_a, ttl).await.unwrap());

    // The new holder goes on from the checkpoint.
    second
        .store
        .commit_run_page(
            page(&tenant, &["3"], "cp-2"),
            &PageReview::default(),
            fenced(Fence::of(&lease_b)),
        )
        .await
        .unwrap();
    assert_eq!(live_ids(&second.store, &tenant).await, ["1", "2", "3"]);
    second.coordinator.release(&lease_b).await.unwrap();
}

#[tokio::test]
async fn deletions_commit_with_the_last_page_or_not_at_all() {
    let schema = format!("sync_end_{}", uuid::Uuid::new_v4().simple());
    let tenant = format!("end-{}", uuid::Uuid::new_v4().simple());
    let replica = Replica::start(&schema, "replica-a").await;
    define(&replica.store, &tenant).await;
    let ttl = Duration::from_secs(30);
    let lease = replica.acquire(&tenant, ttl).await.unwrap();
    replica
        .store
        .commit_run_page(
            page(&tenant, &["1", "2", "3", "4"], "cp-1"),
            &PageReview::default(),
            fenced(Fence::of(&lease)),
        )
        .await
        .unwrap();

    // A complete read saw 1 and 3 (3 on its last page); the deleted-records endpoint listed 4.
    let seen: HashSet<String> = ["1".to_owned(), "3".to_owned()].into();
    let reported = ["4".to_owned()];
    let end = StreamEnd {
        entity: "candidate",
        reported_deleted: &reported,
        seen: Some(&seen),
    };
    // A run that lost its lease commits neither the last page nor its deletions.
    replica.coordinator.release(&lease).await.unwrap();
    let newer = replica.acquire(&tenant, ttl).await.unwrap();
    let refused = replica
        .store
        .commit_run_page(
            page(&tenant, &["3"], "cp-end"),
            &PageReview::default(),
            RunPart {
                fence: Some(Fence::of(&lease)),
                end: Some(end),
                run_id: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Fenced { .. }), "{refused}");
    assert_eq!(
        live_ids(&replica.store, &tenant).await,
        ["1", "2", "3", "4"]
    );

    let outcome = replica
        .store
        .commit_run_page(
            page(&tenant, &["3"], "cp-end"),
            &PageReview::default(),
            RunPart {
                fence: Some(Fence::of(&newer)),
                end: Some(end),
                run_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome.deleted, 2);
    assert_eq!(live_ids(&replica.store, &tenant).await, ["1", "3"]);
    assert_eq!(
        replica
            .store
            .load_checkpoint(&tenant, "c1", "Candidate")
            .await
            .unwrap()
            .as_deref(),
        Some("cp-end")
    );
    replica.coordinator.release(&newer).await.unwrap();
}
