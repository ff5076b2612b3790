//! `POST /api/vc/connector/Job_Seeker_Upload`: a supplier submits a candidate to a job
//! posting (JSON), or, naming the `jobSeekerId`, changes its own submission. A new one starts
//! `Submitted`; a supplier may withdraw its submission but only the buyer moves it otherwise.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::vms::state::id_text;
use crate::vms::{Shared, error, now_rfc3339};

const STREAM: &str = "job_seekers";
const ID: &str = "jobSeekerId";

/// Fields a supplier's upload may set.
const SUPPLIER_FIELDS: [&str; 9] = [
    "jobPostingId",
    "firstName",
    "lastName",
    "email",
    "phone",
    "billRate",
    "availableDate",
    "supplierReference",
    "status",
];

pub async fn job_seeker(
    State(vms): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut world = match vms.admit(&headers) {
        Ok(world) => world,
        Err(response) => return *response,
    };
    let Some(fields) = body.as_object() else {
        return invalid("the upload must be a JSON object");
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| *key != ID && !SUPPLIER_FIELDS.contains(&key.as_str()))
    {
        return invalid(&format!("{unknown} is not a job seeker upload field"));
    }
    if let Some(rate) = fields.get("billRate") {
        let amount = rate["amount"].as_str().unwrap_or_default();
        if amount.parse::<f64>().is_err() || rate["currency"].as_str().unwrap_or("").len() != 3 {
            return invalid("billRate needs a decimal amount and its ISO 4217 currency");
        }
    }
    let now = now_rfc3339();
    world.stats.writes += 1;
    if let Some(id) = fields.get(ID) {
        if fields
            .get("status")
            .is_some_and(|status| status != "Withdrawn")
        {
            return invalid("a supplier can only set status to Withdrawn");
        }
        let wanted = id_text(id);
        let Some(Value::Object(existing)) = world
            .records
            .get_mut(STREAM)
            .and_then(|all| all.iter_mut().find(|r| id_text(&r[ID]) == wanted))
        else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no job seeker {wanted}"),
            );
        };
        existing.extend(fields.clone());
        existing.insert("modifiedDate".to_owned(), json!(now));
        return Json(Value::Object(existing.clone())).into_response();
    }
    for required in ["jobPostingId", "firstName", "lastName", "email"] {
        if fields
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return invalid(&format!("{required} is required"));
        }
    }
    let posting = id_text(&fields["jobPostingId"]);
    let open = world.records.get("job_postings").is_some_and(|all| {
        all.iter()
            .any(|p| id_text(&p["jobPostingId"]) == posting && p["status"] == "Open")
    });
    if !open {
        return invalid(&format!(
            "job posting {posting} is not open for submissions"
        ));
    }
    let id = world.new_id("JS");
    let mut record = Map::new();
    record.insert(ID.to_owned(), json!(id));
    record.extend(fields.clone());
    record.insert("status".to_owned(), json!("Submitted"));
    for field in ["submittedDate", "createdDate", "modifiedDate"] {
        record.insert(field.to_owned(), json!(now));
    }
    let record = Value::Object(record);
    world.upsert(STREAM, ID, record.clone());
    (StatusCode::CREATED, Json(record)).into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}
