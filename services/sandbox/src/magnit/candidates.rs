//! Coupa CCW candidate submissions: `POST job_requests/{id}/candidates` submits a supplier's
//! candidate to an open job request (answering 201 with the candidate, `new`), `PUT
//! candidates/{id}` changes the supplier's fields or withdraws it (`withdrawn`); the buyer
//! moves it through every other status. Bodies and answers are JSON with hyphenated keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::vms::state::id_text;
use crate::vms::{Shared, error, now_rfc3339};

const STREAM: &str = "candidates";

/// Fields a supplier sets.
const SUPPLIER_FIELDS: [&str; 8] = [
    "first-name",
    "last-name",
    "email",
    "phone",
    "supplier-reference",
    "bill-rate",
    "available-date",
    "status",
];

fn check(fields: &Map<String, Value>) -> Result<(), Box<Response>> {
    if let Some(unknown) = fields
        .keys()
        .find(|key| !SUPPLIER_FIELDS.contains(&key.as_str()))
    {
        return Err(Box::new(invalid(&format!(
            "{unknown} is not a candidate field a supplier sets"
        ))));
    }
    if let Some(rate) = fields.get("bill-rate") {
        let amount = rate["amount"].as_str().unwrap_or_default();
        if amount.parse::<f64>().is_err() || rate["currency"].as_str().unwrap_or("").len() != 3 {
            return Err(Box::new(invalid(
                "bill-rate needs a decimal amount and a currency",
            )));
        }
    }
    Ok(())
}

pub async fn create(
    State(vms): State<Shared>,
    Path(job_request): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut world = match vms.admit(&headers) {
        Ok(world) => world,
        Err(response) => return *response,
    };
    let Some(fields) = body.as_object() else {
        return invalid("the body must be a JSON object");
    };
    if let Err(response) = check(fields) {
        return *response;
    }
    for required in ["first-name", "last-name", "email"] {
        if fields
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return invalid(&format!("{required} is required"));
        }
    }
    let open = world.records.get("job_requests").is_some_and(|all| {
        all.iter()
            .any(|r| id_text(&r["id"]) == job_request && r["status"] == "open")
    });
    if !open {
        return error(
            StatusCode::CONFLICT,
            "job_request_not_open",
            &format!("job request {job_request} does not take submissions"),
        );
    }
    world.stats.writes += 1;
    world.next_id += 1;
    let id = 50_000 + world.next_id;
    let now = now_rfc3339();
    let mut record = Map::new();
    record.insert("id".to_owned(), json!(id));
    record.insert(
        "job-request-id".to_owned(),
        job_request
            .parse::<u64>()
            .map_or(json!(job_request), |n| json!(n)),
    );
    record.extend(fields.clone());
    record.insert("status".to_owned(), json!("new"));
    for field in ["created-at", "updated-at"] {
        record.insert(field.to_owned(), json!(now));
    }
    let record = Value::Object(record);
    world.upsert(STREAM, "id", record.clone());
    (StatusCode::CREATED, Json(record)).into_response()
}

pub async fn update(
    State(vms): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut world = match vms.admit(&headers) {
        Ok(world) => world,
        Err(response) => return *response,
    };
    let Some(fields) = body.as_object() else {
        return invalid("the body must be a JSON object");
    };
    if let Err(response) = check(fields) {
        return *response;
    }
    if fields
        .get("status")
        .is_some_and(|status| status != "withdrawn")
    {
        return invalid("a supplier can only set status to withdrawn");
    }
    world.stats.writes += 1;
    let Some(Value::Object(existing)) = world
        .records
        .get_mut(STREAM)
        .and_then(|all| all.iter_mut().find(|r| id_text(&r["id"]) == id))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no candidate {id}"),
        );
    };
    existing.extend(fields.clone());
    existing.insert("updated-at".to_owned(), json!(now_rfc3339()));
    Json(Value::Object(existing.clone())).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}
