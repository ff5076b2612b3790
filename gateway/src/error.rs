//! The gateway's one error type, and how it leaves as an HTTP response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plugboard_proto::error::{ErrorKind, ServiceError};
use plugboard_runtime::identity::IdentityError;
use plugboard_runtime::storage::StorageError;

use crate::tenants::MIN_API_KEY_LEN;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the gateway database: {0}")]
    Storage(#[from] StorageError),
    #[error("database query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("an api key must be at least {MIN_API_KEY_LEN} characters")]
    ApiKeyTooShort,
    #[error("this api key already belongs to another tenant")]
    ApiKeyInUse,
    #[error("tenant id {0:?} must be 1 to 128 letters, digits, '-', '_' or '.'")]
    InvalidTenantId(String),
    #[error("tenant {0:?} does not exist")]
    TenantNotFound(String),
    #[error("a valid api key or session is required")]
    Unauthenticated,
    #[error("the request's origin is not this site")]
    CrossOrigin,
    #[error("integration {0:?} not found")]
    IntegrationNotFound(String),
    #[error("connector {0:?} is not in the catalogue")]
    ConnectorNotFound(String),
    #[error("this connect link was already used or has expired; start the connect again")]
    ConnectExpired,
    #[error("access was not approved at the partner; start the connect again to retry")]
    ConnectDenied,
    #[error("no webhook route for this connection")]
    WebhookEndpointNotFound,
    #[error("connection id {0:?} already has a webhook route of another tenant")]
    WebhookEndpointTaken(String),
    /// The connector refused a delivery's signature or timestamp; the reason stays in logs.
    #[error("the webhook's signature or timestamp is not valid")]
    WebhookRejected,
    #[error("too many webhook deliveries for this connection; retry later")]
    WebhookRateLimited { retry_after: std::time::Duration },
    /// The connector's manifest declares no webhooks: deliveries could only be refused.
    #[error("{0} does not send webhooks; its changes arrive by scheduled sync")]
    WebhooksUnsupported(String),
    /// Health refused the tenant's notification URL; its text says why (https only, public
    /// addresses only) and names nothing but the tenant's own input.
    #[error("{0}")]
    WebhookUrlRefused(String),
    /// A dashboard form field is missing or malformed; the text names the field.
    #[error("{0}")]
    InvalidForm(String),
    /// A REST request body that is not the JSON the endpoint takes.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("{service} service answered {code:?}: {message}")]
    Upstream {
        service: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("invalid mesh key: {0}")]
    MeshKey(#[from] IdentityError),
    #[error("invalid address of the {service} service: {source}")]
    Address {
        service: &'static str,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot render a page: {0}")]
    Template(#[from] minijinja::Error),
    #[error("http server failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error("PLUGBOARD_REDIS_URL: {0}")]
    Redis(String),
}

impl Error {
    /// A failed call to another service of the mesh.
    pub fn upstream(service: &'static str, status: &tonic::Status) -> Error {
        Error::Upstream {
            service,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(_)
            | Error::Database(_)
            | Error::MeshKey(_)
            | Error::Address { .. }
            | Error::Template(_)
            | Error::Serve(_)
            | Error::Redis(_) => ErrorKind::Internal,
            Error::ApiKeyTooShort
            | Error::InvalidTenantId(_)
            | Error::InvalidForm(_)
            | Error::InvalidBody(_)
            | Error::WebhookUrlRefused(_) => ErrorKind::InvalidArgument,
            Error::ApiKeyInUse | Error::WebhookEndpointTaken(_) => ErrorKind::AlreadyExists,
            Error::WebhookEndpointNotFound => ErrorKind::NotFound,
            Error::WebhookRejected => ErrorKind::Unauthenticated,
            Error::WebhookRateLimited { .. } => ErrorKind::ResourceExhausted,
            Error::ConnectExpired | Error::ConnectDenied | Error::WebhooksUnsupported(_) => {
                ErrorKind::FailedPrecondition
            }
            Error::TenantNotFound(_)
            | Error::IntegrationNotFound(_)
            | Error::ConnectorNotFound(_) => ErrorKind::NotFound,
            Error::Unauthenticated => ErrorKind::Unauthenticated,
            Error::CrossOrigin => ErrorKind::PermissionDenied,
            Error::Upstream { code, .. } => match ErrorKind::from_code(*code) {
                // The gateway signs its own calls: a refusal means our mesh setup is broken, not
                // that the customer lacks a valid key.
                ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => ErrorKind::Internal,
                kind => kind,
            },
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::Storage(_) => "STORAGE_UNAVAILABLE",
            Error::Database(_) => "STORAGE_FAILED",
            Error::ApiKeyTooShort => "API_KEY_TOO_SHORT",
            Error::ApiKeyInUse => "API_KEY_IN_USE",
            Error::InvalidTenantId(_) => "INVALID_TENANT_ID",
            Error::TenantNotFound(_) => "TENANT_NOT_FOUND",
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::CrossOrigin => "CROSS_ORIGIN_REQUEST",
            Error::IntegrationNotFound(_) => "INTEGRATION_NOT_FOUND",
            Error::ConnectorNotFound(_) => "CONNECTOR_NOT_FOUND",
            Error::ConnectExpired => "OAUTH_CONNECT_EXPIRED",
            Error::ConnectDenied => "OAUTH_CONNECT_DENIED",
            Error::WebhookEndpointNotFound => "WEBHOOK_ENDPOINT_NOT_FOUND",
            Error::WebhookEndpointTaken(_) => "WEBHOOK_ENDPOINT_TAKEN",
            Error::WebhookRejected => "WEBHOOK_REJECTED",
            Error::WebhookRateLimited { .. } => "WEBHOOK_RATE_LIMITED",
            Error::WebhooksUnsupported(_) => "WEBHOOKS_UNSUPPORTED",
            Error::InvalidForm(_) => "INVALID_FORM",
            Error::InvalidBody(_) => "INVALID_BODY",
            Error::WebhookUrlRefused(_) => "WEBHOOK_URL_REFUSED",
            Error::Upstream { .. } => "UPSTREAM_FAILED",
            Error::MeshKey(_) => "MESH_KEY_INVALID",
            Error::Address { .. } => "SERVICE_ADDRESS_INVALID",
            Error::Template(_) => "TEMPLATE_FAILED",
            Error::Serve(_) => "HTTP_SERVER_FAILED",
            Error::Redis(_) => "REDIS_URL_INVALID",
        }
    }
}

/// The stable lowercase code sent to HTTP clients, for example `unauthenticated`.
pub fn http_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::NotFound => "not_found",
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::FailedPrecondition => "failed_precondition",
        ErrorKind::Unauthenticated => "unauthenticated",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::ResourceExhausted => "resource_exhausted",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::DeadlineExceeded => "deadline_exceeded",
        ErrorKind::Internal => "internal",
    }
}

impl Error {
    /// HTTP status and the message a client may see. Server-side failures are logged here with
    /// their detail and leave with a generic message.
    pub fn public_parts(&self) -> (StatusCode, &'static str, String) {
        let kind = self.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if status.is_server_error() {
            tracing::error!(error = %self, reason = self.reason(), "request failed");
            match kind {
                ErrorKind::Unavailable | ErrorKind::DeadlineExceeded => {
                    "a service is temporarily unavailable, please retry".to_owned()
                }
                _ => "internal error".to_owned(),
            }
        } else {
            match self {
                // Our services word argument and precondition refusals for the caller (they
                // name the field or the state at fault, never another tenant's data): pass them
                // on. Other refusals keep their detail in the log.
                Error::Upstream {
                    service,
                    code: tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition,
                    message,
                } => format!("the {service} service refused the request: {message}"),
                Error::Upstream { service, .. } => {
                    tracing::info!(error = %self, "upstream refused a request");
                    format!("the {service} service refused the request")
                }
                _ => self.to_string(),
            }
        };
        (status, http_code(kind), message)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message) = self.public_parts();
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let mut response = (status, Json(body)).into_response();
        if let Error::WebhookRateLimited { retry_after } = &self {
            // Whole seconds, rounded up: a partner retrying at once would only be refused again.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED && !matches!(self, Error::WebhookRejected) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl plugboard_runtime::process::RunError for Error {
    fn is_configuration(&self) -> bool {
        match self {
            Error::Storage(error) => error.is_configuration(),
            Error::MeshKey(_) | Error::Address { .. } | Error::Redis(_) => true,
            _ => false,
        }
    }
}
