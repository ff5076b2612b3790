//! The mapping domain, without gRPC: batch transforms, spec validation and listing
//! (here), tenant overrides (`tenant_overrides`), identity across systems (`persons`), the
//! per-record loops (`batch`).

mod batch;
mod persons;
mod tenant_overrides;

use std::sync::Arc;

use plugboard_proto::mapping::v1::{
    Direction as WireDirection, ListSpecsResponse, SpecSummary, TransformRequest,
    TransformResponse, ValidateSpecResponse, transform_result::Outcome,
};

use crate::catalog::{ConnectorSpecs, RegistryClient, SpecCatalog};
use crate::error::Error;
use crate::identity::Identities;
use crate::overrides::Overrides;
use crate::spec::{CompiledSpec, Direction, Entity};
use crate::store::Store;

/// Maps records with the specs the registry holds for each connector, and each tenant's
/// overrides of them.
pub struct Mapper {
    catalog: SpecCatalog,
    overrides: Overrides,
    identities: Identities,
}

impl Mapper {
    pub(crate) fn new(registry: RegistryClient, store: Store) -> Mapper {
        Mapper {
            catalog: SpecCatalog::new(registry),
            identities: Identities::new(store.clone()),
            overrides: Overrides::new(store),
        }
    }

    /// The connector's specs for records of `connector_version`, with every tenant's overrides
    /// checked against them before anything uses them.
    async fn specs(
        &self,
        connector: &str,
        connector_version: &str,
    ) -> Result<Arc<ConnectorSpecs>, Error> {
        let specs = self.catalog.specs(connector, connector_version).await?;
        self.overrides.check_all(&specs).await?;
        Ok(specs)
    }

    /// Notices new versions of the connectors tenants override, and checks the overrides
    /// against them, before a transform asks: run on a timer by [`crate::run`].
    pub(crate) async fn check_overridden_connectors(&self) -> Result<(), Error> {
        for connector in self.overrides.store().connectors_with_overrides().await? {
            let specs = match self.catalog.refresh(&connector).await {
                Ok(specs) => specs,
                // A connector that is gone, or whose new specs do not compile, is reported by
                // the calls that need it; the others are still checked.
                Err(error) => {
                    tracing::debug!(connector, error = %error, "cannot refresh connector specs");
                    continue;
                }
            };
            self.overrides.check_all(&specs).await?;
        }
        Ok(())
    }

    /// The spec for `entity` and `direction` as `tenant_id` sees it.
    async fn spec_for(
        &self,
        tenant_id: &str,
        connector: &str,
        connector_version: &str,
        entity: Entity,
        direction: Direction,
    ) -> Result<Option<Arc<CompiledSpec>>, Error> {
        let specs = self.specs(connector, connector_version).await?;
        self.overrides
            .apply(tenant_id, &specs, entity, direction)
            .await
    }

    /// One result per input, in order; a bad record yields a field error and never fails the
    /// batch. Errors are for the batch as a whole: unknown spec, broken spec or override.
    /// The caller tenant's override, if any, applies, in either direction.
    pub async fn transform(
        &self,
        tenant_id: &str,
        request: TransformRequest,
    ) -> Result<TransformResponse, Error> {
        let direction = parse_direction(request.direction)?;
        if request.connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        if request.inputs.is_empty() {
            return Ok(TransformResponse::default());
        }
        let not_found = || Error::SpecNotFound {
            connector: request.connector.clone(),
            entity: request.entity.clone(),
            direction: direction.as_str(),
        };
        let entity = Entity::parse(&request.entity).ok_or_else(not_found)?;
        let spec = self
            .spec_for(
                tenant_id,
                &request.connector,
                &request.connector_version,
                entity,
                direction,
            )
            .await?
            .ok_or_else(not_found)?;

        let resolve_persons = request.resolve_persons && direction == Direction::Inbound;
        if resolve_persons && request.connection_id.is_empty() {
            return Err(Error::InvalidArgument(
                "resolve_persons needs the connection_id".to_owned(),
            ));
        }
        let omit_raw_payloads = request.omit_raw_payloads && direction == Direction::Inbound;
        let connection_id = request.connection_id;
        let inputs = request.inputs;
        // Mapping is CPU work proportional to the batch: keep it off the async workers.
        let (results, person_keys) = match direction {
            Direction::Inbound => {
                let persons_of = resolve_persons.then(|| request.connector.clone());
                let mapped = batch::inbound_in_halves(
                    spec,
                    inputs,
                    connection_id.clone(),
                    omit_raw_payloads,
                    persons_of,
                )
                .await?;
                (mapped.results, mapped.person_keys)
            }
            Direction::Outbound => {
                let results = tokio::task::spawn_blocking(move || batch::outbound(&spec, inputs))
                    .await
                    .map_err(|error| Error::Task(error.to_string()))?;
                (results, Vec::new())
            }
        };
        let failed = results
            .iter()
            .filter(|result| matches!(result.outcome, Some(Outcome::Error(_))))
            .count();
        tracing::debug!(records = results.len(), failed, "transformed a batch");
        if resolve_persons {
            let mapped = batch::mapped(&results);
            self.link_mapped(
                tenant_id,
                &connection_id,
                &request.connector,
                mapped,
                person_keys,
            )
            .await?;
        }
        Ok(TransformResponse {
            results,
            persons_resolved: resolve_persons,
            raw_payloads_omitted: omit_raw_payloads,
        })
    }

    /// Compiles `yaml` and reports every problem, without storing anything.
    pub fn validate_spec(name: &str, yaml: &str) -> ValidateSpecResponse {
        match CompiledSpec::compile(name, yaml) {
            Ok(_) => ValidateSpecResponse {
                valid: true,
                problems: Vec::new(),
            },
            Err(problems) => ValidateSpecResponse {
                valid: false,
                problems: problems
                    .into_iter()
                    .map(|problem| plugboard_proto::mapping::v1::SpecProblem {
                        file: problem.file,
                        line: problem.line,
                        message: problem.message,
                    })
                    .collect(),
            },
        }
    }

    /// The specs the registry holds for `connector`, at its registered version.
    pub async fn list_specs(&self, connector: &str) -> Result<ListSpecsResponse, Error> {
        if connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        let specs = self.specs(connector, "").await?;
        Ok(ListSpecsResponse {
            specs: specs
                .specs
                .iter()
                .map(|spec| SpecSummary {
                    connector: specs.connector.clone(),
                    connector_version: specs.version.clone(),
                    entity: spec.entity().as_str().to_owned(),
                    direction: match spec.direction() {
                        Direction::Inbound => WireDirection::Inbound,
                        Direction::Outbound => WireDirection::Outbound,
                    } as i32,
                    field_count: u32::try_from(spec.field_count()).unwrap_or(u32::MAX),
                })
                .collect(),
        })
    }
}

fn parse_direction(direction: i32) -> Result<Direction, Error> {
    match WireDirection::try_from(direction) {
        Ok(WireDirection::Inbound) => Ok(Direction::Inbound),
        Ok(WireDirection::Outbound) => Ok(Direction::Outbound),
        _ => Err(Error::InvalidArgument(
            "direction must be INBOUND or OUTBOUND".to_owned(),
        )),
    }
}
