//! `POST /api/v1/integrations/{id}/documents`: a document (a CV) sent to the integration's
//! parser through sync's `ParseDocument`. The same document sent again is answered from its
//! first parse; the answer names the records it landed as and their personal data fields.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine as _;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::sync::v1::ParseDocumentRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ApiTenant;
use crate::error::Error;
use crate::json_body::JsonBody;
use crate::routes::AppState;

/// Base64 of a 10 MiB document, with room for the JSON around it.
pub const MAX_BODY_BYTES: usize = 15 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    file_name: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    document_type: String,
    /// The document's bytes, standard base64.
    content_base64: String,
}

#[derive(Debug, Serialize)]
pub struct ParsedBody {
    document_id: String,
    content_sha256: String,
    /// Answered from an earlier parse of the same content: nothing was charged.
    reused: bool,
    /// What the partner charged for the parse, when its manifest names a price.
    cost: Option<Value>,
    records: Vec<RecordBody>,
}

#[derive(Debug, Serialize)]
pub struct RecordBody {
    entity: String,
    external_id: String,
    person_id: String,
    personal_data_fields: Vec<String>,
    body: Value,
}

pub async fn parse(
    State(state): State<AppState>,
    ApiTenant(tenant_id): ApiTenant,
    Path(id): Path<String>,
    JsonBody(document): JsonBody<DocumentBody>,
) -> Result<Json<ParsedBody>, Error> {
    let content = base64::engine::general_purpose::STANDARD
        .decode(document.content_base64.trim())
        .map_err(|_| Error::InvalidForm("content_base64 is not standard base64".to_owned()))?;
    let parsed = state
        .mesh
        .sync_for(&tenant_id)
        .parse_document(ParseDocumentRequest {
            connection_id: id.clone(),
            document_type: document.document_type,
            file_name: document.file_name,
            content,
            content_type: document.content_type,
        })
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => Error::IntegrationNotFound(id.clone()),
            _ => Error::upstream("sync", &status),
        })?
        .into_inner();
    let parse = parsed.parse.unwrap_or_default();
    let records = parsed
        .records
        .into_iter()
        .map(|record| RecordBody {
            body: body_json(record.body),
            entity: record.entity,
            external_id: record.external_id,
            person_id: record.person_id,
            personal_data_fields: record.personal_data_fields,
        })
        .collect();
    Ok(Json(ParsedBody {
        document_id: parse.document_id,
        content_sha256: parse.content_sha256,
        reused: parsed.reused,
        cost: parse
            .cost
            .map(|cost| serde_json::json!({"amount": cost.amount, "currency": cost.currency})),
        records,
    }))
}

/// The canonical body as the JSON mapping specs produce.
fn body_json(body: Option<Body>) -> Value {
    let json = match body {
        Some(Body::Candidate(candidate)) => serde_json::to_value(candidate),
        Some(Body::ParsedResume(resume)) => serde_json::to_value(resume),
        Some(Body::Worker(worker)) => serde_json::to_value(worker),
        Some(Body::Job(job)) => serde_json::to_value(job),
        Some(Body::Application(application)) => serde_json::to_value(application),
        Some(Body::Placement(placement)) => serde_json::to_value(placement),
        Some(Body::Timesheet(timesheet)) => serde_json::to_value(timesheet),
        Some(Body::JobPosting(posting)) => serde_json::to_value(posting),
        None => Ok(Value::Null),
    };
    json.unwrap_or(Value::Null)
}
