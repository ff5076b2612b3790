//! The health service's one error type.

use plugboard_proto::error::{ErrorKind, ServiceError};
use plugboard_runtime::server::ServeError;
use plugboard_runtime::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A report field is missing or malformed; `field` names it as the caller sent it.
    #[error("{field} {problem}")]
    InvalidReport {
        field: &'static str,
        problem: String,
    },
    #[error("no health has been reported for connection {connection_id:?}")]
    IntegrationNotFound { connection_id: String },
    /// Concurrent reports for one connection kept overtaking each other; retrying will do.
    #[error("too many concurrent reports for connection {connection_id:?}; retry")]
    Contended { connection_id: String },
    #[error("stored health of connection {connection_id:?} is unreadable: {detail}")]
    CorruptState {
        connection_id: String,
        detail: String,
    },
    /// A webhook URL that is not allowed, or a delivery that failed; the text says why.
    #[error("{0}")]
    InvalidWebhook(String),
    #[error("health storage failed: {0}")]
    Storage(#[source] sqlx::Error),
    #[error("cannot open the health database: {0}")]
    Open(#[from] StorageError),
    #[error("the mesh key is not usable: {0}")]
    MeshKey(#[from] plugboard_runtime::identity::IdentityError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Redis, which fans status changes out to the other replicas, is unreachable at start.
    #[error("cannot reach redis for status fan-out: {0}")]
    Coordination(String),
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReport { .. } | Error::InvalidWebhook(_) => ErrorKind::InvalidArgument,
            Error::IntegrationNotFound { .. } => ErrorKind::NotFound,
            Error::Contended { .. } => ErrorKind::Unavailable,
            Error::CorruptState { .. }
            | Error::Storage(_)
            | Error::Open(_)
            | Error::MeshKey(_)
            | Error::Serve(_) => ErrorKind::Internal,
            Error::Coordination(_) => ErrorKind::Unavailable,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidReport { .. } => "INVALID_REPORT",
            Error::InvalidWebhook(_) => "INVALID_WEBHOOK",
            Error::IntegrationNotFound { .. } => "INTEGRATION_NOT_FOUND",
            Error::Contended { .. } => "REPORT_CONTENDED",
            Error::CorruptState { .. } => "CORRUPT_STATE",
            Error::Storage(_) => "STORAGE_FAILED",
            Error::Open(_) => "STORAGE_UNAVAILABLE",
            Error::MeshKey(_) => "BAD_MESH_KEY",
            Error::Serve(_) => "SERVE_FAILED",
            Error::Coordination(_) => "COORDINATION_UNAVAILABLE",
        }
    }
}

impl plugboard_runtime::process::RunError for Error {
    fn is_configuration(&self) -> bool {
        match self {
            Error::Open(error) => error.is_configuration(),
            Error::MeshKey(_) => true,
            _ => false,
        }
    }
}
