//! Two-way sync end to end against the Greenhouse sandbox, every service its own process:
//! PushRecord creates a candidate at the partner once however often it is retried, the
//! partner's id comes back, the write's echo on the next incremental read is not a change and
//! is not pushed back, a partner edit to a platform-owned field is a recorded conflict the
//! platform wins by writing its value back, and a push still pending when sync is killed is
//! delivered exactly once by the restarted process.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Candidate, CanonicalRecord};
use plugboard_proto::sync::v1::{
    ConflictPolicy, ConflictResolution, ConflictState, EntityPolicy, GetPushRequest,
    ListConflictsRequest, ListPushesRequest, PushInfo, PushRecordRequest, PushState,
    PutTwoWayPolicyRequest, RunState, TwoWayPolicy, WatchChangesRequest, WatchChangesResponse,
};
use plugboard_tests::eventually;
use plugboard_tests::flows::Mesh;
use plugboard_tests::greenhouse::GreenhouseMesh;
use serde_json::json;

const CONNECTION: &str = "gh-two-way";
/// Candidates the sandbox is seeded with.
const SEEDED: usize = 120;

fn ada(title: &str) -> CanonicalRecord {
    CanonicalRecord {
        entity: "candidate".into(),
        body: Some(Body::Candidate(Candidate {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            current_title: title.into(),
            ..Candidate::default()
        })),
        ..CanonicalRecord::default()
    }
}

fn push(key: &str, record: CanonicalRecord) -> PushRecordRequest {
    PushRecordRequest {
        connection_id: CONNECTION.into(),
        idempotency_key: key.into(),
        record: Some(record),
        wait_seconds: 20,
    }
}

async fn get_push(flows: &Mesh, push_id: &str) -> anyhow::Result<PushInfo> {
    flows
        .clients
        .sync(&flows.sync_addr)
        .get_push(GetPushRequest {
            push_id: push_id.into(),
        })
        .await?
        .into_inner()
        .push
        .ok_or_else(|| anyhow::anyhow!("push {push_id} has no body"))
}

async fn incremental_run(flows: &Mesh) -> anyhow::Result<()> {
    let run = flows.run_once(CONNECTION).await?;
    anyhow::ensure!(
        run.state == RunState::Succeeded as i32,
        "run failed: {}",
        run.error
    );
    Ok(())
}

