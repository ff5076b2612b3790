//! Writes against a partner stand-in on 127.0.0.1:0 that fails on cue and records every request:
//! which failures the runtime repeats a write after, and which it never does because the
//! partner may already have created the record; and that the idempotency key travels in the
//! header the manifest names.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use plugboard_connector_runtime::Error;
use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::connector::{Connector, SecretSource, WriteParams};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_proto::connector::v1::ConnectionRef;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the partner answers next (a status to fail with, or success), and what it was sent.
#[derive(Clone, Default)]
struct Partner {
    failures: Arc<Mutex<VecDeque<StatusCode>>>,
    /// Answer creates without the id.
    answer_without_id: Arc<Mutex<bool>>,
    /// The `Idempotency-Key` header of every write, `None` where there was none.
    keys: Arc<Mutex<Vec<Option<String>>>>,
}

impl Partner {
    fn fail_next(&self, statuses: &[StatusCode]) {
        self.failures.lock().unwrap().extend(statuses);
    }

    fn requests(&self) -> usize {
        self.keys.lock().unwrap().len()
    }

    fn answer(&self, headers: &HeaderMap, body: Value) -> Response {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.keys.lock().unwrap().push(key);
        match self.failures.lock().unwrap().pop_front() {
            Some(status) => (status, "failing on cue").into_response(),
            None => (StatusCode::CREATED, Json(body)).into_response(),
        }
    }
}

async fn create(
    State(partner): State<Partner>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut stored = body.clone();
    if !*partner.answer_without_id.lock().unwrap() {
        stored["id"] = json!(42);
    }
    partner.answer(&headers, stored)
}

async fn update(
    State(partner): State<Partner>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut stored = body;
    stored["id"] = json!(id);
    partner.answer(&headers, stored)
}

async fn start() -> (String, Partner) {
    let partner = Partner::default();
    let router = Router::new()
        .route("/people", post(create))
        .route("/people/{id}", patch(update))
        .with_state(partner.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, partner)
}

fn connector(idempotency_header: Option<&str>) -> Connector {
    let mut yaml = vec![
        "manifest_version: 1".to_owned(),
        "name: stand-in".to_owned(),
        "display_name: Stand-in".to_owned(),
        "category: ats".to_owned(),
        "version: '1'".to_owned(),
        "base_url: \"{{ settings.base_url }}\"".to_owned(),
        "settings: {base_url: {type: url}}".to_owned(),
        "auth: {type: bearer}".to_owned(),
        "streams: {people: {entity: candidate, path: /people}}".to_owned(),
        "writes:".to_owned(),
        "  candidate:".to_owned(),
        "    create: {method: POST, path: /people, body: {name: \"{{ record.first_name }}\"}}"
            .to_owned(),
        "    update: {method: PATCH, path: \"/people/{{ external_id }}\", \
         body: {name: \"{{ record.first_name }}\"}}"
            .to_owned(),
    ];
    if let Some(name) = idempotency_header {
        yaml.push(format!("    idempotency_header: {name}"));
    }
    let manifest = load_str("stand-in.yaml", &yaml.join("\n")).unwrap();
    Connector::new(manifest, SecretSource::Fixed(Secret::api_key("k")), true).unwrap()
}

fn params(url: &str, external_id: &str, record: Value) -> WriteParams {
    WriteParams {
        tenant: "t".into(),
        connection: ConnectionRef {
            connection_id: "c".into(),
            settings_json: json!({"base_url": url}).to_string(),
        },
        entity: "candidate".into(),
        external_id: external_id.into(),
        record_json: record.to_string(),
        idempotency_key: "push-1".into(),
        earlier_attempt_unconfirmed: false,
        mapped: None,
    }
}

