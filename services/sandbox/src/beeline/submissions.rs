//! Beeline candidate submissions: `POST requisitions/{id}/candidates` submits a supplier's
//! candidate to an open requisition (answering 201 with the candidate, `SUBMITTED`), `PATCH
//! candidates/{id}` changes the supplier's fields or withdraws it (`WITHDRAWN`); the client
//! moves it through every other status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::vms::state::id_text;
use crate::vms::{Shared, error, now_rfc3339};

const STREAM: &str = "candidates";

/// Fields a supplier sets.
const SUPPLIER_FIELDS: [&str; 9] = [
    "firstName",
    "lastName",
    "email",
    "phone",
    "supplierCandidateId",
    "billRate",
    "rateType",
    "availableStartDate",
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
    if let Some(rate) = fields.get("billRate") {
        let amount = rate["amount"].as_str().unwrap_or_default();
        if amount.parse::<f64>().is_err() || rate["currency"].as_str().unwrap_or("").len() != 3 {
            return Err(Box::new(invalid(
                "billRate needs a decimal amount and a currency",
            )));
        }
    }
    Ok(())
}

pub async fn create(
    State(vms): State<Shared>,
    Path(requisition): Path<String>,
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
    for required in ["firstName", "lastName", "email"] {
        if fields
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return invalid(&format!("{required} is required"));
        }
    }
    let open = world.records.get("requisitions").is_some_and(|all| {
        all.iter()
            .any(|r| id_text(&r["id"]) == requisition && r["status"] == "OPEN")
    });
    if !open {
        return error(
            StatusCode::CONFLICT,
            "requisition_not_open",
            &format!("requisition {requisition} does not take submissions"),
        );
    }
    world.stats.writes += 1;
    world.next_id += 1;
    let id = 500_000 + world.next_id;
    let now = now_rfc3339();
    let mut record = Map::new();
    record.insert("id".to_owned(), json!(id));
    record.insert(
        "requisitionId".to_owned(),
        requisition
            .parse::<u64>()
            .map_or(json!(requisition), |n| json!(n)),
    );
    record.extend(fields.clone());
    record.insert("status".to_owned(), json!("SUBMITTED"));
    for field in ["submittedAt", "lastModified"] {
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
        .is_some_and(|status| status != "WITHDRAWN")
    {
        return invalid("a supplier can only set status to WITHDRAWN");
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
    existing.insert("lastModified".to_owned(), json!(now_rfc3339()));
    Json(Value::Object(existing.clone())).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}