/// Changes on the feed after `after`, up to and including the first of `marker`.
async fn changes_until(
    flows: &Mesh,
    after: u64,
    marker: &str,
) -> anyhow::Result<Vec<WatchChangesResponse>> {
    let mut feed = flows
        .clients
        .sync(&flows.sync_addr)
        .watch_changes(WatchChangesRequest {
            after_position: after,
            connection_id: CONNECTION.into(),
            entity: "candidate".into(),
        })
        .await?
        .into_inner();
    let mut seen = Vec::new();
    loop {
        let change = tokio::time::timeout(Duration::from_secs(10), feed.message())
            .await
            .map_err(|_| anyhow::anyhow!("{marker} did not arrive on the change feed"))??
            .ok_or_else(|| anyhow::anyhow!("the change feed ended"))?;
        let done = change.external_id == marker;
        seen.push(change);
        if done {
            return Ok(seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_greenhouse_once_echoes_stay_silent_and_conflicts_are_settled()
-> anyhow::Result<()> {
    // A first retry waits at least 3 s: time to kill sync between attempts, not during one.
    let mut mesh =
        GreenhouseMesh::start(&[("PLUGBOARD_SYNC_PUSH_RETRY_MIN_MILLIS", "3000")]).await?;
    // Unique per run: Redis (run leases) is shared with every other test run on the machine.
    let tenant = format!("two-way-{}", uuid::Uuid::new_v4().simple());
    let flows = mesh.flows(&tenant);
    let mut sync = flows.clients.sync(&flows.sync_addr);
    mesh.connect(&flows.clients, CONNECTION).await?;
    sync.put_two_way_policy(PutTwoWayPolicyRequest {
        connection_id: CONNECTION.into(),
        policy: Some(TwoWayPolicy {
            entities: vec![EntityPolicy {
                entity: "candidate".into(),
                platform_fields: vec!["current_title".into()],
                partner_fields: vec!["custom_fields.recruiter".into()],
                conflict_policy: ConflictPolicy::PlatformWins as i32,
            }],
        }),
    })
    .await?;
    incremental_run(&flows).await?;
    let seeded = mesh.sandbox.candidates().await?;
    assert_eq!(seeded.len(), SEEDED);
    let marker_id = seeded[0]["id"].to_string();

    // Three callers retry one submission at once: one candidate at the partner, one push.
    let attempts: Vec<_> = (0..3)
        .map(|_| {
            let mut sync = sync.clone();
            tokio::spawn(async move { sync.push_record(push("submit-ada", ada("Analyst"))).await })
        })
        .collect();
    let mut pushes: Vec<PushInfo> = Vec::new();
    for attempt in attempts {
        pushes.push(attempt.await??.into_inner().push.unwrap());
    }
    let ada_push = pushes[0].clone();
    assert!(pushes.iter().all(|p| p.push_id == ada_push.push_id));
    let ada_push = get_push(&flows, &ada_push.push_id).await?;
    assert_eq!(ada_push.state, PushState::Delivered as i32, "{ada_push:?}");
    let ada_id = ada_push.external_id.clone();
    assert!(!ada_id.is_empty());
    assert_eq!(mesh.sandbox.candidates().await?.len(), SEEDED + 1);
    assert_eq!(mesh.sandbox.writes().await?, 1);
    let at_partner = mesh.sandbox.candidate(&ada_id).await?;
    assert_eq!(at_partner["title"], "Analyst");
    assert_eq!(at_partner["email_addresses"][0]["value"], "ada@example.com");

    // A retry after delivery has the same outcome; the key with another record is refused.
    let again = sync
        .push_record(push("submit-ada", ada("Analyst")))
        .await?
        .into_inner()
        .push
        .unwrap();
    assert_eq!(
        (again.push_id.as_str(), again.external_id.as_str()),
        (ada_push.push_id.as_str(), ada_id.as_str())
    );
    let reused = sync
        .push_record(push("submit-ada", ada("Director")))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        plugboard_proto::error::reason_of(&reused).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(mesh.sandbox.writes().await?, 1);

    // The next read brings Ada back with another partner change beside her: only that change
    // is on the feed, and nothing is pushed back.
    let before = changes_until(&flows, 0, &seeded[SEEDED - 1]["id"].to_string()).await?;
    let start = before.last().unwrap().position;
    mesh.sandbox
        .edit(&marker_id, json!({"last_name": "Marker"}))
        .await?;
    incremental_run(&flows).await?;
    let seen = changes_until(&flows, start, &marker_id).await?;
    assert!(
        seen.iter().all(|change| change.external_id != ada_id),
        "our own write came back as a change: {seen:?}"
    );
    let stored = flows.canonical_records(CONNECTION, "candidate").await?;
    assert!(stored.iter().any(|record| record.external_id == ada_id));
    let pushes = sync
        .list_pushes(ListPushesRequest {
            connection_id: CONNECTION.into(),
            ..ListPushesRequest::default()
        })
        .await?
        .into_inner()
        .pushes;
    assert_eq!(pushes.len(), 1);
    assert_eq!(mesh.sandbox.writes().await?, 1);
    let start = seen.last().unwrap().position;

    // A recruiter retitles Ada at the partner: the platform owns titles, so it is a conflict,
    // recorded and settled by writing the platform's title back.
    mesh.sandbox
        .edit(&ada_id, json!({"title": "Janitor"}))
        .await?;
    incremental_run(&flows).await?;
    let conflicts = sync
        .list_conflicts(ListConflictsRequest {
            connection_id: CONNECTION.into(),
            ..ListConflictsRequest::default()
        })
        .await?
        .into_inner()
        .conflicts;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let conflict = &conflicts[0];
    assert_eq!(conflict.external_id, ada_id);
    assert_eq!(conflict.fields[0].field, "current_title");
    assert_eq!(conflict.fields[0].platform_value_json, "\"Analyst\"");
    assert_eq!(conflict.fields[0].partner_value_json, "\"Janitor\"");
    assert_eq!(conflict.state, ConflictState::Resolved as i32);
    assert_eq!(conflict.resolution, ConflictResolution::Platform as i32);
    let write_back_id = conflict.corrective_push_id.clone();
    eventually(
        "the write-back to be delivered",
        Duration::from_secs(20),
        || async {
            get_push(&flows, &write_back_id)
                .await
                .is_ok_and(|push| push.state == PushState::Delivered as i32)
        },
    )
    .await?;
    assert_eq!(mesh.sandbox.candidate(&ada_id).await?["title"], "Analyst");
    assert_eq!(mesh.sandbox.writes().await?, 2);

    // The write-back's echo is silent too, and raises no second conflict.
    mesh.sandbox
        .edit(&marker_id, json!({"last_name": "Marker2"}))
        .await?;
    incremental_run(&flows).await?;
    let seen = changes_until(&flows, start, &marker_id).await?;
    assert!(
        seen.iter().all(|change| change.external_id != ada_id),
        "a conflict or its write-back came out as a change: {seen:?}"
    );
    let conflicts = sync
        .list_conflicts(ListConflictsRequest {
            connection_id: CONNECTION.into(),
            ..ListConflictsRequest::default()
        })
        .await?
        .into_inner()
        .conflicts;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(mesh.sandbox.writes().await?, 2);

    // The connector goes down; a new submission waits in the outbox.
    mesh.kill_connector();
    let mut grace = ada("Engineer");
    if let Some(Body::Candidate(candidate)) = &mut grace.body {
        candidate.first_name = "Grace".into();
        candidate.last_name = "Hopper".into();
        candidate.email = "grace@example.com".into();
    }
    let mut request = push("submit-grace", grace);
    request.wait_seconds = 0;
    let grace_push = sync.push_record(request).await?.into_inner().push.unwrap();
    eventually(
        "a failed first attempt",
        Duration::from_secs(20),
        || async {
            get_push(&flows, &grace_push.push_id)
                .await
                .is_ok_and(|push| push.state == PushState::Pending as i32 && push.attempts == 1)
        },
    )
    .await?;
    let waiting = get_push(&flows, &grace_push.push_id).await?;
    assert!(
        ["CONNECTOR_UNREACHABLE", "CONNECTOR_NOT_RESOLVED"]
            .contains(&waiting.error_reason.as_str()),
        "{waiting:?}"
    );
    // Sync dies between attempts; the connector comes back; a new sync process delivers.
    mesh.kill_sync();
    mesh.start_connector().await?;
    mesh.start_sync().await?;
    eventually(
        "the pending push to be delivered",
        Duration::from_secs(30),
        || async {
            get_push(&flows, &grace_push.push_id)
                .await
                .is_ok_and(|push| push.state == PushState::Delivered as i32)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; sync log:\n{}", mesh.sync_log()))?;
    let delivered = get_push(&flows, &grace_push.push_id).await?;
    assert!(delivered.attempts >= 2, "{delivered:?}");
    let graces: Vec<_> = mesh
        .sandbox
        .candidates()
        .await?
        .into_iter()
        .filter(|candidate| candidate["email_addresses"][0]["value"] == "grace@example.com")
        .collect();
    assert_eq!(graces.len(), 1, "Grace was created {} times", graces.len());
    assert_eq!(graces[0]["id"].to_string(), delivered.external_id);
    assert_eq!(mesh.sandbox.candidates().await?.len(), SEEDED + 2);
    assert_eq!(mesh.sandbox.writes().await?, 3);
    Ok(())
}
