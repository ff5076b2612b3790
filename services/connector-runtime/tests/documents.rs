//! `ParseDocument` over the connector contract: Affinda's manifest against the Affinda
//! sandbox on 127.0.0.1:0, through the gRPC adapter as sync or the gateway call it.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::connector::{Connector, SecretSource};
use plugboard_connector_runtime::grpc::GrpcConnectorAdapter;
use plugboard_connector_runtime::manifest;
use plugboard_proto::connector::v1::connector_service_server::ConnectorService;
use plugboard_proto::connector::v1::{ConnectionRef, ParseDocumentRequest};
use plugboard_proto::error::reason_of;
use plugboard_runtime::identity::Caller;
use plugboard_sandbox::affinda::{AffindaOptions, DEMO_API_KEY, DEMO_COLLECTION};
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn adapter() -> (GrpcConnectorAdapter, ConnectionRef) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options =
        AffindaOptions::new(&root.join("../../../shared/partners/affinda/openapi_v3_official.yml"));
    options.polls_until_ready = 1;
    let router = plugboard_sandbox::affinda::router(options).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let loaded = manifest::load(&root.join("../connector-affinda")).unwrap();
    let connector = Connector::new(
        loaded.manifest,
        SecretSource::Fixed(Secret::api_key(DEMO_API_KEY)),
        true,
    )
    .unwrap();
    let connection = ConnectionRef {
        connection_id: "affinda-1".to_owned(),
        settings_json: json!({"base_url": url, "collection": DEMO_COLLECTION}).to_string(),
    };
    (GrpcConnectorAdapter::new(Arc::new(connector)), connection)
}

fn request(
    connection: &ConnectionRef,
    document_type: &str,
    content: &[u8],
) -> tonic::Request<ParseDocumentRequest> {
    let mut request = tonic::Request::new(ParseDocumentRequest {
        connection: Some(connection.clone()),
        document_type: document_type.to_owned(),
        content: content.to_vec(),
        file_name: "grace.txt".to_owned(),
        content_type: "text/plain".to_owned(),
    });
    request.extensions_mut().insert(Caller {
        subject: "sync".to_owned(),
        tenant: Some("acme".to_owned()),
        connector: None,
    });
    request
}

#[tokio::test]
async fn a_resume_is_uploaded_polled_and_returned_with_its_entities() {
    let (adapter, connection) = adapter().await;
    let resume = b"Grace Hopper\ngrace@example.com\nSkills: COBOL, Compilers\n";
    let response = adapter
        .parse_document(request(&connection, "", resume))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.entities, ["parsed_resume", "candidate"]);
    assert!(response.polls >= 1, "{response:?}");
    let record = response.record.unwrap();
    assert_eq!(record.external_id, response.document_id);
    let parse: Value = serde_json::from_str(&record.payload_json).unwrap();
    assert_eq!(parse["data"]["name"]["last"], "Hopper");
    assert_eq!(parse["data"]["skills"][0]["name"], "COBOL");
    assert_eq!(parse["meta"]["fileName"], "grace.txt");
}

#[tokio::test]
async fn bad_documents_get_precise_statuses() {
    let (adapter, connection) = adapter().await;
    for (document_type, content, code, reason) in [
        (
            "",
            &b""[..],
            tonic::Code::InvalidArgument,
            "INVALID_DOCUMENT",
        ),
        (
            "invoice",
            &b"x"[..],
            tonic::Code::InvalidArgument,
            "INVALID_DOCUMENT",
        ),
        (
            "resume",
            &[0xff, 0xfe][..],
            tonic::Code::InvalidArgument,
            "DOCUMENT_NOT_PARSED",
        ),
    ] {
        let status = adapter
            .parse_document(request(&connection, document_type, content))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(reason_of(&status).as_deref(), Some(reason), "{status:?}");
    }
    let mut anonymous = request(&connection, "", b"Grace Hopper");
    anonymous.extensions_mut().clear();
    let status = adapter.parse_document(anonymous).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
}
