//! Two-way sync on both backends: the outbox's idempotency, claims, retries and recovery; the
//! review of partner pages against our pushes (echoes, conflicts, unconfirmed creates); and
//! settling held conflicts. The outbox worker's part is played by calling the outbox directly;
//! tests/tests/two_way.rs runs the real worker against the Greenhouse sandbox.

// Shared test helpers are not `#[test]` functions, so allow-unwrap-in-tests does not reach them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Candidate, CanonicalRecord};
use plugboard_proto::sync::v1::WatchChangesResponse;
use plugboard_sync::changes::WatchFilter;
use plugboard_sync::conflicts::Resolution;
use plugboard_sync::outbox::{Origin, Outcome, Push, PushState};
use plugboard_sync::policy::{ConflictPolicy, EntityPolicy, TwoWayPolicy};
use plugboard_sync::push::{PushRequest, TwoWayService};
use plugboard_sync::store::{PageCommit, Store, StoredRecord, SyncDefinition};
use plugboard_sync::{Error, record_codec, two_way};

mod stores;
use stores::{postgres, sqlite};

const TENANT: &str = "tenant-a";
const CONNECTION: &str = "gh-1";

async fn with_sync(store: Store) -> (Store, TwoWayService) {
    for tenant in [TENANT, "tenant-b"] {
        store
            .upsert_sync(&SyncDefinition {
                tenant_id: tenant.into(),
                connection_id: CONNECTION.into(),
                connector: "greenhouse".into(),
                settings_json: "{}".into(),
                streams: vec!["candidates".into()],
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
    let service = TwoWayService::new(store.clone());
    (store, service)
}

fn candidate(external_id: &str, body: Candidate) -> CanonicalRecord {
    CanonicalRecord {
        entity: "candidate".into(),
        external_id: external_id.into(),
        body: Some(Body::Candidate(body)),
        ..CanonicalRecord::default()
    }
}

fn ada(title: &str) -> Candidate {
    Candidate {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: "ada@example.com".into(),
        current_title: title.into(),
        owner_name: "Sam".into(),
        ..Candidate::default()
    }
}

fn push_request(key: &str, record: CanonicalRecord) -> PushRequest {
    PushRequest {
        connection_id: CONNECTION.into(),
        idempotency_key: key.into(),
        record,
        wait: Duration::ZERO,
    }
}

/// A record as a read would store it; its hash is its content.
fn stored(external_id: &str, body: Candidate) -> StoredRecord {
    let mut record = record_codec::to_stored(&candidate(external_id, body), "").unwrap();
    record.content_hash = record.body_json.clone();
    record
}

/// Plays the outbox worker for one push: claims it and records `outcome`.
async fn deliver(store: &Store, push: &Push, outcome: Outcome) {
    let outbox = store.outbox();
    let now = chrono::Utc::now();
    let claimed = outbox
        .claim_due(
            &plugboard_runtime::storage::format_time(now + chrono::Duration::seconds(1)),
            "worker-1",
            &plugboard_runtime::storage::format_time(now + chrono::Duration::minutes(5)),
            100,
        )
        .await
        .unwrap();
    assert!(
        claimed
            .iter()
            .any(|claimed| claimed.push_id == push.push_id)
    );
    assert!(
        outbox
            .mark_sending(&push.push_id, "worker-1")
            .await
            .unwrap()
    );
    assert!(
        outbox
            .finish(&push.push_id, "worker-1", &outcome)
            .await
            .unwrap()
    );
    // Anything else claimed goes back for the next test step.
    for other in claimed
        .iter()
        .filter(|claimed| claimed.push_id != push.push_id)
    {
        let retry = Outcome::Retry {
            next_attempt_at: plugboard_runtime::storage::now_text(),
            error: "put back".into(),
            reason: "TEST".into(),
            maybe_sent: false,
        };
        outbox
            .finish(&other.push_id, "worker-1", &retry)
            .await
            .unwrap();
    }
}

fn delivered(external_id: &str) -> Outcome {
    Outcome::Delivered {
        external_id: external_id.into(),
        answer_fields: None,
    }
}

/// Reviews and commits one page of candidates, as a run does.
async fn read_page(store: &Store, records: Vec<StoredRecord>, checkpoint: &str) {
    let review = two_way::review_page(store, TENANT, CONNECTION, "candidate", &records)
        .await
        .unwrap();
    store
        .commit_page_with(
            PageCommit {
                tenant_id: TENANT,
                connection_id: CONNECTION,
                stream: "candidates",
                records,
                quarantined: vec![],
                checkpoint,
            },
            &review,
        )
        .await
        .unwrap();
}

/// The ids of changes on the feed after `after`, up to the first change of `marker`, which a
/// normal partner change commits last so the wait is exact.
async fn changes_until(store: &Store, after: u64, marker: &str) -> Vec<WatchChangesResponse> {
    let mut feed = store.change_feed().watch(
        TENANT.into(),
        WatchFilter {
            after_position: after,
            ..WatchFilter::default()
        },
    );
    let mut seen = Vec::new();
    loop {
        let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("the marker change within 5 s")
            .unwrap()
            .unwrap();
        let done = change.external_id == marker;
        seen.push(change);
        if done {
            return seen;
        }
    }
}

async fn marker(store: &Store, id: &str, checkpoint: &str) {
    let body = Candidate {
        first_name: id.into(),
        ..Candidate::default()
    };
    read_page(store, vec![stored(id, body)], checkpoint).await;
}

async fn idempotent_pushes(store: Store) {
    let (store, service) = with_sync(store).await;
    let create = candidate("", ada("Analyst"));

    // Concurrent retries of one push find one row.
    let attempts =
        (0..5).map(|_| service.push_record(TENANT, push_request("submit-1", create.clone())));
    let pushes: Vec<Push> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(pushes.iter().all(|push| push.push_id == pushes[0].push_id));
    let first = &pushes[0];
    assert_eq!(first.state, PushState::Pending);
    assert!(first.is_create);
    let (listed, _) = service
        .list_pushes(TENANT, CONNECTION, 0, "")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    // The same key with another record is refused, with a reason the caller can branch on.
    let other = candidate("", ada("Director"));
    let error = service
        .push_record(TENANT, push_request("submit-1", other))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::IdempotencyKeyReused { .. }),
        "{error}"
    );

    // Keys and pushes are per tenant.
    let theirs = service
        .push_record("tenant-b", push_request("submit-1", create.clone()))
        .await
        .unwrap();
    assert_ne!(theirs.push_id, first.push_id);
    assert!(matches!(
        service.get_push("tenant-b", &first.push_id).await,
        Err(Error::PushNotFound { .. })
    ));

    // Delivered, a retry returns the same outcome and the partner's id.
    deliver(&store, first, delivered("50000121")).await;
    let again = service
        .push_record(TENANT, push_request("submit-1", create))
        .await
        .unwrap();
    assert_eq!(again.push_id, first.push_id);
    assert_eq!(again.state, PushState::Delivered);
    assert_eq!(again.external_id, "50000121");

    // Bad requests are precise.
    let error = service
        .push_record(TENANT, push_request("", candidate("", ada("x"))))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidArgument {
            field: "idempotency_key",
            ..
        }
    ));
    let error = service
        .push_record(
            TENANT,
            push_request("k2", candidate("", Candidate::default())),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("sets no field"), "{error}");
    let mut missing_sync = push_request("k3", candidate("", ada("x")));
    missing_sync.connection_id = "nope".into();
    assert!(matches!(
        service.push_record(TENANT, missing_sync).await,
        Err(Error::SyncNotFound { .. })
    ));
}

