//! XML and CSV partners through the runtime, against a small partner stand-in on 127.0.0.1:0
//! shaped like the VMS feeds of issue #8: work orders as namespaced XML paged by offset and
//! read incrementally, a submission written as an XML body, timesheets as a CSV flat file.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use plugboard_connector_runtime::access::Secret;
use plugboard_connector_runtime::connector::{Connector, ReadParams, SecretSource, WriteParams};
use plugboard_connector_runtime::manifest::load_str;
use plugboard_proto::connector::v1::ConnectionRef;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const KEY: &str = "vms-key";

/// What the stand-in received as submissions.
type Received = Arc<Mutex<Vec<(String, String)>>>;

fn work_orders() -> Vec<(u32, &'static str, u64)> {
    (1..=5)
        .map(|id| {
            (
                id,
                ["Nurse & carer", "Welder", "Driver", "Cook", "Clerk"][id as usize - 1],
                1_000 + u64::from(id),
            )
        })
        .collect()
}

async fn list(headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let since: u64 = query
        .get("changed_since")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let offset: usize = query
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(2);
    let orders: Vec<String> = work_orders()
        .into_iter()
        .filter(|(_, _, changed)| *changed >= since)
        .skip(offset)
        .take(limit)
        .map(|(id, title, changed)| {
            let title = title.replace('&', "&amp;");
            format!(
                "<vms:WorkOrder id=\"{id}\"><vms:Title>{title}</vms:Title><vms:Changed>{changed}</vms:Changed></vms:WorkOrder>"
            )
        })
        .collect();
    let body = format!(
        "<?xml version=\"1.0\"?><vms:Response xmlns:vms=\"urn:example:vms\"><vms:WorkOrders>{}</vms:WorkOrders></vms:Response>",
        orders.join("")
    );
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn submit(State(received): State<Received>, headers: HeaderMap, body: String) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push((content_type, body));
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/xml")],
        "<Submission><Id>S-42</Id><Status>received</Status></Submission>",
    )
        .into_response()
}

async fn timesheets() -> Response {
    let csv = "timesheet_id,worker_id,week_ending,hours\nT1,W7,2026-11-27,40\nT2,W8,2026-11-27,\"37,5\"\n,W9,2026-11-27,12\n";
    ([(header::CONTENT_TYPE, "text/csv")], csv).into_response()
}

async fn start() -> (String, Received) {
    let received = Received::default();
    let router = Router::new()
        .route("/work-orders", get(list))
        .route("/submissions", axum::routing::post(submit))
        .route("/timesheets.csv", get(timesheets))
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, received)
}

const MANIFEST: &str = r#"
manifest_version: 1
name: flat-vms
display_name: Flat VMS
category: vms
version: "1"
format: xml
base_url: "{{ settings.base_url }}"
settings:
  base_url: {type: url}
auth: {type: api_key, name: X-Api-Key}
streams:
  work_orders:
    entity: job_posting
    path: /work-orders
    records: /Response/WorkOrders/WorkOrder
    primary_key: "@id"
    pagination: {type: offset, page_size: {param: limit, value: 2}}
    incremental: {param: changed_since, field: Changed, format: epoch_millis}
  timesheets:
    entity: timesheet
    format: csv
    path: /timesheets.csv
    primary_key: timesheet_id
writes:
  application:
    create:
      method: POST
      path: /submissions
      headers: {Content-Type: text/xml; charset=utf-8}
      body:
        Submission:
          "@job": "{{ record.job_external_id }}"
          Candidate: "{{ record.candidate_external_id }}"
      id: /Submission/Id
"#;

fn connector(url: &str) -> (Connector, ConnectionRef) {
    let manifest = load_str("flat-vms.yaml", MANIFEST).unwrap();
    let connector =
        Connector::new(manifest, SecretSource::Fixed(Secret::api_key(KEY)), true).unwrap();
    let connection = ConnectionRef {
        connection_id: "vms-1".to_owned(),
        settings_json: json!({"base_url": url}).to_string(),
    };
    (connector, connection)
}

fn read(connection: &ConnectionRef, stream: &str, checkpoint: &str) -> ReadParams {
    ReadParams {
        tenant: "t".to_owned(),
        connection: connection.clone(),
        stream: stream.to_owned(),
        checkpoint: checkpoint.to_owned(),
        page_size: 0,
        run_id: String::new(),
    }
}

#[tokio::test]
async fn xml_records_page_and_resume_by_their_cursor() {
    let (url, _) = start().await;
    let (connector, connection) = connector(&url);
    let pages = connector
        .read_all(read(&connection, "work_orders", ""))
        .await
        .unwrap();
    // Five orders in pages of two; the last page has one, a list of one element.
    assert_eq!(pages.len(), 3);
    let records: Vec<Value> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| serde_json::from_str(&record.payload_json).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    assert_eq!(
        records[0],
        json!({"@id": "1", "Title": "Nurse & carer", "Changed": "1001"})
    );
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.external_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    let last: Value = serde_json::from_str(&pages[2].checkpoint).unwrap();
    assert_eq!(last["since"], 1005);
    // Resuming from it reads the newest record again (inclusive bound) and nothing older.
    let again = connector
        .read_all(read(&connection, "work_orders", &pages[2].checkpoint))
        .await
        .unwrap();
    let ids: Vec<&str> = again
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.external_id.as_str())
        .collect();
    assert_eq!(ids, ["5"]);
}

#[tokio::test]
async fn csv_rows_are_records_and_a_row_without_its_key_is_quarantined() {
    let (url, _) = start().await;
    let (connector, connection) = connector(&url);
    let pages = connector
        .read_all(read(&connection, "timesheets", ""))
        .await
        .unwrap();
    let page = &pages[0];
    let ids: Vec<&str> = page
        .records
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(ids, ["T1", "T2"]);
    let second: Value = serde_json::from_str(&page.records[1].payload_json).unwrap();
    assert_eq!(second["hours"], "37,5");
    assert_eq!(page.rejected.len(), 1);
    assert_eq!(
        page.rejected[0].reason,
        "record timesheet_id is not an integer or a non-empty string"
    );
}

#[tokio::test]
async fn an_xml_write_sends_an_xml_body_and_reads_the_id_from_xml() {
    let (url, received) = start().await;
    let (connector, connection) = connector(&url);
    let outcome = connector
        .write(WriteParams {
            tenant: "t".to_owned(),
            connection,
            entity: "application".to_owned(),
            external_id: String::new(),
            record_json: json!({"job_external_id": "7", "candidate_external_id": "C-1"})
                .to_string(),
            idempotency_key: String::new(),
            earlier_attempt_unconfirmed: false,
            mapped: None,
        })
        .await
        .unwrap();
    assert_eq!(outcome.external_id, "S-42");
    let received = received.lock().unwrap().clone();
    let (content_type, body) = &received[0];
    assert_eq!(content_type, "text/xml; charset=utf-8");
    assert!(
        body.ends_with("<Submission job=\"7\"><Candidate>C-1</Candidate></Submission>"),
        "{body}"
    );
}
