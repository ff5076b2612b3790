//! Test fixtures that are NOT part of Greenhouse's API, for runtime features Greenhouse has no
//! counterpart for. Greenhouse Harvest lists no deleted records (its deletes reach integrations
//! by webhook only), so the runtime's deleted-records endpoint is exercised here against one
//! shaped like JobAdder's `GET /candidates/deleted` (`{"items": [{"candidateId",
//! "deletedAt"}]}`, a recent window, no paging), under `/_fixture/`, behind the same Basic auth
//! and budget as the real endpoints. `POST /_sandbox/delete` deletes candidates silently; the
//! `deleted_endpoint_fails` fault makes the endpoint answer 422.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{admit_request, error};
use super::state::Shared;

/// `GET /_fixture/v1/candidates/deleted`.
pub async fn deleted_candidates(State(sandbox): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(response) = admit_request(&sandbox, &headers, Some("candidates")) {
        return *response;
    }
    let world = sandbox.world();
    if world.faults.deleted_endpoint_fails {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "deleted records unavailable",
        );
    }
    let items: Vec<Value> = world
        .deleted
        .iter()
        .map(|(id, at)| json!({"candidateId": id, "deletedAt": at}))
        .collect();
    Json(json!({ "items": items })).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DeleteRequest {
    pub ids: Vec<Value>,
}

/// `POST /_sandbox/delete`: `{"ids": [...]}` candidates disappear without a webhook.
pub async fn delete(State(sandbox): State<Shared>, Json(request): Json<DeleteRequest>) -> Response {
    let gone = sandbox.world().delete_candidates(&request.ids);
    if gone.len() != request.ids.len() {
        return error(StatusCode::NOT_FOUND, "some of the candidates do not exist");
    }
    Json(json!({ "deleted": request.ids })).into_response()
}
