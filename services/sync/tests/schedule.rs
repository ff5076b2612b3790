//! Cron schedules beside intervals: SetSchedule checks the expression (INVALID_ARGUMENT naming
//! `cron`), and the scheduler starts a cron sync when it is due and leaves one that is not.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_sync::Error;
use plugboard_sync::service::{NewSync, SyncService};

mod support;
use support::{SETTINGS, service};

const TENANT: &str = "schedule-tenant";

async fn define(service: &SyncService, connection_id: &str) {
    service
        .create_sync(
            TENANT,
            NewSync {
                connection_id: connection_id.into(),
                connector: "bullhorn".into(),
                settings_json: SETTINGS.into(),
                streams: Vec::new(),
                interval_seconds: 0,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bad_cron_expression_is_refused_naming_the_field() {
    let (service, _, _) = service().await;
    define(&service, "c-bad").await;
    for (interval, cron) in [(0, "every minute"), (0, "60 * * * *"), (300, "*/5 * * * *")] {
        let error = service
            .set_schedule(TENANT, "c-bad", interval, cron)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidArgument { field: "cron", .. }),
            "{cron:?}: {error}"
        );
    }
    let missing = service
        .set_schedule(TENANT, "c-none", 0, "* * * * *")
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::SyncNotFound { .. }), "{missing}");
}

#[tokio::test]
async fn the_scheduler_starts_a_cron_sync_when_it_is_due() {
    let (service, store, runner) = service().await;
    define(&service, "c-every-second").await;
    define(&service, "c-new-year").await;
    let every_second = service
        .set_schedule(TENANT, "c-every-second", 0, "* * * * * *")
        .await
        .unwrap();
    assert_eq!(every_second.sync.cron, "* * * * * *");
    let next = every_second.sync.next_run_at.clone().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(&next).unwrap();
    assert!(next.signed_duration_since(chrono::Utc::now()) <= chrono::Duration::seconds(1));
    // 00:00 UTC on the first of January: not due during this test.
    service
        .set_schedule(TENANT, "c-new-year", 0, "0 0 1 1 *")
        .await
        .unwrap();
    assert!(
        store
            .list_runs(TENANT, "c-every-second", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        plugboard_sync::scheduler::start_due(&store, &runner)
            .await
            .unwrap();
        if !store
            .list_runs(TENANT, "c-every-second", 10)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cron sync never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        store
            .list_runs(TENANT, "c-new-year", 10)
            .await
            .unwrap()
            .is_empty(),
        "a cron sync that is not due does not run"
    );
    let stored = store.get_sync(TENANT, "c-new-year").await.unwrap().unwrap();
    assert!(
        stored
            .next_run_at
            .unwrap()
            .ends_with("-01-01T00:00:00.000Z"),
        "due at midnight UTC on the first of January"
    );
}
