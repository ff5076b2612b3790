//! Sync definitions and the calls that name one: a create sent again changes nothing, a
//! redefinition keeps the pause, a connection never changes connector, and ids, entities and
//! connections that cannot exist are refused at once (WatchChanges included: it would
//! otherwise wait for ever on a filter nothing matches).
#![allow(clippy::unwrap_used)]

use plugboard_sync::Error;
use plugboard_sync::changes::WatchFilter;
use plugboard_sync::runner::ReadMode;
use plugboard_sync::service::NewSync;

mod support;
use support::{SETTINGS, service};

const TENANT: &str = "definitions-tenant";

fn bullhorn(connection_id: &str, settings_json: &str) -> NewSync {
    NewSync {
        connection_id: connection_id.into(),
        connector: "bullhorn".into(),
        settings_json: settings_json.into(),
        streams: Vec::new(),
        interval_seconds: 300,
    }
}

#[tokio::test]
async fn a_create_sent_again_changes_nothing_and_a_redefinition_keeps_the_pause() {
    let (service, store, _) = service().await;
    service
        .create_sync(TENANT, bullhorn("c-1", SETTINGS))
        .await
        .unwrap();
    let first = store.get_sync(TENANT, "c-1").await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    service
        .create_sync(TENANT, bullhorn("c-1", SETTINGS))
        .await
        .unwrap();
    let again = store.get_sync(TENANT, "c-1").await.unwrap().unwrap();
    assert_eq!(
        again.next_run_at, first.next_run_at,
        "a retry moved the schedule"
    );

    service.set_paused(TENANT, "c-1", true).await.unwrap();
    let other_settings =
        r#"{"auth_url":"https://auth-west.example","login_url":"https://rest.example"}"#;
    let redefined = service
        .create_sync(TENANT, bullhorn("c-1", other_settings))
        .await
        .unwrap();
    assert_eq!(redefined.sync.settings_json, other_settings);
    assert!(redefined.sync.paused, "redefining resumed a paused sync");
}

#[tokio::test]
async fn a_connection_keeps_its_connector() {
    let (service, store, _) = service().await;
    service
        .create_sync(TENANT, bullhorn("c-2", SETTINGS))
        .await
        .unwrap();
    let other = NewSync {
        connector: "greenhouse".into(),
        ..bullhorn("c-2", SETTINGS)
    };
    let error = service.create_sync(TENANT, other).await.unwrap_err();
    assert!(
        matches!(&error, Error::ConnectionOfAnotherConnector { connector, .. } if connector == "bullhorn"),
        "{error}"
    );
    let kept = store.get_sync(TENANT, "c-2").await.unwrap().unwrap();
    assert_eq!(kept.connector, "bullhorn");
}

#[tokio::test]
async fn missing_ids_unknown_connections_and_entities_are_refused_at_once() {
    let (service, _, _) = service().await;
    service
        .create_sync(TENANT, bullhorn("c-3", SETTINGS))
        .await
        .unwrap();
    let error = service
        .trigger_run(TENANT, "", ReadMode::Incremental)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidArgument {
                field: "connection_id",
                ..
            }
        ),
        "{error}"
    );
    let error = service.list_runs(TENANT, "", 10).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");

    let watch = |connection_id: &str, entity: &str| WatchFilter {
        after_position: 0,
        connection_id: connection_id.into(),
        entity: entity.into(),
    };
    let error = service
        .watch_changes(TENANT, watch("nope", ""))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SyncNotFound { .. }), "{error}");
    let error = service
        .watch_changes(TENANT, watch("", "bogus"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidArgument {
                field: "entity",
                ..
            }
        ),
        "{error}"
    );
    // Another tenant's connection is as unknown as a missing one.
    let error = service
        .watch_changes("another-tenant", watch("c-3", ""))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SyncNotFound { .. }), "{error}");
    assert!(
        service
            .watch_changes(TENANT, watch("c-3", "candidate"))
            .await
            .is_ok()
    );
}
