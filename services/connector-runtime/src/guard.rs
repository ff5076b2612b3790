//! The target guard keeps partner requests off internal networks; it lives in
//! [`plugboard_runtime::target_guard`], shared with credentials' token calls. Here: what its
//! refusals mean for a connector.

pub use plugboard_runtime::target_guard::{GuardError, check_target};

impl From<GuardError> for crate::Error {
    fn from(error: GuardError) -> crate::Error {
        match error {
            GuardError::Refused { url, reason } => crate::Error::TargetNotAllowed { url, reason },
            GuardError::Unresolvable(message) => crate::Error::PartnerUnavailable(message),
        }
    }
}
