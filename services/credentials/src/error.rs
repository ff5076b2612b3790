//! The credentials service's one error type.

use plugboard_proto::error::{ErrorKind, ServiceError};
use plugboard_runtime::config::ConfigError;
use plugboard_runtime::identity::IdentityError;
use plugboard_runtime::server::ServeError;
use plugboard_runtime::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field} is invalid: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("no credential for connection {connection_id}")]
    NotFound { connection_id: String },
    #[error("connection {connection_id} may only be leased by its own connector")]
    LeaseDenied { connection_id: String },
    #[error("connectors may not change credentials")]
    ConnectorMayNotWrite,
    #[error(
        "the secret of connection {connection_id} was sealed with another master key; \
         check PLUGBOARD_MASTER_KEY"
    )]
    MasterKeyMismatch { connection_id: String },
    #[error(
        "{count} stored data key(s) or secret(s) are wrapped under master key id(s) {key_ids}, \
         which are not configured (configured: {configured}); set PLUGBOARD_MASTER_KEY to the \
         right key or add the old one to PLUGBOARD_MASTER_KEY_PREVIOUS. Nothing was changed"
    )]
    UnknownMasterKey {
        count: usize,
        key_ids: String,
        configured: String,
    },
    #[error(
        "the data key of tenant {tenant} does not open under master key {master_key_id}; \
         it was damaged or the key with that id is not the one it was wrapped with. Nothing was \
         changed"
    )]
    DataKeyUnreadable {
        tenant: String,
        master_key_id: String,
    },
    #[error("the stored secret of connection {connection_id} failed authentication")]
    SecretUnreadable { connection_id: String },
    #[error("cannot encrypt a secret: {0}")]
    Encrypt(String),
    #[error("connection {connection_id} was changed concurrently, try again")]
    ConcurrentUpdate { connection_id: String },
    #[error("storage failed: {0}")]
    Storage(#[source] sqlx::Error),
    #[error("cannot open storage: {0}")]
    OpenStorage(#[from] StorageError),
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("invalid mesh key: {0}")]
    MeshKey(#[from] IdentityError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Storage(error)
    }
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::LeaseDenied { .. } | Error::ConnectorMayNotWrite => ErrorKind::PermissionDenied,
            Error::MasterKeyMismatch { .. }
            | Error::SecretUnreadable { .. }
            | Error::UnknownMasterKey { .. }
            | Error::DataKeyUnreadable { .. } => ErrorKind::FailedPrecondition,
            Error::ConcurrentUpdate { .. } => ErrorKind::Unavailable,
            // A busy or unreachable database is worth a retry; anything else is our bug.
            Error::Storage(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => ErrorKind::Unavailable,
            Error::Storage(_)
            | Error::Encrypt(_)
            | Error::OpenStorage(_)
            | Error::Config(_)
            | Error::MeshKey(_)
            | Error::Serve(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_FIELD",
            Error::NotFound { .. } => "CREDENTIAL_NOT_FOUND",
            Error::LeaseDenied { .. } => "LEASE_DENIED",
            Error::ConnectorMayNotWrite => "CONNECTOR_MAY_NOT_WRITE",
            Error::MasterKeyMismatch { .. } => "MASTER_KEY_MISMATCH",
            Error::SecretUnreadable { .. } => "SECRET_UNREADABLE",
            Error::UnknownMasterKey { .. } => "MASTER_KEY_UNKNOWN",
            Error::DataKeyUnreadable { .. } => "DATA_KEY_UNREADABLE",
            Error::Encrypt(_) => "ENCRYPTION_FAILED",
            Error::ConcurrentUpdate { .. } => "CONCURRENT_UPDATE",
            Error::Storage(_) => "STORAGE_FAILED",
            Error::OpenStorage(_) => "STORAGE_OPEN_FAILED",
            Error::Config(_) => "CONFIG_INVALID",
            Error::MeshKey(_) => "MESH_KEY_INVALID",
            Error::Serve(_) => "SERVE_FAILED",
        }
    }
}
