//! Rust hooks through the real read path: HMACBoard's `sign_request` hook against its sandbox
//! (which refuses the same manifest without it), and a `map_record` hook reshaping nested
//! records from a partner stand-in on 127.0.0.1:0, its refusals quarantined.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use axum::Json;
use axum::extract::Query;
use axum::routing::get;
use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::checkpoint::PagePosition;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource};
use plugboard_connector_runtime::hooks::{MapRecord, NextPage, PageRead};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_connector_runtime::{Error, Hooks, manifest};
use plugboard_proto::connector::v1::ConnectionRef;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::net::TcpListener;

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn read(url: &str, stream: &str) -> ReadParams {
    ReadParams {
        tenant: "t".to_owned(),
        connection: connection(url),
        stream: stream.to_owned(),
        checkpoint: String::new(),
        page_size: 0,
        run_id: String::new(),
    }
}

fn connection(url: &str) -> ConnectionRef {
    ConnectionRef {
        connection_id: "c-1".to_owned(),
        settings_json: json!({"base_url": url}).to_string(),
    }
}

fn hmacboard() -> manifest::Manifest {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-hmacboard");
    manifest::load(&dir).unwrap().manifest
}

fn demo_secret() -> SecretSource {
    SecretSource::Fixed(Secret::basic(
        plugboard_sandbox::hmacboard::DEMO_KEY_ID,
        plugboard_sandbox::hmacboard::DEMO_SIGNING_SECRET,
    ))
}

#[tokio::test]
async fn hmacboard_reads_with_its_hook_and_is_refused_without_it() {
    let url = serve(plugboard_sandbox::hmacboard::router(Default::default())).await;
    let signed = Connector::new(hmacboard(), demo_secret(), true).unwrap();
    let pages = signed.read_all(read(&url, "candidates")).await.unwrap();
    let records: usize = pages.iter().map(|page| page.records.len()).sum();
    assert_eq!(records, 40);

    // The same manifest without its hook: the sandbox refuses every request.
    let mut unsigned = hmacboard();
    unsigned.hooks.sign_request = None;
    let unsigned = Connector::new(unsigned, demo_secret(), true).unwrap();
    let refused = unsigned.check("t", &connection(&url)).await.unwrap();
    assert!(!refused.ok, "unsigned requests were accepted");
    assert!(
        refused
            .reason
            .contains("rejected the connection's credentials"),
        "{refused:?}"
    );
    let error = unsigned
        .read_all(read(&url, "candidates"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CredentialsRejected(_)), "{error}");

    // A wrong signing secret signs, but not as the partner expects.
    let wrong = SecretSource::Fixed(Secret::basic(
        plugboard_sandbox::hmacboard::DEMO_KEY_ID,
        "another-secret",
    ));
    let wrong = Connector::new(hmacboard(), wrong, true).unwrap();
    let error = wrong.read_all(read(&url, "candidates")).await.unwrap_err();
    assert!(matches!(error, Error::CredentialsRejected(_)), "{error}");
}

/// Unpacks `{"node": {...}}` and computes `total` from `hours` times `rate`, in cents.
struct Unpack;

impl MapRecord for Unpack {
    fn map_record(&self, record: Value) -> Result<Value, String> {
        let mut node = record.get("node").cloned().ok_or("no node")?;
        let hours = node["hours"]
            .as_u64()
            .ok_or("hours is not a whole number")?;
        let rate = node["rate_cents"].as_u64().ok_or("no rate_cents")?;
        node["total_cents"] = json!(hours * rate);
        Ok(node)
    }
}

const TIMESHEETS: &str = r#"manifest_version: 1
name: nested
display_name: Nested
category: vms
version: 0.1.0
base_url: "{{ settings.base_url }}"
settings:
  base_url: {type: url}
auth:
  type: bearer
  token: "{{ secret.key }}"
streams:
  timesheets:
    entity: timesheet
    path: /timesheets
    records: /edges
    hooks:
      map_record: nested.unpack
"#;

