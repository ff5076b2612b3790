//! Downloads: one stream's records sorted by id, `since` keeping those whose cursor field is at
//! or after it (the bound is inclusive), paged by offset and limit, written in the stream's
//! wire format. Sorting by id means a record that changes mid-read keeps its place, so plain
//! offsets over a fixed bound lose nothing.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::id_text;
use super::{Shared, StreamSpec, Wire, error};

/// `GET` of `stream`, with the partner's paging parameters.
pub fn list(
    vms: &Shared,
    stream: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let world = match vms.admit(headers) {
        Ok(world) => world,
        Err(response) => return *response,
    };
    let Some(spec) = vms.partner.stream(stream) else {
        return error(StatusCode::NOT_FOUND, "not_found", "unknown download");
    };
    let paging = &vms.partner.paging;
    let number = |name: &str, default: usize| match params.get(name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{name} must be a whole number"),
            ))
        }),
    };
    let (offset, limit) = match (
        number(paging.offset, paging.first_page.unwrap_or(0)),
        number(paging.limit, paging.default_limit),
    ) {
        (Ok(offset), Ok(limit)) if (1..=paging.max_limit).contains(&limit) => (offset, limit),
        (Err(response), _) | (_, Err(response)) => return *response,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{} must be 1 to {}", paging.limit, paging.max_limit),
            );
        }
    };
    let since = match params.get(paging.since).map(|text| millis(text)) {
        None => None,
        Some(Some(since)) => Some(since),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "{} must be an ISO 8601 timestamp with its offset",
                    paging.since
                ),
            );
        }
    };
    let mut matching: Vec<&Value> = world
        .records
        .get(stream)
        .into_iter()
        .flatten()
        .chain(world.malformed.get(stream).into_iter().flatten())
        .filter(|record| {
            since.is_none_or(|since| {
                record[spec.cursor_field]
                    .as_str()
                    .and_then(millis)
                    .is_none_or(|at| at >= since)
            })
        })
        .collect();
    // Records without an id (malformed ones) sort last, as the partner's export puts them.
    matching.sort_by_key(|record| {
        let id = id_text(&record[spec.id_field]);
        (id.is_empty(), id)
    });
    // A page number counts pages of `limit` from the first.
    let offset = match paging.first_page {
        Some(first) => offset.saturating_sub(first) * limit,
        None => offset,
    };
    let total = matching.len();
    let page: Vec<&Value> = matching.into_iter().skip(offset).take(limit).collect();
    render(spec, &page, total)
}

/// A page in the stream's wire format.
pub fn render(spec: &StreamSpec, page: &[&Value], total: usize) -> Response {
    match &spec.wire {
        Wire::Json { records: "" } => Json(json!(page)).into_response(),
        Wire::Json { records } => {
            let mut body = serde_json::Map::new();
            body.insert((*records).to_owned(), json!(page));
            body.insert("totalCount".to_owned(), json!(total));
            Json(Value::Object(body)).into_response()
        }
        Wire::Csv { columns } => match csv_text(columns, page) {
            Ok(text) => with_type(text, "text/csv; charset=utf-8"),
            Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &message),
        },
        Wire::Xml { root, item } => {
            let mut text =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><{root} total=\"{total}\">");
            for record in page {
                text.push_str(&xml_element(item, record));
            }
            text.push_str(&format!("</{root}>"));
            with_type(text, "application/xml")
        }
    }
}

fn with_type(text: String, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn csv_text(columns: &[&str], page: &[&Value]) -> Result<String, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(columns).map_err(|e| e.to_string())?;
    for record in page {
        let row: Vec<String> = columns
            .iter()
            .map(|column| id_text(&record[*column]))
            .collect();
        writer.write_record(&row).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// One record as an element: objects nest, arrays repeat the element, scalars are text.
pub fn xml_element(name: &str, value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let inner: String = fields
                .iter()
                .map(|(key, value)| xml_element(key, value))
                .collect();
            format!("<{name}>{inner}</{name}>")
        }
        Value::Array(items) => items.iter().map(|item| xml_element(name, item)).collect(),
        Value::Null => format!("<{name}/>"),
        scalar => format!(
            "<{name}>{}</{name}>",
            quick_xml::escape::escape(id_text(scalar).as_str())
        ),
    }
}

/// Epoch milliseconds of an RFC 3339 timestamp.
pub fn millis(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}
