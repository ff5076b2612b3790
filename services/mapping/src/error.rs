//! The mapping service's one error type.

use plugboard_proto::error::{ErrorKind, ServiceError};

use crate::spec::SpecProblem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no {direction} mapping spec for entity {entity:?} of connector {connector:?}")]
    SpecNotFound {
        connector: String,
        entity: String,
        direction: &'static str,
    },
    #[error("connector {0:?} is not registered, so it has no mapping specs")]
    ConnectorNotFound(String),
    #[error(
        "mapping specs of connector {connector} do not compile: {}",
        list(problems)
    )]
    InvalidSpec {
        connector: String,
        problems: Vec<SpecProblem>,
    },
    #[error("the registry is unavailable: {0}")]
    RegistryUnavailable(String),
    #[error("the registry call failed: {0}")]
    Registry(String),
    #[error("a transform task failed: {0}")]
    Task(String),
    #[error("invalid mesh key: {0}")]
    Identity(#[from] plugboard_runtime::identity::IdentityError),
    #[error("invalid registry address: {0}")]
    RegistryAddress(#[source] tonic::transport::Error),
    #[error(transparent)]
    Serve(#[from] plugboard_runtime::server::ServeError),
    #[error("the tenant override is refused: {}", list(.0))]
    InvalidOverride(Vec<SpecProblem>),
    #[error("the override changed meanwhile: expected version {expected}, the latest is {latest}")]
    OverrideConflict { expected: i64, latest: i64 },
    #[error("record {entity} {external_id} of connection {connection_id} was never resolved")]
    RecordNotResolved {
        connection_id: String,
        entity: String,
        external_id: String,
    },
    #[error("no person {0}")]
    PersonNotFound(String),
    #[error("the two records are not linked directly; unlink the links that join them")]
    NotLinked,
    #[error("storage failed: {0}")]
    Storage(#[source] sqlx::Error),
    #[error("cannot open storage: {0}")]
    Open(#[from] plugboard_runtime::storage::StorageError),
}

fn list(problems: &[SpecProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

impl ServiceError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::InvalidOverride(_) => ErrorKind::InvalidArgument,
            Error::OverrideConflict { .. } => ErrorKind::FailedPrecondition,
            Error::SpecNotFound { .. }
            | Error::ConnectorNotFound(_)
            | Error::RecordNotResolved { .. }
            | Error::PersonNotFound(_) => ErrorKind::NotFound,
            Error::NotLinked => ErrorKind::FailedPrecondition,
            Error::InvalidSpec { .. } => ErrorKind::FailedPrecondition,
            Error::RegistryUnavailable(_) => ErrorKind::Unavailable,
            Error::Registry(_)
            | Error::Task(_)
            | Error::Identity(_)
            | Error::RegistryAddress(_)
            | Error::Serve(_)
            | Error::Storage(_)
            | Error::Open(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::SpecNotFound { .. } | Error::ConnectorNotFound(_) => "SPEC_NOT_FOUND",
            Error::InvalidSpec { .. } => "SPEC_INVALID",
            Error::RegistryUnavailable(_) => "REGISTRY_UNAVAILABLE",
            Error::Registry(_) => "REGISTRY_FAILED",
            Error::Task(_) => "TRANSFORM_TASK_FAILED",
            Error::Identity(_) => "MESH_KEY_INVALID",
            Error::RegistryAddress(_) => "REGISTRY_ADDRESS_INVALID",
            Error::Serve(_) => "SERVE_FAILED",
            Error::InvalidOverride(_) => "OVERRIDE_INVALID",
            Error::OverrideConflict { .. } => "OVERRIDE_CONFLICT",
            Error::RecordNotResolved { .. } => "RECORD_NOT_RESOLVED",
            Error::PersonNotFound(_) => "PERSON_NOT_FOUND",
            Error::NotLinked => "RECORDS_NOT_LINKED",
            Error::Storage(_) => "STORAGE_FAILED",
            Error::Open(_) => "STORAGE_OPEN_FAILED",
        }
    }
}

impl plugboard_runtime::process::RunError for Error {
    fn is_configuration(&self) -> bool {
        match self {
            Error::Open(error) => error.is_configuration(),
            Error::Identity(_) | Error::RegistryAddress(_) => true,
            _ => false,
        }
    }
}
