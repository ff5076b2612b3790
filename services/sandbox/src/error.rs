//! The sandbox's error type.

/// Why the sandbox stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox http server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("invalid TLS settings: {0}")]
    Tls(String),
}

impl plugboard_runtime::process::RunError for Error {
    fn is_configuration(&self) -> bool {
        matches!(self, Error::Tls(_))
    }
}
