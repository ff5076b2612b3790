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
    #[error("connectors may not read the audit log")]
    ConnectorMayNotReadAudit,
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
    #[error(
        "the tenant's data key was rotated while a value was being sealed under the old one; \
         try again"
    )]
    StaleDataKey,
    #[error("the master keys cannot be read again: {0}; nothing was changed")]
    MasterKeyReload(ConfigError),
    #[error("tenant {tenant} has no data key yet: it has stored no secret")]
    NoDataKey { tenant: String },
    #[error("this call needs an admin token (subject `admin` or `admin:<name>`, no connector)")]
    AdminOnly,
    #[error("the stored secret of connection {connection_id} failed authentication")]
    SecretUnreadable { connection_id: String },
    #[error(
        "the partner rejected the oauth2 grant of connection {connection_id} ({reason}); \
         the connection needs a reconnect"
    )]
    CredentialsRejected {
        connection_id: String,
        reason: String,
    },
    #[error(
        "the token endpoint of connection {connection_id} failed {failures} time(s) in a row; \
         cooling down, retry after {retry_after_secs}s"
    )]
    CoolingDown {
        connection_id: String,
        failures: u32,
        retry_after_secs: u64,
    },
    #[error("the token endpoint of connection {connection_id} failed: {reason}; try again")]
    TokenEndpointUnavailable {
        connection_id: String,
        reason: String,
    },
    #[error("another replica is refreshing the token of connection {connection_id}; try again")]
    RefreshInProgress { connection_id: String },
    #[error("coordination is unavailable: {0}")]
    Coordination(String),
    #[error("cannot write the audit log: {0}")]
    AuditFailed(String),
    #[error("cannot build the http client")]
    HttpClient,
    #[error("the oauth connect state is unknown, used or expired; start the connect again")]
    ConnectStateInvalid,
    #[error("the partner refused the connect: {error}")]
    ConnectDenied { error: String },
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

impl Error {
    /// Seconds a caller should wait before trying again, when the error says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::CoolingDown {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
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
            Error::LeaseDenied { .. }
            | Error::ConnectorMayNotWrite
            | Error::ConnectorMayNotReadAudit
            | Error::AdminOnly => ErrorKind::PermissionDenied,
            Error::NoDataKey { .. } | Error::MasterKeyReload(_) => ErrorKind::FailedPrecondition,
            Error::MasterKeyMismatch { .. }
            | Error::SecretUnreadable { .. }
            | Error::UnknownMasterKey { .. }
            | Error::DataKeyUnreadable { .. } => ErrorKind::FailedPrecondition,
            Error::ConcurrentUpdate { .. }
            | Error::StaleDataKey
            | Error::CoolingDown { .. }
            | Error::TokenEndpointUnavailable { .. }
            | Error::RefreshInProgress { .. }
            | Error::Coordination(_) => ErrorKind::Unavailable,
            Error::CredentialsRejected { .. }
            | Error::ConnectStateInvalid
            | Error::ConnectDenied { .. } => ErrorKind::FailedPrecondition,
            // A busy or unreachable database is worth a retry; anything else is our bug.
            Error::Storage(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => ErrorKind::Unavailable,
            Error::Storage(_)
            | Error::Encrypt(_)
            | Error::HttpClient
            | Error::AuditFailed(_)
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
            Error::ConnectorMayNotReadAudit => "CONNECTOR_MAY_NOT_READ_AUDIT",
            Error::MasterKeyMismatch { .. } => "MASTER_KEY_MISMATCH",
            Error::SecretUnreadable { .. } => "SECRET_UNREADABLE",
            Error::UnknownMasterKey { .. } => "MASTER_KEY_UNKNOWN",
            Error::DataKeyUnreadable { .. } => "DATA_KEY_UNREADABLE",
            Error::Encrypt(_) => "ENCRYPTION_FAILED",
            Error::ConcurrentUpdate { .. } => "CONCURRENT_UPDATE",
            Error::StaleDataKey => "DATA_KEY_ROTATED",
            Error::NoDataKey { .. } => "DATA_KEY_MISSING",
            Error::MasterKeyReload(_) => "MASTER_KEY_INVALID",
            Error::AdminOnly => "ADMIN_ONLY",
            Error::CredentialsRejected { .. } => "CREDENTIALS_REJECTED",
            Error::CoolingDown { .. } => "CREDENTIALS_COOLING_DOWN",
            Error::TokenEndpointUnavailable { .. } => "TOKEN_ENDPOINT_UNAVAILABLE",
            Error::RefreshInProgress { .. } => "REFRESH_IN_PROGRESS",
            Error::Coordination(_) => "COORDINATION_FAILED",
            Error::HttpClient => "HTTP_CLIENT_FAILED",
            Error::AuditFailed(_) => "AUDIT_FAILED",
            Error::ConnectStateInvalid => "OAUTH_STATE_INVALID",
            Error::ConnectDenied { .. } => "OAUTH_DENIED",
            Error::Storage(_) => "STORAGE_FAILED",
            Error::OpenStorage(_) => "STORAGE_OPEN_FAILED",
            Error::Config(_) => "CONFIG_INVALID",
            Error::MeshKey(_) => "MESH_KEY_INVALID",
            Error::Serve(_) => "SERVE_FAILED",
        }
    }
}

impl plugboard_runtime::process::RunError for Error {
    /// The master keys, the mesh key and the database settings are the operator's to fix.
    fn is_configuration(&self) -> bool {
        match self {
            Error::OpenStorage(error) => error.is_configuration(),
            Error::MasterKeyMismatch { .. }
            | Error::UnknownMasterKey { .. }
            | Error::MasterKeyReload(_)
            | Error::Config(_)
            | Error::MeshKey(_) => true,
            _ => false,
        }
    }
}
