//! The one place where error kinds become gRPC codes.
//!
//! Each crate keeps its own `thiserror` enum and implements [`ServiceError`] for it: a small
//! [`ErrorKind`] and a stable reason code. [`to_status`] then builds the `tonic::Status` with a
//! google.rpc `ErrorInfo` detail, so clients branch on the reason, never on message text.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of every `ErrorInfo` Plugboard sends.
pub const ERROR_DOMAIN: &str = "plugboard";

/// The deliberately small set of kinds every error maps onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    /// Retryable: a dependency is down or busy. The caller may try again later.
    Unavailable,
    DeadlineExceeded,
    /// A bug or an invariant broken on our side. The detail stays in our logs.
    Internal,
}

impl ErrorKind {
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::ResourceExhausted => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorKind::Internal => Code::Internal,
        }
    }

    /// The HTTP status the gateway answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => 409,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::DeadlineExceeded => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind of a status received from another service.
    pub fn from_code(code: Code) -> ErrorKind {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidArgument,
            Code::NotFound => ErrorKind::NotFound,
            Code::AlreadyExists | Code::Aborted => ErrorKind::AlreadyExists,
            Code::FailedPrecondition => ErrorKind::FailedPrecondition,
            Code::Unauthenticated => ErrorKind::Unauthenticated,
            Code::PermissionDenied => ErrorKind::PermissionDenied,
            Code::ResourceExhausted => ErrorKind::ResourceExhausted,
            Code::Unavailable | Code::Cancelled => ErrorKind::Unavailable,
            Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            _ => ErrorKind::Internal,
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::DeadlineExceeded)
    }
}

/// Implemented by every crate's error enum.
pub trait ServiceError: std::error::Error {
    fn kind(&self) -> ErrorKind;

    /// Stable SCREAMING_SNAKE_CASE code, for example `CREDENTIAL_NOT_FOUND`.
    fn reason(&self) -> &'static str;

    /// How long the caller should wait before trying again, sent as a google.rpc
    /// `RetryInfo` detail (a partner's quota that resets in hours, say); `None` for most.
    fn retry_delay(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Builds the status for an error. Internal errors are logged here with their detail and leave
/// with a generic message, so database text and the like never reach a client.
pub fn to_status<E: ServiceError + ?Sized>(error: &E) -> Status {
    let kind = error.kind();
    let reason = error.reason();
    let message = if kind == ErrorKind::Internal {
        tracing::error!(error = %error, reason, "internal error");
        "internal error".to_owned()
    } else {
        error.to_string()
    };
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    if let Some(delay) = error.retry_delay() {
        details.set_retry_info(Some(delay));
    }
    Status::with_error_details(kind.grpc_code(), message, details)
}

/// The `RetryInfo` delay a status carries, when its sender asked for one.
pub fn retry_delay_of(status: &Status) -> Option<std::time::Duration> {
    status.get_error_details().retry_info()?.retry_delay
}

/// The reason code carried by a status, when it came from a Plugboard service.
pub fn reason_of(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    details.error_info().map(|info| info.reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Sample {
        Missing,
        Broken,
    }

    impl std::fmt::Display for Sample {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Sample::Missing => write!(f, "credential for connection c1 not found"),
                Sample::Broken => write!(f, "database said: relation secrets does not exist"),
            }
        }
    }

    impl std::error::Error for Sample {}

    impl ServiceError for Sample {
        fn kind(&self) -> ErrorKind {
            match self {
                Sample::Missing => ErrorKind::NotFound,
                Sample::Broken => ErrorKind::Internal,
            }
        }

        fn reason(&self) -> &'static str {
            match self {
                Sample::Missing => "CREDENTIAL_NOT_FOUND",
                Sample::Broken => "STORAGE_FAILED",
            }
        }
    }

    #[test]
    fn status_carries_code_message_and_reason() {
        let status = to_status(&Sample::Missing);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "credential for connection c1 not found");
        assert_eq!(reason_of(&status).as_deref(), Some("CREDENTIAL_NOT_FOUND"));
    }

    #[derive(Debug)]
    struct QuotaUsedUp;

    impl std::fmt::Display for QuotaUsedUp {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "the partner's daily quota is used up")
        }
    }

    impl std::error::Error for QuotaUsedUp {}

    impl ServiceError for QuotaUsedUp {
        fn kind(&self) -> ErrorKind {
            ErrorKind::ResourceExhausted
        }

        fn reason(&self) -> &'static str {
            "PARTNER_QUOTA_EXHAUSTED"
        }

        fn retry_delay(&self) -> Option<std::time::Duration> {
            Some(std::time::Duration::from_secs(3 * 3600))
        }
    }

    #[test]
    fn a_retry_delay_travels_with_the_status() {
        let status = to_status(&QuotaUsedUp);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            retry_delay_of(&status),
            Some(std::time::Duration::from_secs(3 * 3600))
        );
        assert_eq!(
            reason_of(&status).as_deref(),
            Some("PARTNER_QUOTA_EXHAUSTED")
        );
        assert_eq!(retry_delay_of(&to_status(&Sample::Missing)), None);
    }

    #[test]
    fn internal_detail_never_leaves() {
        let status = to_status(&Sample::Broken);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert_eq!(reason_of(&status).as_deref(), Some("STORAGE_FAILED"));
    }

    #[test]
    fn codes_round_trip_through_kinds() {
        for kind in [
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_code(kind.grpc_code()), kind);
        }
    }
}
