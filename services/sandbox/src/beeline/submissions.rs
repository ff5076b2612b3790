//! Beeline candidate submissions: `POST requisitions/{id}/candidates` submits a supplier's
//! candidate to an open requisition (answering 201 with the candidate, `SUBMITTED`), `PATCH
//! candidates/{id}` changes the supplier's fields or withdraws it (`WITHDRAWN`); the client
//! moves it through every other status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use crate::vms::Shared;
use crate::vms::submissions::SubmissionRules;

const RULES: SubmissionRules = SubmissionRules {
    supplier_fields: &[
        "firstName",
        "lastName",
        "email",
        "phone",
        "supplierCandidateId",
        "billRate",
        "rateType",
        "availableStartDate",
        "status",
    ],
    required: &["firstName", "lastName", "email"],
    rate_field: "billRate",
    posting_stream: "requisitions",
    posting_noun: "requisition",
    posting_not_open_code: "requisition_not_open",
    open_status: "OPEN",
    posting_field: "requisitionId",
    submitted_status: "SUBMITTED",
    withdrawn_status: "WITHDRAWN",
    created_fields: &["submittedAt", "lastModified"],
    modified_field: "lastModified",
    id_base: 500_000,
};

pub async fn create(
    State(vms): State<Shared>,
    Path(requisition): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    RULES.create(&vms, &requisition, &headers, &body)
}

pub async fn update(
    State(vms): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    RULES.update(&vms, &id, &headers, &body)
}
