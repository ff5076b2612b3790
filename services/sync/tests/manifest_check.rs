//! CreateSync checks the definition against the connector's manifest in a real registry,
//! through the real gRPC path (a sync server on a loopback port, mesh-signed calls): an
//! unregistered connector, a stream it does not offer and settings its schema refuses are
//! refused with their own code and reason, naming what is wrong; a registry that cannot be
//! asked is UNAVAILABLE and nothing is stored; a fitting definition is stored.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plugboard_proto::error::reason_of;
use plugboard_proto::sync::v1::sync_service_client::SyncServiceClient;
use plugboard_proto::sync::v1::{CreateSyncRequest, ListSyncsRequest};
use plugboard_runtime::identity::MeshCredentials;
use plugboard_sync::config::PushOptions;
use secrecy::SecretString;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

mod support;
use support::{MESH_KEY, NOWHERE, SETTINGS, mesh_key, registry, temp_dir};

const TENANT: &str = "manifest-check-tenant";

type Client = SyncServiceClient<InterceptedService<Channel, MeshCredentials>>;

/// Serves a sync service whose registry is at `registry_addr` for the rest of the test, and
/// answers a client acting for [`TENANT`].
async fn sync_server(registry_addr: &str) -> Client {
    let config = plugboard_sync::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: plugboard_runtime::storage::sqlite_url(&temp_dir("grpc"), "sync"),
        mesh_key: SecretString::from(MESH_KEY.to_owned()),
        redis_url: None,
        registry_addr: registry_addr.to_owned(),
        mapping_addr: NOWHERE.to_owned(),
        health_addr: NOWHERE.to_owned(),
        scheduler_tick: Duration::from_secs(3600),
        page_size: 10,
        lease_ttl: Duration::from_secs(30),
        push: PushOptions::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(plugboard_sync::run(
        config,
        listener,
        std::future::pending(),
    ));
    let channel = plugboard_runtime::channel::lazy_channel(&addr).unwrap();
    let identity = MeshCredentials::service(mesh_key(), "sync-tests").for_tenant(TENANT);
    SyncServiceClient::with_interceptor(channel, identity)
}

fn bullhorn(connection_id: &str, settings_json: &str, streams: &[&str]) -> CreateSyncRequest {
    CreateSyncRequest {
        connection_id: connection_id.into(),
        connector: "bullhorn".into(),
        settings_json: settings_json.into(),
        streams: streams.iter().map(|stream| (*stream).to_owned()).collect(),
        interval_seconds: 0,
    }
}

async fn refused(client: &mut Client, request: CreateSyncRequest) -> tonic::Status {
    client.create_sync(request).await.unwrap_err()
}

/// (connection id, streams) of each defined sync.
async fn defined(client: &mut Client) -> Vec<(String, Vec<String>)> {
    client
        .list_syncs(ListSyncsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .syncs
        .into_iter()
        .map(|sync| (sync.connection_id, sync.streams))
        .collect()
}

#[tokio::test]
async fn each_refusal_has_its_code_and_names_what_is_wrong() {
    let mut client = sync_server(&registry().await).await;

    let status = refused(
        &mut client,
        CreateSyncRequest {
            connector: "nosuchboard".into(),
            ..bullhorn("c-unknown", "{}", &[])
        },
    )
    .await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        reason_of(&status).as_deref(),
        Some("CONNECTOR_NOT_REGISTERED")
    );
    assert!(status.message().contains("nosuchboard"), "{status:?}");

    let status = refused(
        &mut client,
        bullhorn(
            "c-streams",
            SETTINGS,
            &["Candidate", "Invoice", "Timesheet"],
        ),
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason_of(&status).as_deref(), Some("STREAM_NOT_OFFERED"));
    let message = status.message();
    assert!(
        message.starts_with("streams: Invoice, Timesheet not offered"),
        "{message}"
    );
    assert!(message.contains("JobOrder, Candidate"), "{message}");

    // Each violation is named: a missing setting, a wrong one, one the connector has not.
    let settings = r#"{"auth_url":"ftp://auth.example","region":"eu"}"#;
    let status = refused(&mut client, bullhorn("c-settings", settings, &[])).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason_of(&status).as_deref(), Some("SETTINGS_REFUSED"));
    let message = status.message();
    for named in [
        "login_url: is required",
        "auth_url: ",
        "region: is not a setting",
    ] {
        assert!(message.contains(named), "{named:?} in {message}");
    }

    // A stream named twice is refused before the registry is asked.
    let status = refused(
        &mut client,
        bullhorn("c-twice", SETTINGS, &["Candidate", "JobOrder", "Candidate"]),
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("Candidate is named twice"),
        "{status:?}"
    );

    assert!(
        defined(&mut client).await.is_empty(),
        "a refusal stored a sync"
    );
}

#[tokio::test]
async fn a_fitting_definition_is_stored_and_a_refused_redefinition_keeps_it() {
    let mut client = sync_server(&registry().await).await;
    let created = client
        .create_sync(bullhorn("c-ok", SETTINGS, &["Candidate"]))
        .await
        .unwrap()
        .into_inner()
        .sync
        .unwrap();
    assert_eq!(created.streams, ["Candidate"]);

    let status = refused(&mut client, bullhorn("c-ok", r#"{"auth_url":1}"#, &[])).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        defined(&mut client).await,
        [("c-ok".to_owned(), vec!["Candidate".to_owned()])],
        "the refused redefinition replaced the sync"
    );
}

#[tokio::test]
async fn a_registry_that_cannot_be_asked_is_unavailable_and_nothing_is_stored() {
    let mut client = sync_server(NOWHERE).await;
    let status = refused(&mut client, bullhorn("c-down", SETTINGS, &[])).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("registry"), "{status:?}");
    assert!(defined(&mut client).await.is_empty());
}
