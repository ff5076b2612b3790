//! The REST/JSON API: `/healthz` and `/api/v1/integrations`. Both response shapes are pinned by
//! issue #2 and checked by tools outside this repository, so they change only with a new version.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::error::Error;
use crate::integrations::{self, Integration};
use crate::mesh::ServiceHealth;
use crate::routes::AppState;

/// The tenant of the request's `Authorization: Bearer <api key>`. The tenant is only ever taken
/// from the key, never from the path, query or body.
#[derive(Debug, Clone)]
pub struct ApiTenant(pub String);

impl FromRequestParts<AppState> for ApiTenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            // The scheme name is case-insensitive (RFC 9110, section 11.1).
            .and_then(|value| {
                value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, key)| key)
            })
            .map(str::trim)
            .filter(|key| !key.is_empty());
        let Some(key) = key else {
            tracing::info!("denied an api request without a bearer key");
            return Err(Error::Unauthenticated);
        };
        match state.store.authenticate(key).await? {
            Some(tenant_id) => Ok(ApiTenant(tenant_id)),
            None => {
                tracing::info!("denied an api request with an unknown or revoked key");
                Err(Error::Unauthenticated)
            }
        }
    }
}

/// The body of `/healthz`; structs rather than `json!` so fields keep their documented order.
#[derive(Serialize)]
struct HealthzBody {
    services: Vec<ServiceHealth>,
}

#[derive(Serialize)]
pub struct IntegrationsBody {
    integrations: Vec<Integration>,
}

/// `GET /healthz`: every service with its address and status; 200 only when all serve.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let services = state.mesh.probe_all().await;
    let all_serving = services.iter().all(|service| service.status == "serving");
    let status = if all_serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(HealthzBody { services })).into_response()
}

/// `GET /livez`: the process serves HTTP. The liveness probe: restarting the gateway cures
/// nothing a backend outage causes, so backends are not asked.
pub async fn livez() -> Response {
    Json(json!({ "status": "serving" })).into_response()
}

/// `GET /readyz`: the gateway can serve requests: its own database answers. The readiness
/// probe. A backend that is down is left out on purpose: every gateway replica would leave the
/// load balancer together, taking the dashboard, the API and partner webhooks down with one
/// service, where each request that needs the missing service already gets a 503 of its own.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.reachable().await {
        Json(json!({ "status": "serving" })).into_response()
    } else {
        let body =
            json!({ "status": "not_serving", "reason": "the gateway's database does not answer" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `GET /api/v1/integrations`: the caller's integrations.
pub async fn list_integrations(
    State(state): State<AppState>,
    ApiTenant(tenant_id): ApiTenant,
) -> Result<Json<IntegrationsBody>, Error> {
    let integrations = integrations::list(&state.mesh, &tenant_id).await?;
    Ok(Json(IntegrationsBody { integrations }))
}

/// `GET /api/v1/integrations/{id}`: one integration object; 404 unless it is the caller's.
pub async fn get_integration(
    State(state): State<AppState>,
    ApiTenant(tenant_id): ApiTenant,
    Path(id): Path<String>,
) -> Result<Json<Integration>, Error> {
    Ok(Json(integrations::get(&state.mesh, &tenant_id, &id).await?))
}

/// A known path with a method it does not take, in the API's error shape.
pub async fn method_not_allowed() -> Response {
    let body = json!({ "error": {
        "code": "method_not_allowed",
        "message": "this path does not take that method",
    }});
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// Unknown paths answer in the API's error shape rather than an empty body.
pub async fn not_found() -> Response {
    let body = json!({ "error": { "code": "not_found", "message": "no such route" } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
