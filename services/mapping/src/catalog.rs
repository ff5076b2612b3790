//! Compiled specs per connector, fetched from the registry and cached per connector version.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::registry::v1::{ConnectorManifest, GetConnectorRequest};
use plugboard_runtime::identity::MeshCredentials;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::Error;
use crate::spec::{CompiledSpec, Direction, Entity, SpecProblem};

pub(crate) type RegistryClient =
    RegistryServiceClient<InterceptedService<Channel, MeshCredentials>>;

/// When a request names another version than the registered one (an older instance still
/// running), refetch for that version at most this often, so its batches cannot make every
/// call hit the registry.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// One connector's compiled specs, as of one manifest version.
#[derive(Debug)]
pub struct ConnectorSpecs {
    pub connector: String,
    pub version: String,
    pub specs: Vec<Arc<CompiledSpec>>,
    /// The version the request that caused this fetch asked for.
    requested: String,
    fetched_at: Instant,
}

impl ConnectorSpecs {
    pub fn find(&self, entity: Entity, direction: Direction) -> Option<Arc<CompiledSpec>> {
        self.specs
            .iter()
            .find(|spec| spec.entity() == entity && spec.direction() == direction)
            .cloned()
    }
}

pub(crate) struct SpecCatalog {
    registry: RegistryClient,
    cache: RwLock<HashMap<String, Arc<ConnectorSpecs>>>,
}

impl SpecCatalog {
    pub(crate) fn new(registry: RegistryClient) -> SpecCatalog {
        SpecCatalog {
            registry,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The specs of `connector`; `version` (may be empty) is the version the caller's records
    /// came from. A miss or a newer version fetches and compiles the manifest's specs.
    pub(crate) async fn specs(
        &self,
        connector: &str,
        version: &str,
    ) -> Result<Arc<ConnectorSpecs>, Error> {
        if let Some(cached) = self.cached(connector) {
            let fresh = version.is_empty()
                || cached.version == version
                || (cached.requested == version && cached.fetched_at.elapsed() < REFETCH_INTERVAL);
            if fresh {
                return Ok(cached);
            }
        }
        let fetched = Arc::new(self.fetch(connector, version).await?);
        if !version.is_empty() && fetched.version != version {
            tracing::warn!(
                connector,
                requested = version,
                registered = %fetched.version,
                "mapping with the registered connector version's specs"
            );
        }
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connector.to_owned(), fetched.clone());
        Ok(fetched)
    }

    fn cached(&self, connector: &str) -> Option<Arc<ConnectorSpecs>> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(connector)
            .cloned()
    }

    /// Fetches the registered manifest of `connector` again and, when its version is not the
    /// cached one, compiles and caches its specs. Used to notice new connector versions before
    /// any transform asks for them.
    pub(crate) async fn refresh(&self, connector: &str) -> Result<Arc<ConnectorSpecs>, Error> {
        let manifest = self.fetch_manifest(connector).await?;
        if let Some(cached) = self.cached(connector)
            && cached.version == manifest.version
        {
            return Ok(cached);
        }
        let fetched = Arc::new(self.compile(connector, manifest, "").await?);
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connector.to_owned(), fetched.clone());
        Ok(fetched)
    }

    async fn fetch(&self, connector: &str, requested: &str) -> Result<ConnectorSpecs, Error> {
        let manifest = self.fetch_manifest(connector).await?;
        self.compile(connector, manifest, requested).await
    }

    async fn fetch_manifest(&self, connector: &str) -> Result<ConnectorManifest, Error> {
        let response = self
            .registry
            .clone()
            .get_connector(GetConnectorRequest {
                connector: connector.to_owned(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => Error::ConnectorNotFound(connector.to_owned()),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    Error::RegistryUnavailable(status.message().to_owned())
                }
                _ => Error::Registry(format!("{}: {}", status.code(), status.message())),
            })?;
        response
            .into_inner()
            .connector
            .and_then(|entry| entry.manifest)
            .ok_or_else(|| Error::Registry("GetConnector answered without a manifest".to_owned()))
    }

    async fn compile(
        &self,
        connector: &str,
        manifest: ConnectorManifest,
        requested: &str,
    ) -> Result<ConnectorSpecs, Error> {
        let name = manifest.name.clone();
        let files = manifest.mapping_specs;
        // Compiling runs jaq's compiler over every expression: keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || compile_all(&name, &files))
            .await
            .map_err(|error| Error::Task(error.to_string()))?;
        let specs = compiled.map_err(|problems| Error::InvalidSpec {
            connector: connector.to_owned(),
            problems,
        })?;
        tracing::info!(connector, version = %manifest.version, specs = specs.len(), "compiled mapping specs");
        Ok(ConnectorSpecs {
            connector: connector.to_owned(),
            version: manifest.version,
            specs,
            requested: requested.to_owned(),
            fetched_at: Instant::now(),
        })
    }
}

/// Compiles every spec file of a manifest; one broken file fails them all, because a connector
/// version ships its specs together.
fn compile_all(
    connector: &str,
    files: &[plugboard_proto::registry::v1::MappingSpecFile],
) -> Result<Vec<Arc<CompiledSpec>>, Vec<SpecProblem>> {
    let mut specs: Vec<Arc<CompiledSpec>> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match CompiledSpec::compile(&file.name, &file.yaml) {
            Err(found) => problems.extend(found),
            Ok(spec) => {
                if spec.connector() != connector {
                    problems.push(SpecProblem {
                        file: file.name.clone(),
                        line: crate::spec::line_of_key(&file.yaml, "connector"),
                        message: format!(
                            "the spec is for connector {:?}, not {connector:?}",
                            spec.connector()
                        ),
                    });
                } else if let Some(other) = specs.iter().find(|other| {
                    other.entity() == spec.entity() && other.direction() == spec.direction()
                }) {
                    problems.push(SpecProblem {
                        file: file.name.clone(),
                        line: 0,
                        message: format!(
                            "{} already maps {} {}",
                            other.name(),
                            spec.direction().as_str(),
                            spec.entity().as_str()
                        ),
                    });
                } else {
                    specs.push(Arc::new(spec));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(problems)
    }
}
