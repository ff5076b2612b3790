//! The runtime's one error type, with its kinds and stable reason codes.

use plugboard_proto::error::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid connection settings: {0}")]
    InvalidSettings(String),
    #[error("target {url} is not allowed: {reason}")]
    TargetNotAllowed { url: String, reason: String },
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// The partner looked at the document and could not parse it.
    #[error("{0}")]
    DocumentNotParsed(String),
    #[error("webhook rejected: {0}")]
    WebhookRejected(String),
    /// A delivery that passed its signature check but is not shaped as the manifest says (no
    /// event array where `event_array` points): the partner changed, or the manifest is wrong.
    #[error("webhook not readable: {0}")]
    WebhookUnreadable(String),
    #[error("the manifest asks for {0}, which this runtime does not support yet")]
    Unsupported(String),
    /// The partner refused the connection's credentials: the customer must reconnect.
    #[error("the partner rejected the connection's credentials: {0}")]
    CredentialsRejected(String),
    #[error("no credential is stored for this connection")]
    CredentialMissing,
    #[error("no webhook secret is stored for this connection")]
    WebhookSecretMissing,
    #[error("{0} receives no webhooks")]
    NoWebhooks(String),
    #[error("the connection's credential is a {found}, this connector needs {needed}")]
    WrongCredentialKind {
        found: &'static str,
        needed: &'static str,
    },
    #[error("cannot lease the connection's credential: {message}")]
    Lease { kind: ErrorKind, message: String },
    #[error("the partner is unavailable: {0}")]
    PartnerUnavailable(String),
    #[error("the partner kept rate limiting after {0} waits")]
    RateLimited(u32),
    /// A 429 whose wait is longer than the manifest lets a run sit through: a daily or hourly
    /// quota is used up. The caller (sync) pauses and comes back after `resets_in`.
    #[error("the partner's request quota is used up; it resets in {} seconds", resets_in.as_secs())]
    QuotaExhausted { resets_in: std::time::Duration },
    #[error("the partner refused the request with http {status}: {message}")]
    PartnerRejected { status: u16, message: String },
    /// A SOAP fault the partner raised about the request (`Client`/`Sender`): sending it again
    /// changes nothing.
    #[error("the partner answered with SOAP fault {code}: {message}")]
    SoapFault { code: String, message: String },
    #[error("the partner sent an unexpected response: {0}")]
    PartnerResponse(String),
    /// A write that cannot be repeated safely may or may not have happened at the partner.
    #[error("the write may or may not have happened at the partner: {0}")]
    WriteOutcomeUnknown(String),
    /// A hook produced what cannot be sent (a header name or value HTTP refuses): a bug in
    /// the hook, not in the partner or the request.
    #[error("hook {hook} failed: {reason}")]
    Hook { hook: &'static str, reason: String },
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
            | Error::InvalidCheckpoint(_)
            | Error::InvalidWrite(_)
            | Error::InvalidDocument(_)
            | Error::DocumentNotParsed(_)
            | Error::WebhookUnreadable(_) => ErrorKind::InvalidArgument,
            // A delivery that fails its signature or timestamp check is not from the partner.
            Error::WebhookRejected(_) => ErrorKind::Unauthenticated,
            Error::WebhookSecretMissing | Error::NoWebhooks(_) => ErrorKind::FailedPrecondition,
            // A 403: the connected user may not do this; sync's outcome says so plainly.
            Error::PartnerRejected { status: 403, .. } => ErrorKind::PermissionDenied,
            Error::Unsupported(_)
            | Error::CredentialsRejected(_)
            | Error::CredentialMissing
            | Error::WrongCredentialKind { .. }
            | Error::PartnerRejected { .. }
            | Error::SoapFault { .. } => ErrorKind::FailedPrecondition,
            // Not retryable: retrying is exactly what could write twice.
            Error::WriteOutcomeUnknown(_) => ErrorKind::FailedPrecondition,
            Error::Lease { kind, .. } => *kind,
            Error::QuotaExhausted { .. } => ErrorKind::ResourceExhausted,
            Error::PartnerUnavailable(_) | Error::RateLimited(_) | Error::PartnerResponse(_) => {
                ErrorKind::Unavailable
            }
            Error::Hook { .. } | Error::Startup(_) | Error::Serve(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSettings(_) => "INVALID_SETTINGS",
            Error::TargetNotAllowed { .. } => "TARGET_NOT_ALLOWED",
            Error::UnknownStream(_) => "UNKNOWN_STREAM",
            Error::InvalidCheckpoint(_) => "INVALID_CHECKPOINT",
            Error::InvalidWrite(_) => "INVALID_WRITE",
            Error::InvalidDocument(_) => "INVALID_DOCUMENT",
            Error::DocumentNotParsed(_) => "DOCUMENT_NOT_PARSED",
            Error::WebhookRejected(_) => "WEBHOOK_REJECTED",
            Error::WebhookUnreadable(_) => "WEBHOOK_UNREADABLE",
            Error::Unsupported(_) => "MANIFEST_FEATURE_UNSUPPORTED",
            Error::CredentialsRejected(_) => "CREDENTIALS_REJECTED",
            Error::CredentialMissing => "CREDENTIAL_NOT_FOUND",
            Error::WebhookSecretMissing => "WEBHOOK_SECRET_NOT_FOUND",
            Error::NoWebhooks(_) => "WEBHOOKS_NOT_SUPPORTED",
            Error::WrongCredentialKind { .. } => "WRONG_CREDENTIAL_KIND",
            Error::Lease { .. } => "CREDENTIAL_LEASE_FAILED",
            Error::PartnerUnavailable(_) => "PARTNER_UNAVAILABLE",
            Error::RateLimited(_) => "PARTNER_RATE_LIMITED",
            Error::PartnerRejected { status: 403, .. } => "PARTNER_FORBIDDEN",
            Error::QuotaExhausted { .. } => "PARTNER_QUOTA_EXHAUSTED",
            Error::PartnerRejected { .. } => "PARTNER_REQUEST_REJECTED",
            Error::PartnerResponse(_) => "PARTNER_RESPONSE_INVALID",
            Error::SoapFault { .. } => "PARTNER_SOAP_FAULT",
            Error::WriteOutcomeUnknown(_) => "WRITE_OUTCOME_UNKNOWN",
            Error::Hook { .. } => "CONNECTOR_HOOK_FAILED",
            Error::Startup(_) => "STARTUP_FAILED",
            Error::Serve(_) => "SERVE_FAILED",
        }
    }

    fn retry_delay(&self) -> Option<std::time::Duration> {
        match self {
            Error::QuotaExhausted { resets_in } => Some(*resets_in),
            _ => None,
        }
    }
}

impl Error {
    /// Whether another attempt may succeed (partner 5xx, connection errors).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::PartnerUnavailable(_))
    }
}

/// A reqwest error without its URL: query strings may carry keys.
pub fn transport(context: &str, error: reqwest::Error) -> Error {
    Error::PartnerUnavailable(format!("{context}: {}", error.without_url()))
}

impl plugboard_runtime::process::RunError for Error {}