#[tokio::test]
async fn map_record_reshapes_records_and_quarantines_its_refusals() {
    let router = axum::Router::new().route(
        "/timesheets",
        get(|| async {
            Json(json!({"edges": [
                {"node": {"id": 1, "hours": 8, "rate_cents": 4_500}},
                {"node": {"id": 2, "hours": "eight", "rate_cents": 4_500}},
                {"node": {"id": 3, "hours": 2, "rate_cents": 1_000}},
            ]}))
        }),
    );
    let url = serve(router).await;
    let manifest = load_str("nested.yaml", TIMESHEETS).unwrap();
    let secret = SecretSource::Fixed(Secret::api_key("k"));
    assert!(Connector::new(manifest.clone(), secret.clone(), true).is_err());
    let hooks = Hooks::default().with_map_record("nested.unpack", Unpack);
    let connector = Connector::with_hooks(manifest, secret, true, hooks).unwrap();
    let pages = connector.read_all(read(&url, "timesheets")).await.unwrap();
    let page = &pages[0];
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|record| serde_json::from_str(&record.payload_json).unwrap())
        .collect();
    assert_eq!(
        records,
        [
            json!({"id": 1, "hours": 8, "rate_cents": 4_500, "total_cents": 36_000}),
            json!({"id": 3, "hours": 2, "rate_cents": 1_000, "total_cents": 2_000}),
        ]
    );
    let ids: Vec<&str> = page
        .records
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "3"]);
    assert_eq!(page.rejected.len(), 1);
    assert_eq!(
        page.rejected[0].reason,
        "map_record hook nested.unpack: hours is not a whole number"
    );
    let raw: Value = serde_json::from_str(&page.rejected[0].payload_json).unwrap();
    assert_eq!(raw["node"]["id"], 2);
}

/// The partner caps pages at 3 whatever is asked and says where it is: `{start, count, total}`.
struct ByTotal;

impl NextPage for ByTotal {
    fn next_page(&self, page: &PageRead<'_>) -> Result<Option<PagePosition>, String> {
        let number = |name: &str| {
            page.body["paging"][name]
                .as_u64()
                .ok_or(format!("no paging.{name}"))
        };
        let next = number("start")? + number("count")?;
        Ok((next < number("total")?).then_some(PagePosition::Offset(next)))
    }
}

const CAPPED: &str = r#"manifest_version: 1
name: capped
display_name: Capped
category: ats
version: 0.1.0
base_url: "{{ settings.base_url }}"
settings:
  base_url: {type: url}
auth:
  type: bearer
  token: "{{ secret.key }}"
streams:
  jobs:
    entity: job
    path: /jobs
    records: /items
    pagination: {type: offset, param: start, page_size: {param: count, value: 5}}
    hooks:
      next_page: capped.by_total
"#;

#[tokio::test]
async fn next_page_computes_paging_a_short_page_would_end_too_early() {
    let router = axum::Router::new().route(
        "/jobs",
        get(|Query(query): Query<HashMap<String, String>>| async move {
            let start: u64 = query.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
            let items: Vec<Value> = (start..7).take(3).map(|id| json!({"id": id + 1})).collect();
            let count = items.len();
            Json(json!({"items": items, "paging": {"start": start, "count": count, "total": 7}}))
        }),
    );
    let url = serve(router).await;
    let secret = SecretSource::Fixed(Secret::api_key("k"));
    let ids = |pages: &[plugboard_proto::connector::v1::ReadResponse]| -> Vec<String> {
        pages
            .iter()
            .flat_map(|page| &page.records)
            .map(|record| record.external_id.clone())
            .collect()
    };
    let manifest = load_str("capped.yaml", CAPPED).unwrap();
    let hooks = Hooks::default().with_next_page("capped.by_total", ByTotal);
    let connector = Connector::with_hooks(manifest.clone(), secret.clone(), true, hooks).unwrap();
    let pages = connector.read_all(read(&url, "jobs")).await.unwrap();
    assert_eq!(ids(&pages), ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(pages.len(), 3);

    // Without the hook the capped first page looks short and ends the read.
    let mut plain = manifest;
    plain.streams[0].hooks.next_page = None;
    let plain = Connector::new(plain, secret, true).unwrap();
    let pages = plain.read_all(read(&url, "jobs")).await.unwrap();
    assert_eq!(ids(&pages), ["1", "2", "3"]);
}
