//! The connector's one error type, with its kinds and stable reason codes.

use plugboard_proto::error::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid connection settings: {0}")]
    InvalidSettings(String),
    #[error("target {url} is not allowed: {reason}")]
    TargetNotAllowed { url: String, reason: String },
    #[error("unknown stream {0:?}; streams are JobOrder, Candidate, JobSubmission, Placement")]
    UnknownStream(String),
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    /// The partner refused the connection's credentials: the customer must reconnect.
    #[error("bullhorn rejected the connection's credentials: {0}")]
    CredentialsRejected(String),
    #[error("no credential is stored for this connection")]
    CredentialMissing,
    #[error("the connection's credential is a {0}, bullhorn needs an oauth2 client")]
    WrongCredentialKind(&'static str),
    #[error("cannot lease the connection's credential: {message}")]
    Lease { kind: ErrorKind, message: String },
    #[error("bullhorn is unavailable: {0}")]
    PartnerUnavailable(String),
    #[error("bullhorn kept rate limiting after {0} waits")]
    RateLimited(u32),
    #[error("bullhorn refused the request with http {status}: {message}")]
    PartnerRejected { status: u16, message: String },
    #[error("bullhorn sent an unexpected response: {0}")]
    PartnerResponse(String),
    #[error("the bullhorn connector does not write {0} records")]
    WriteUnsupported(String),
    /// Bullhorn has event subscriptions that are polled, not pushed.
    #[error("bullhorn sends no webhooks")]
    NoWebhooks,
    #[error("cannot start the connector: {0}")]
    Startup(String),
    #[error(transparent)]
    Serve(#[from] plugboard_runtime::server::ServeError),
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSettings(_)
            | Error::TargetNotAllowed { .. }
            | Error::UnknownStream(_)
            | Error::InvalidCheckpoint(_) => ErrorKind::InvalidArgument,
            Error::CredentialsRejected(_)
            | Error::CredentialMissing
            | Error::WrongCredentialKind(_)
            | Error::NoWebhooks
            | Error::PartnerRejected { .. }
            | Error::WriteUnsupported(_) => ErrorKind::FailedPrecondition,
            Error::Lease { kind, .. } => *kind,
            Error::PartnerUnavailable(_) | Error::RateLimited(_) | Error::PartnerResponse(_) => {
                ErrorKind::Unavailable
            }
            Error::Startup(_) | Error::Serve(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSettings(_) => "INVALID_SETTINGS",
            Error::NoWebhooks => "WEBHOOKS_NOT_SUPPORTED",
            Error::TargetNotAllowed { .. } => "TARGET_NOT_ALLOWED",
            Error::UnknownStream(_) => "UNKNOWN_STREAM",
            Error::InvalidCheckpoint(_) => "INVALID_CHECKPOINT",
            Error::CredentialsRejected(_) => "CREDENTIALS_REJECTED",
            Error::CredentialMissing => "CREDENTIAL_NOT_FOUND",
            Error::WrongCredentialKind(_) => "WRONG_CREDENTIAL_KIND",
            Error::Lease { .. } => "CREDENTIAL_LEASE_FAILED",
            Error::PartnerUnavailable(_) => "PARTNER_UNAVAILABLE",
            Error::RateLimited(_) => "PARTNER_RATE_LIMITED",
            Error::PartnerRejected { .. } => "PARTNER_REQUEST_REJECTED",
            Error::PartnerResponse(_) => "PARTNER_RESPONSE_INVALID",
            Error::WriteUnsupported(_) => "WRITE_UNSUPPORTED",
            Error::Startup(_) => "STARTUP_FAILED",
            Error::Serve(_) => "SERVE_FAILED",
        }
    }
}

impl Error {
    /// Whether another attempt may succeed (partner 5xx, connection errors).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::PartnerUnavailable(_))
    }
}

/// A reqwest error without its URL: Bullhorn's authorize URL carries the password.
pub fn transport(context: &str, error: reqwest::Error) -> Error {
    Error::PartnerUnavailable(format!("{context}: {}", error.without_url()))
}
