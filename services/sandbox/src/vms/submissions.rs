//! Supplier candidate submissions to an open posting, as the VMSs that take them one by one over
//! JSON (Beeline, Coupa/Magnit) do: create answers 201 with the candidate in its first status;
//! update changes the supplier's fields or withdraws it; the buyer moves it through every other
//! status. Each partner gives its own field names and status words as [`SubmissionRules`].

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::vms::state::id_text;
use crate::vms::{Shared, error, now_rfc3339};

/// The stream submissions are stored in and listed from.
const STREAM: &str = "candidates";

/// One partner's submission vocabulary.
#[derive(Debug)]
pub struct SubmissionRules {
    /// Fields a supplier sets; anything else is refused.
    pub supplier_fields: &'static [&'static str],
    /// Fields a create must carry.
    pub required: &'static [&'static str],
    /// The bill rate field (`{amount, currency}`).
    pub rate_field: &'static str,
    /// The stream of postings, and its name in messages and error codes.
    pub posting_stream: &'static str,
    pub posting_noun: &'static str,
    pub posting_not_open_code: &'static str,
    /// A posting's status while it takes submissions.
    pub open_status: &'static str,
    /// The field naming the posting on the candidate.
    pub posting_field: &'static str,
    pub submitted_status: &'static str,
    pub withdrawn_status: &'static str,
    /// Timestamps set on create; the last of them is also set on every update.
    pub created_fields: &'static [&'static str],
    pub modified_field: &'static str,
    /// Where the partner's candidate ids start.
    pub id_base: u64,
}

impl SubmissionRules {
    fn check(&self, fields: &Map<String, Value>) -> Result<(), Box<Response>> {
        if let Some(unknown) = fields
            .keys()
            .find(|key| !self.supplier_fields.contains(&key.as_str()))
        {
            return Err(Box::new(invalid(&format!(
                "{unknown} is not a candidate field a supplier sets"
            ))));
        }
        if let Some(rate) = fields.get(self.rate_field) {
            let amount = rate["amount"].as_str().unwrap_or_default();
            if amount.parse::<f64>().is_err() || rate["currency"].as_str().unwrap_or("").len() != 3
            {
                return Err(Box::new(invalid(&format!(
                    "{} needs a decimal amount and a currency",
                    self.rate_field
                ))));
            }
        }
        Ok(())
    }

    /// Submits a candidate to the open posting `posting`.
    pub fn create(
        &self,
        vms: &Shared,
        posting: &str,
        headers: &HeaderMap,
        body: &Value,
    ) -> Response {
        let mut world = match vms.admit(headers) {
            Ok(world) => world,
            Err(response) => return *response,
        };
        let Some(fields) = body.as_object() else {
            return invalid("the body must be a JSON object");
        };
        if let Err(response) = self.check(fields) {
            return *response;
        }
        for required in self.required {
            if fields
                .get(*required)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return invalid(&format!("{required} is required"));
            }
        }
        let open = world.records.get(self.posting_stream).is_some_and(|all| {
            all.iter()
                .any(|r| id_text(&r["id"]) == posting && r["status"] == self.open_status)
        });
        if !open {
            return error(
                StatusCode::CONFLICT,
                self.posting_not_open_code,
                &format!("{} {posting} does not take submissions", self.posting_noun),
            );
        }
        world.stats.writes += 1;
        world.next_id += 1;
        let id = self.id_base + world.next_id;
        let now = now_rfc3339();
        let mut record = Map::new();
        record.insert("id".to_owned(), json!(id));
        record.insert(
            self.posting_field.to_owned(),
            posting.parse::<u64>().map_or(json!(posting), |n| json!(n)),
        );
        record.extend(fields.clone());
        record.insert("status".to_owned(), json!(self.submitted_status));
        for field in self.created_fields {
            record.insert((*field).to_owned(), json!(now));
        }
        let record = Value::Object(record);
        world.upsert(STREAM, "id", record.clone());
        (StatusCode::CREATED, Json(record)).into_response()
    }

    /// Changes the supplier's fields of candidate `id`, or withdraws it.
    pub fn update(&self, vms: &Shared, id: &str, headers: &HeaderMap, body: &Value) -> Response {
        let mut world = match vms.admit(headers) {
            Ok(world) => world,
            Err(response) => return *response,
        };
        let Some(fields) = body.as_object() else {
            return invalid("the body must be a JSON object");
        };
        if let Err(response) = self.check(fields) {
            return *response;
        }
        if fields
            .get("status")
            .is_some_and(|status| status != self.withdrawn_status)
        {
            return invalid(&format!(
                "a supplier can only set status to {}",
                self.withdrawn_status
            ));
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
        existing.insert(self.modified_field.to_owned(), json!(now_rfc3339()));
        Json(Value::Object(existing.clone())).into_response()
    }
}

fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
}
