//! The registry's one error type.

use plugboard_proto::error::{ErrorKind, ServiceError};
use plugboard_runtime::server::ServeError;
use plugboard_runtime::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A registration field is missing or malformed; `field` names it as the caller sent it.
    #[error("{field} {problem}")]
    InvalidRegistration {
        field: &'static str,
        problem: String,
    },
    #[error("instance {instance_id:?} is not registered or has gone; register again")]
    InstanceNotFound { instance_id: String },
    #[error("connector {connector:?} has never registered")]
    ConnectorNotFound { connector: String },
    #[error(
        "no live instance of connector {connector:?}: none sent a heartbeat in the last \
         {ttl_seconds} s"
    )]
    NoLiveInstance { connector: String, ttl_seconds: u64 },
    #[error("stored manifest of connector {connector:?} cannot be decoded: {detail}")]
    CorruptManifest { connector: String, detail: String },
    #[error("registry storage failed: {0}")]
    Storage(#[source] sqlx::Error),
    #[error("cannot open the registry database: {0}")]
    Open(#[from] StorageError),
    #[error("the mesh key is not usable: {0}")]
    MeshKey(#[from] plugboard_runtime::identity::IdentityError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRegistration { .. } => ErrorKind::InvalidArgument,
            Error::InstanceNotFound { .. } | Error::ConnectorNotFound { .. } => ErrorKind::NotFound,
            Error::NoLiveInstance { .. } => ErrorKind::Unavailable,
            Error::CorruptManifest { .. }
            | Error::Storage(_)
            | Error::Open(_)
            | Error::MeshKey(_)
            | Error::Serve(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidRegistration { .. } => "INVALID_REGISTRATION",
            Error::InstanceNotFound { .. } => "INSTANCE_NOT_FOUND",
            Error::ConnectorNotFound { .. } => "CONNECTOR_NOT_FOUND",
            Error::NoLiveInstance { .. } => "NO_LIVE_INSTANCE",
            Error::CorruptManifest { .. } => "CORRUPT_MANIFEST",
            Error::Storage(_) => "STORAGE_FAILED",
            Error::Open(_) => "STORAGE_UNAVAILABLE",
            Error::MeshKey(_) => "BAD_MESH_KEY",
            Error::Serve(_) => "SERVE_FAILED",
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
