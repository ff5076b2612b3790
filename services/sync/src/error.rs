//! Everything the sync service can fail with, and how each failure is classified.

use plugboard_proto::error::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field} is invalid: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("the connector served stream {stream} in a loop: {repeat}")]
    RepeatedPage {
        stream: String,
        repeat: crate::page_guard::Repeat,
    },
    #[error("no sync for connection {connection_id}")]
    SyncNotFound { connection_id: String },
    #[error("run {run_id} not found")]
    RunNotFound { run_id: String },
    #[error("push {push_id} not found")]
    PushNotFound { push_id: String },
    #[error(
        "idempotency key {idempotency_key:?} was used before with another record; a retry must \
         send the same request, a new write needs a new key"
    )]
    IdempotencyKeyReused { idempotency_key: String },
    #[error(
        "push {push_id} is {state}, not unconfirmed: only a push that may or may not have \
         reached the partner can be given up"
    )]
    PushNotUnconfirmed {
        push_id: String,
        state: &'static str,
    },
    #[error("conflict {conflict_id} not found")]
    ConflictNotFound { conflict_id: String },
    #[error("conflict {conflict_id} was already settled")]
    ConflictNotHeld { conflict_id: String },
    #[error("document {content_sha256} is being parsed by another call; ask again when it is done")]
    DocumentBeingParsed { content_sha256: String },
    #[error("the document's parse did not map and is quarantined: {reason}")]
    DocumentQuarantined { reason: String },
    #[error(
        "connection {connection_id} is a {connector} sync; a connection keeps its connector \
         (connect the other partner under a new connection id)"
    )]
    ConnectionOfAnotherConnector {
        connection_id: String,
        connector: String,
    },
    #[error(
        "connector {connector} is not registered: the registry has never had an instance of it; \
         start the connector (or check its name) and define the sync again"
    )]
    ConnectorNotRegistered { connector: String },
    #[error(
        "streams: {} not offered by connector {connector}, which offers {}",
        streams.join(", "),
        crate::manifest_check::list_streams(offered)
    )]
    StreamsNotOffered {
        connector: String,
        streams: Vec<String>,
        offered: Vec<String>,
    },
    #[error(
        "settings_json is refused by connector {connector}'s settings schema: {}",
        crate::manifest_check::describe(violations)
    )]
    SettingsRefused {
        connector: String,
        violations: Vec<crate::manifest_check::Violation>,
    },
    #[error(
        "connector {connector} registered a settings schema that cannot be used: {reason}; the \
         connector must register a corrected manifest"
    )]
    SettingsSchemaUnusable { connector: String, reason: String },
    #[error("a run of connection {connection_id} is already in progress")]
    RunInProgress { connection_id: String },
    #[error(
        "superseded: the run lost its lease on connection {connection_id} (fencing token \
         {fencing_token}) and stopped without committing more; the run holding the lease goes \
         on from the last committed page"
    )]
    Fenced {
        connection_id: String,
        fencing_token: u64,
    },
    #[error(
        "paused: the partner's request quota is used up; the run stopped after its last \
         committed page and resumes from there at {resumes_at}"
    )]
    QuotaExhausted { resumes_at: String },
    #[error("sync of connection {connection_id} is paused")]
    Paused { connection_id: String },
    #[error(
        "interrupted: the sync replica is shutting down; the run stopped after its last committed \
         page and the next run resumes from that checkpoint"
    )]
    ShuttingDown,
    #[error("{}", dependency_text(service, *kind, message))]
    Dependency {
        service: &'static str,
        kind: ErrorKind,
        reason: Option<String>,
        message: String,
    },
    #[error("coordination failed: {0}")]
    Coordination(#[from] plugboard_runtime::coordination::CoordinationError),
    #[error("storage failed: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    StorageSetup(#[from] plugboard_runtime::storage::StorageError),
    #[error(transparent)]
    Serve(#[from] plugboard_runtime::server::ServeError),
    #[error("cannot reach {service} at {addr}: {source}")]
    Channel {
        service: &'static str,
        addr: String,
        source: tonic::transport::Error,
    },
}

impl Error {
    /// Wraps a status from another service, keeping its kind and reason code.
    pub fn dependency(service: &'static str, status: &tonic::Status) -> Error {
        Error::Dependency {
            service,
            kind: ErrorKind::from_code(status.code()),
            reason: plugboard_proto::error::reason_of(status),
            message: status.message().to_owned(),
        }
    }

    /// True when the partner refused the connection's credentials: only reconnecting helps.
    pub fn is_credentials_rejected(&self) -> bool {
        matches!(
            self,
            Error::Dependency {
                kind: ErrorKind::Unauthenticated,
                ..
            }
        ) || matches!(
            self,
            Error::Dependency { reason: Some(reason), .. } if reason == "CREDENTIALS_REJECTED"
        )
    }
}

/// "mapping is unavailable: …" when the service could not be reached or answer in time, and
/// "the connector refused: …" when it answered no: the two call for different actions.
fn dependency_text(service: &str, kind: ErrorKind, message: &str) -> String {
    if kind.is_retryable() {
        format!("{service} is unavailable: {message}")
    } else {
        format!("{service} refused: {message}")
    }
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument { .. }
            | Error::StreamsNotOffered { .. }
            | Error::SettingsRefused { .. } => ErrorKind::InvalidArgument,
            Error::SyncNotFound { .. }
            | Error::RunNotFound { .. }
            | Error::PushNotFound { .. }
            | Error::ConflictNotFound { .. } => ErrorKind::NotFound,
            Error::IdempotencyKeyReused { .. }
            | Error::ConnectionOfAnotherConnector { .. }
            | Error::ConflictNotHeld { .. }
            | Error::PushNotUnconfirmed { .. } => ErrorKind::FailedPrecondition,
            // The connector may register later, or register a fixed manifest: the definition
            // can succeed once the mesh is in that state, not by retrying as it is.
            Error::ConnectorNotRegistered { .. } | Error::SettingsSchemaUnusable { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::RunInProgress { .. }
            | Error::Fenced { .. }
            | Error::Paused { .. }
            | Error::RepeatedPage { .. } => ErrorKind::FailedPrecondition,
            Error::DocumentQuarantined { .. } => ErrorKind::FailedPrecondition,
            Error::DocumentBeingParsed { .. } => ErrorKind::Unavailable,
            Error::Dependency { kind, .. } if kind.is_retryable() => ErrorKind::Unavailable,
            Error::Dependency { kind, .. } => *kind,
            Error::Coordination(_) | Error::ShuttingDown => ErrorKind::Unavailable,
            Error::QuotaExhausted { .. } => ErrorKind::ResourceExhausted,
            Error::Storage(_)
            | Error::Corrupt(_)
            | Error::StorageSetup(_)
            | Error::Serve(_)
            | Error::Channel { .. } => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::SyncNotFound { .. } => "SYNC_NOT_FOUND",
            Error::RepeatedPage { .. } => "PARTNER_REPEATED_PAGE",
            Error::RunNotFound { .. } => "RUN_NOT_FOUND",
            Error::PushNotFound { .. } => "PUSH_NOT_FOUND",
            Error::IdempotencyKeyReused { .. } => "IDEMPOTENCY_KEY_REUSED",
            Error::ConflictNotFound { .. } => "CONFLICT_NOT_FOUND",
            Error::ConflictNotHeld { .. } => "CONFLICT_NOT_HELD",
            Error::PushNotUnconfirmed { .. } => "PUSH_NOT_UNCONFIRMED",
            Error::ConnectionOfAnotherConnector { .. } => "CONNECTION_OF_ANOTHER_CONNECTOR",
            Error::ConnectorNotRegistered { .. } => "CONNECTOR_NOT_REGISTERED",
            Error::StreamsNotOffered { .. } => "STREAM_NOT_OFFERED",
            Error::SettingsRefused { .. } => "SETTINGS_REFUSED",
            Error::SettingsSchemaUnusable { .. } => "SETTINGS_SCHEMA_UNUSABLE",
            Error::RunInProgress { .. } => "RUN_IN_PROGRESS",
            Error::Fenced { .. } => "RUN_FENCED",
            Error::QuotaExhausted { .. } => "PARTNER_QUOTA_EXHAUSTED",
            Error::Paused { .. } => "SYNC_PAUSED",
            Error::DocumentBeingParsed { .. } => "DOCUMENT_BEING_PARSED",
            Error::DocumentQuarantined { .. } => "DOCUMENT_QUARANTINED",
            Error::Dependency { .. } => "DEPENDENCY_FAILED",
            Error::Coordination(_) => "COORDINATION_UNAVAILABLE",
            Error::ShuttingDown => "SHUTTING_DOWN",
            Error::Storage(_) | Error::StorageSetup(_) => "STORAGE_FAILED",
            Error::Corrupt(_) => "STORED_DATA_CORRUPT",
            Error::Serve(_) | Error::Channel { .. } => "SERVER_FAILED",
        }
    }
}

impl plugboard_runtime::process::RunError for Error {
    fn is_configuration(&self) -> bool {
        match self {
            Error::StorageSetup(error) => error.is_configuration(),
            _ => false,
        }
    }
}