#[tokio::test]
async fn a_create_without_a_key_is_never_sent_twice() {
    let (url, partner) = start().await;
    let connector = connector(None);
    let ada = params(&url, "", json!({"first_name": "Ada"}));

    // A 500 may come after the partner stored the record: not repeated.
    partner.fail_next(&[StatusCode::INTERNAL_SERVER_ERROR]);
    let error = connector.write(ada.clone()).await.unwrap_err();
    assert!(matches!(error, Error::WriteOutcomeUnknown(_)), "{error}");
    assert_eq!(partner.requests(), 1);

    // A 503 says nothing was done: repeated until it is.
    partner.fail_next(&[StatusCode::SERVICE_UNAVAILABLE]);
    let written = connector.write(ada.clone()).await.unwrap();
    assert_eq!(written.external_id, "42");
    assert_eq!(written.answer["name"], "Ada");
    assert_eq!(partner.requests(), 3);

    // An attempt that may have reached the partner is not followed by another.
    let unconfirmed = WriteParams {
        earlier_attempt_unconfirmed: true,
        ..ada.clone()
    };
    let error = connector.write(unconfirmed).await.unwrap_err();
    assert!(matches!(error, Error::WriteOutcomeUnknown(_)), "{error}");
    assert_eq!(partner.requests(), 3);

    // Created, but the answer does not say which record: unknown, not an error to retry.
    *partner.answer_without_id.lock().unwrap() = true;
    let error = connector.write(ada).await.unwrap_err();
    assert!(matches!(error, Error::WriteOutcomeUnknown(_)), "{error}");
    // No key header was named, so none was sent.
    assert!(partner.keys.lock().unwrap().iter().all(Option::is_none));
}

#[tokio::test]
async fn the_key_travels_in_the_named_header_and_makes_a_create_repeatable() {
    let (url, partner) = start().await;
    let connector = connector(Some("Idempotency-Key"));
    let ada = params(&url, "", json!({"first_name": "Ada"}));
    partner.fail_next(&[StatusCode::INTERNAL_SERVER_ERROR]);
    let written = connector.write(ada.clone()).await.unwrap();
    assert_eq!(written.external_id, "42");
    let again = WriteParams {
        earlier_attempt_unconfirmed: true,
        ..ada
    };
    connector.write(again).await.unwrap();
    let keys = partner.keys.lock().unwrap().clone();
    assert_eq!(keys, vec![Some("push-1".to_owned()); 3]);
}

#[tokio::test]
async fn updates_are_repeated_and_an_empty_one_is_refused() {
    let (url, partner) = start().await;
    let connector = connector(None);
    partner.fail_next(&[StatusCode::INTERNAL_SERVER_ERROR]);
    let update = WriteParams {
        earlier_attempt_unconfirmed: true,
        ..params(&url, "7", json!({"first_name": "Ada"}))
    };
    assert_eq!(connector.write(update).await.unwrap().external_id, "7");
    assert_eq!(partner.requests(), 2);

    // Nothing the update template writes: refused before any request.
    let nothing = params(&url, "7", json!({"email": "ada@example.com"}));
    let error = connector.write(nothing).await.unwrap_err();
    assert!(error.to_string().contains("nothing to write"), "{error}");
    assert_eq!(partner.requests(), 2);
}

/// A write whose body is the outbound mapping spec stops the connector at start when the spec
/// is missing, rather than failing every push later.
#[test]
fn a_mapped_write_without_its_outbound_spec_stops_the_connector_at_start() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-fieldglass");
    let loaded = plugboard_connector_runtime::manifest::load_for_serving(&dir).unwrap();
    let connector = |mappings: &[(String, String)]| {
        Connector::new(
            loaded.manifest.clone(),
            SecretSource::Fixed(Secret::api_key("k")),
            true,
        )
        .unwrap()
        .with_outbound_mappings(mappings)
    };
    assert!(connector(&loaded.mappings).is_ok());
    let inbound_only: Vec<(String, String)> = loaded
        .mappings
        .iter()
        .filter(|(name, _)| !name.ends_with(".outbound.yaml"))
        .cloned()
        .collect();
    match connector(&inbound_only) {
        Err(Error::Startup(message)) => {
            assert!(message.contains("no outbound spec"), "{message}")
        }
        Err(other) => panic!("not a startup error: {other}"),
        Ok(_) => panic!("a mapped write without its spec was accepted"),
    }
}
