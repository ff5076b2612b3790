//! Coupa CCW candidate submissions: `POST job_requests/{id}/candidates` submits a supplier's
//! candidate to an open job request (answering 201 with the candidate, `new`), `PUT
//! candidates/{id}` changes the supplier's fields or withdraws it (`withdrawn`); the buyer
//! moves it through every other status. Bodies and answers are JSON with hyphenated keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use crate::vms::Shared;
use crate::vms::submissions::SubmissionRules;

const RULES: SubmissionRules = SubmissionRules {
    supplier_fields: &[
        "first-name",
        "last-name",
        "email",
        "phone",
        "supplier-reference",
        "bill-rate",
        "available-date",
        "status",
    ],
    required: &["first-name", "last-name", "email"],
    rate_field: "bill-rate",
    posting_stream: "job_requests",
    posting_noun: "job request",
    posting_not_open_code: "job_request_not_open",
    open_status: "open",
    posting_field: "job-request-id",
    submitted_status: "new",
    withdrawn_status: "withdrawn",
    created_fields: &["created-at", "updated-at"],
    modified_field: "updated-at",
    id_base: 50_000,
};

pub async fn create(
    State(vms): State<Shared>,
    Path(job_request): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    RULES.create(&vms, &job_request, &headers, &body)
}

pub async fn update(
    State(vms): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    RULES.update(&vms, &id, &headers, &body)
}