#[tokio::test]
async fn idempotent_pushes_on_sqlite() {
    idempotent_pushes(sqlite().await).await;
}

#[tokio::test]
async fn idempotent_pushes_on_postgres() {
    idempotent_pushes(postgres().await).await;
}

async fn claims_retries_and_recovery(store: Store) {
    let (store, service) = with_sync(store).await;
    let outbox = store.outbox();
    let push = service
        .push_record(TENANT, push_request("p-1", candidate("", ada("Analyst"))))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let at = |seconds: i64| {
        plugboard_runtime::storage::format_time(now + chrono::Duration::seconds(seconds))
    };

    // Two replicas racing for the push: one gets it.
    let (now_text, until) = (at(0), at(60));
    let (a, b) = tokio::join!(
        outbox.claim_due(&now_text, "replica-a", &until, 10),
        outbox.claim_due(&now_text, "replica-b", &until, 10),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    let (holder, loser) = if a.is_empty() {
        ("replica-b", "replica-a")
    } else {
        ("replica-a", "replica-b")
    };
    assert!(!outbox.mark_sending(&push.push_id, loser).await.unwrap());

    // A transient failure: pending again, not due before its time.
    let retry = Outcome::Retry {
        next_attempt_at: at(30),
        error: "the partner is unavailable".into(),
        reason: "PARTNER_UNAVAILABLE".into(),
        maybe_sent: false,
    };
    assert!(!outbox.finish(&push.push_id, loser, &retry).await.unwrap());
    assert!(outbox.finish(&push.push_id, holder, &retry).await.unwrap());
    let waiting = service.get_push(TENANT, &push.push_id).await.unwrap();
    assert_eq!((waiting.state, waiting.attempts), (PushState::Pending, 1));
    assert_eq!(waiting.error_reason.as_deref(), Some("PARTNER_UNAVAILABLE"));
    assert!(
        outbox
            .claim_due(&at(10), "replica-a", &at(60), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The holder dies while sending: once its claim expires the push is pending again, marked
    // as maybe sent, so the connector will not repeat a create.
    let claimed = outbox
        .claim_due(&at(31), "replica-a", &at(40), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 2);
    assert!(
        outbox
            .mark_sending(&push.push_id, "replica-a")
            .await
            .unwrap()
    );
    assert_eq!(outbox.recover_expired(&at(39)).await.unwrap(), 0);
    assert_eq!(outbox.recover_expired(&at(41)).await.unwrap(), 1);
    let recovered = service.get_push(TENANT, &push.push_id).await.unwrap();
    assert_eq!(recovered.state, PushState::Pending);
    assert!(recovered.maybe_sent);
    // The dead holder's late answer is not recorded over the recovery.
    assert!(
        !outbox
            .finish(&push.push_id, "replica-a", &delivered("1"))
            .await
            .unwrap()
    );

    // A permanent failure keeps its reason.
    outbox
        .claim_due(&at(42), "replica-b", &at(100), 10)
        .await
        .unwrap();
    let failed = Outcome::Failed {
        error: "the partner refused the request with http 422: first_name is required".into(),
        reason: "PARTNER_REQUEST_REJECTED".into(),
    };
    assert!(
        outbox
            .finish(&push.push_id, "replica-b", &failed)
            .await
            .unwrap()
    );
    let failed = service.get_push(TENANT, &push.push_id).await.unwrap();
    assert_eq!(failed.state, PushState::Failed);
    assert!(failed.error.unwrap().contains("first_name is required"));
}

#[tokio::test]
async fn claims_retries_and_recovery_on_sqlite() {
    claims_retries_and_recovery(sqlite().await).await;
}

#[tokio::test]
async fn claims_retries_and_recovery_on_postgres() {
    claims_retries_and_recovery(postgres().await).await;
}

async fn updates_in_order_and_ownership(store: Store) {
    let (store, service) = with_sync(store).await;
    service
        .put_policy(
            TENANT,
            CONNECTION,
            TwoWayPolicy {
                entities: vec![EntityPolicy {
                    entity: "candidate".into(),
                    platform_fields: vec!["email".into()],
                    partner_fields: vec!["owner_name".into()],
                    conflict_policy: ConflictPolicy::PlatformWins,
                }],
            },
        )
        .await
        .unwrap();
    // An update leaves out what the partner owns; a create keeps it.
    let first = service
        .push_record(TENANT, push_request("u-1", candidate("7", ada("Analyst"))))
        .await
        .unwrap();
    assert_eq!(first.skipped_fields, ["owner_name"]);
    assert!(!first.record_json.contains("Sam"));
    let create = service
        .push_record(TENANT, push_request("c-1", candidate("", ada("Analyst"))))
        .await
        .unwrap();
    assert!(create.skipped_fields.is_empty());
    let only_partner = Candidate {
        owner_name: "Kim".into(),
        ..Candidate::default()
    };
    let error = service
        .push_record(TENANT, push_request("u-x", candidate("7", only_partner)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("the partner owns"), "{error}");

    // A second update of record 7 waits for the first.
    let second = service
        .push_record(TENANT, push_request("u-2", candidate("7", ada("Director"))))
        .await
        .unwrap();
    let outbox = store.outbox();
    let later =
        plugboard_runtime::storage::format_time(chrono::Utc::now() + chrono::Duration::seconds(5));
    let claimed = outbox.claim_due(&later, "w", &later, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|p| p.push_id.as_str()).collect();
    assert!(ids.contains(&first.push_id.as_str()));
    assert!(ids.contains(&create.push_id.as_str()));
    assert!(!ids.contains(&second.push_id.as_str()));
    outbox
        .finish(&first.push_id, "w", &delivered("7"))
        .await
        .unwrap();
    let claimed = outbox.claim_due(&later, "w", &later, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].push_id, second.push_id);

    // Policies are checked against the canonical model and kept per tenant.
    let bad = TwoWayPolicy {
        entities: vec![EntityPolicy {
            entity: "candidate".into(),
            platform_fields: vec!["e_mail".into()],
            ..EntityPolicy::default()
        }],
    };
    let error = service
        .put_policy(TENANT, CONNECTION, bad)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no field e_mail"), "{error}");
    let theirs = service.get_policy("tenant-b", CONNECTION).await.unwrap();
    assert!(theirs.entities.is_empty());
}

#[tokio::test]
async fn updates_in_order_and_ownership_on_sqlite() {
    updates_in_order_and_ownership(sqlite().await).await;
}

#[tokio::test]
async fn updates_in_order_and_ownership_on_postgres() {
    updates_in_order_and_ownership(postgres().await).await;
}

fn policy(conflict_policy: ConflictPolicy) -> TwoWayPolicy {
    TwoWayPolicy {
        entities: vec![EntityPolicy {
            entity: "candidate".into(),
            platform_fields: vec!["current_title".into()],
            partner_fields: vec!["owner_name".into()],
            conflict_policy,
        }],
    }
}

/// Our write comes back silently; a partner edit to a platform-owned field is a conflict the
/// platform wins by writing back, and that write coming back is silent too.
async fn echoes_and_platform_wins(store: Store) {
    let (store, service) = with_sync(store).await;
    service
        .put_policy(TENANT, CONNECTION, policy(ConflictPolicy::PlatformWins))
        .await
        .unwrap();
    read_page(&store, vec![stored("7", ada("Clerk"))], "p1").await;
    marker(&store, "m1", "p1").await;
    let start = changes_until(&store, 0, "m1")
        .await
        .last()
        .unwrap()
        .position;

    // We push a new title; the partner has it on the next read.
    let push = service
        .push_record(
            TENANT,
            push_request("title-1", candidate("7", ada("Analyst"))),
        )
        .await
        .unwrap();
    deliver(&store, &push, delivered("7")).await;
    read_page(&store, vec![stored("7", ada("Analyst"))], "p2").await;
    marker(&store, "m2", "p2").await;
    let seen = changes_until(&store, start, "m2").await;
    assert!(
        seen.iter().all(|change| change.external_id != "7"),
        "{seen:?}"
    );
    let echoed = service.get_push(TENANT, &push.push_id).await.unwrap();
    assert!(echoed.echo_seen_at.is_some());
    let start = seen.last().unwrap().position;

    // Someone at the partner retitles her: a recorded conflict, settled for the platform by a
    // write-back of the platform's value; nothing on the change feed.
    read_page(&store, vec![stored("7", ada("Janitor"))], "p3").await;
    let (conflicts, _) = service
        .list_conflicts(TENANT, CONNECTION, false, 0, "")
        .await
        .unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let conflict = &conflicts[0];
    assert_eq!(conflict.external_id, "7");
    assert_eq!(conflict.fields.len(), 1);
    assert_eq!(conflict.fields[0].field, "current_title");
    assert_eq!(conflict.fields[0].platform_value, Some("Analyst".into()));
    assert_eq!(conflict.fields[0].partner_value, Some("Janitor".into()));
    assert!(!conflict.held);
    assert_eq!(conflict.resolution, Some(Resolution::Platform));
    let write_back = service
        .get_push(TENANT, &conflict.corrective_push_id)
        .await
        .unwrap();
    assert_eq!(write_back.origin, Origin::Conflict);
    assert_eq!(write_back.external_id, "7");
    assert_eq!(write_back.record_json, r#"{"current_title":"Analyst"}"#);

    // The write-back comes back: no conflict, no change.
    deliver(&store, &write_back, delivered("7")).await;
    read_page(&store, vec![stored("7", ada("Analyst"))], "p4").await;
    marker(&store, "m3", "p4").await;
    let seen = changes_until(&store, start, "m3").await;
    assert!(
        seen.iter().all(|change| change.external_id != "7"),
        "{seen:?}"
    );
    let (conflicts, _) = service
        .list_conflicts(TENANT, CONNECTION, false, 0, "")
        .await
        .unwrap();
    assert_eq!(conflicts.len(), 1);

    // A partner change to a field it owns is a plain change.
    let mut renamed = ada("Analyst");
    renamed.owner_name = "Kim".into();
    read_page(&store, vec![stored("7", renamed)], "p5").await;
    marker(&store, "m4", "p5").await;
    let start = seen.last().unwrap().position;
    let seen = changes_until(&store, start, "m4").await;
    assert_eq!(seen[0].external_id, "7");
    let (conflicts, _) = service
        .list_conflicts("tenant-b", CONNECTION, false, 0, "")
        .await
        .unwrap();
    assert!(conflicts.is_empty(), "conflicts are per tenant");
}

#[tokio::test]
async fn echoes_and_platform_wins_on_sqlite() {
    echoes_and_platform_wins(sqlite().await).await;
}

#[tokio::test]
async fn echoes_and_platform_wins_on_postgres() {
    echoes_and_platform_wins(postgres().await).await;
}

/// Held conflicts wait for a decision; either side can win it, once.
async fn held_conflicts(store: Store) {
    let (store, service) = with_sync(store).await;
    service
        .put_policy(TENANT, CONNECTION, policy(ConflictPolicy::HoldForReview))
        .await
        .unwrap();
    read_page(
        &store,
        vec![stored("7", ada("Clerk")), stored("8", ada("Clerk"))],
        "p1",
    )
    .await;
    read_page(
        &store,
        vec![stored("7", ada("Janitor")), stored("8", ada("Cook"))],
        "p2",
    )
    .await;
    let (held, _) = service
        .list_conflicts(TENANT, CONNECTION, true, 0, "")
        .await
        .unwrap();
    assert_eq!(held.len(), 2);
    let on = |id: &str| held.iter().find(|c| c.external_id == id).unwrap().clone();

    let kept = service
        .resolve_conflict(TENANT, &on("7").conflict_id, Resolution::Platform)
        .await
        .unwrap();
    assert_eq!(kept.resolution, Some(Resolution::Platform));
    let write_back = service
        .get_push(TENANT, &kept.corrective_push_id)
        .await
        .unwrap();
    assert_eq!(write_back.record_json, r#"{"current_title":"Clerk"}"#);
    assert_eq!(write_back.state, PushState::Pending);

    // The partner's side publishes the record as it is.
    marker(&store, "m0", "p2").await;
    let start = changes_until(&store, 0, "m0")
        .await
        .last()
        .unwrap()
        .position;
    service
        .resolve_conflict(TENANT, &on("8").conflict_id, Resolution::Partner)
        .await
        .unwrap();
    marker(&store, "m1", "p2").await;
    let seen = changes_until(&store, start, "m1").await;
    assert_eq!(seen[0].external_id, "8");

    let again = service
        .resolve_conflict(TENANT, &on("8").conflict_id, Resolution::Platform)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::ConflictNotHeld { .. }), "{again}");
    let theirs = service
        .resolve_conflict("tenant-b", &on("7").conflict_id, Resolution::Partner)
        .await
        .unwrap_err();
    assert!(matches!(theirs, Error::ConflictNotFound { .. }), "{theirs}");
    let (held, _) = service
        .list_conflicts(TENANT, CONNECTION, true, 0, "")
        .await
        .unwrap();
    assert!(held.is_empty());
}

#[tokio::test]
async fn held_conflicts_on_sqlite() {
    held_conflicts(sqlite().await).await;
}

#[tokio::test]
async fn held_conflicts_on_postgres() {
    held_conflicts(postgres().await).await;
}

/// A create whose answer was lost is never sent again; the read that finds it links it.
async fn unconfirmed_creates_are_found_by_reads(store: Store) {
    let (store, service) = with_sync(store).await;
    let grace = Candidate {
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        email: "grace@example.com".into(),
        ..Candidate::default()
    };
    let push = service
        .push_record(TENANT, push_request("g-1", candidate("", grace.clone())))
        .await
        .unwrap();
    let unknown = Outcome::Unconfirmed {
        error: "the write may or may not have happened at the partner".into(),
        reason: "WRITE_OUTCOME_UNKNOWN".into(),
    };
    deliver(&store, &push, unknown).await;
    assert_eq!(
        service.get_push(TENANT, &push.push_id).await.unwrap().state,
        PushState::Unconfirmed
    );

    // Someone else's candidate is not ours; ours, with what the partner added, is.
    let mut found = grace.clone();
    found.source = "API".into();
    read_page(
        &store,
        vec![stored("9", ada("Clerk")), stored("10", found)],
        "p1",
    )
    .await;
    let linked = service.get_push(TENANT, &push.push_id).await.unwrap();
    assert_eq!(linked.state, PushState::Delivered);
    assert_eq!(linked.external_id, "10");
    marker(&store, "m1", "p1").await;
    let seen: Vec<String> = changes_until(&store, 0, "m1")
        .await
        .into_iter()
        .map(|change| change.external_id)
        .collect();
    assert_eq!(seen, ["9", "m1"], "the found create is our echo");
}

#[tokio::test]
async fn unconfirmed_creates_are_found_by_reads_on_sqlite() {
    unconfirmed_creates_are_found_by_reads(sqlite().await).await;
}

#[tokio::test]
async fn unconfirmed_creates_are_found_by_reads_on_postgres() {
    unconfirmed_creates_are_found_by_reads(postgres().await).await;
}

/// Settled pushes are purged after the retention; open ones and fresh ones stay, and a purged
/// key is free again.
async fn settled_pushes_are_purged_after_the_retention(store: Store) {
    let (store, service) = with_sync(store).await;
    let settled = service
        .push_record(TENANT, push_request("old-1", candidate("", ada("Analyst"))))
        .await
        .unwrap();
    deliver(&store, &settled, delivered("501")).await;
    let open = service
        .push_record(TENANT, push_request("open-1", candidate("", ada("Lead"))))
        .await
        .unwrap();
    let outbox = store.outbox();
    let keep = Duration::from_secs(3600);

    // Within the retention nothing goes.
    let now = chrono::Utc::now();
    assert_eq!(
        plugboard_sync::retention::purge(&outbox, keep, now)
            .await
            .unwrap(),
        0
    );
    // Past it, the delivered push goes and the pending one stays.
    let later = now + chrono::Duration::hours(2);
    assert_eq!(
        plugboard_sync::retention::purge(&outbox, keep, later)
            .await
            .unwrap(),
        1
    );
    assert!(service.get_push(TENANT, &settled.push_id).await.is_err());
    assert_eq!(
        service.get_push(TENANT, &open.push_id).await.unwrap().state,
        PushState::Pending
    );
}

#[tokio::test]
async fn settled_pushes_are_purged_on_sqlite() {
    settled_pushes_are_purged_after_the_retention(sqlite().await).await;
}

#[tokio::test]
async fn settled_pushes_are_purged_on_postgres() {
    settled_pushes_are_purged_after_the_retention(postgres().await).await;
}

/// An unconfirmed push the caller knows the partner never made is given up: failed with the
/// caller's reason, still the record of its key; other pushes cannot be given up.
async fn an_unconfirmed_push_can_be_given_up(store: Store) {
    let (store, service) = with_sync(store).await;
    let push = service
        .push_record(
            TENANT,
            push_request("lost-1", candidate("", ada("Analyst"))),
        )
        .await
        .unwrap();
    let pending = service
        .give_up_push(TENANT, &push.push_id, "checked at the partner")
        .await
        .unwrap_err();
    assert!(
        matches!(pending, Error::PushNotUnconfirmed { .. }),
        "{pending}"
    );
    let unknown = Outcome::Unconfirmed {
        error: "the write may or may not have happened at the partner".into(),
        reason: "WRITE_OUTCOME_UNKNOWN".into(),
    };
    deliver(&store, &push, unknown).await;
    let empty = service
        .give_up_push(TENANT, &push.push_id, " ")
        .await
        .unwrap_err();
    assert!(
        matches!(
            empty,
            Error::InvalidArgument {
                field: "reason",
                ..
            }
        ),
        "{empty}"
    );
    let other_tenant = service
        .give_up_push("tenant-b", &push.push_id, "not yours")
        .await
        .unwrap_err();
    assert!(
        matches!(other_tenant, Error::PushNotFound { .. }),
        "{other_tenant}"
    );

    let given_up = service
        .give_up_push(TENANT, &push.push_id, "not in the partner's candidate list")
        .await
        .unwrap();
    assert_eq!(given_up.state, PushState::Failed);
    assert!(
        given_up
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("not in the partner's candidate list"),
        "{given_up:?}"
    );
    // The key still names that push: a retry finds it rather than writing.
    let retry = service
        .push_record(
            TENANT,
            push_request("lost-1", candidate("", ada("Analyst"))),
        )
        .await
        .unwrap();
    assert_eq!(retry.push_id, push.push_id);
    assert_eq!(retry.state, PushState::Failed);
}

#[tokio::test]
async fn an_unconfirmed_push_can_be_given_up_on_sqlite() {
    an_unconfirmed_push_can_be_given_up(sqlite().await).await;
}

#[tokio::test]
async fn an_unconfirmed_push_can_be_given_up_on_postgres() {
    an_unconfirmed_push_can_be_given_up(postgres().await).await;
}

/// A conflict held for review takes its fields out of a push still queued for the record, so
/// the push cannot decide what the review is for; settling for the platform writes them back.
async fn a_held_conflict_stops_the_queued_push(store: Store) {
    let (store, service) = with_sync(store).await;
    service
        .put_policy(TENANT, CONNECTION, policy(ConflictPolicy::HoldForReview))
        .await
        .unwrap();
    read_page(&store, vec![stored("7", ada("Clerk"))], "p1").await;
    let queued = service
        .push_record(
            TENANT,
            push_request("title-q", candidate("7", ada("Director"))),
        )
        .await
        .unwrap();
    assert!(
        queued.record_json.contains("Director"),
        "{}",
        queued.record_json
    );
    // The partner retitles her before the push goes out: held for review.
    read_page(&store, vec![stored("7", ada("Janitor"))], "p2").await;
    let (held, _) = service
        .list_conflicts(TENANT, CONNECTION, true, 0, "")
        .await
        .unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    let stopped = service.get_push(TENANT, &queued.push_id).await.unwrap();
    assert!(!stopped.record_json.contains("Director"), "{stopped:?}");
    if stopped.state == PushState::Failed {
        assert_eq!(stopped.error_reason.as_deref(), Some("HELD_FOR_REVIEW"));
    }

    let kept = service
        .resolve_conflict(TENANT, &held[0].conflict_id, Resolution::Platform)
        .await
        .unwrap();
    let write_back = service
        .get_push(TENANT, &kept.corrective_push_id)
        .await
        .unwrap();
    assert_eq!(write_back.record_json, r#"{"current_title":"Director"}"#);
}

#[tokio::test]
async fn a_held_conflict_stops_the_queued_push_on_sqlite() {
    a_held_conflict_stops_the_queued_push(sqlite().await).await;
}

#[tokio::test]
async fn a_held_conflict_stops_the_queued_push_on_postgres() {
    a_held_conflict_stops_the_queued_push(postgres().await).await;
}
