//! The mapping domain: batch transforms, spec validation and listing, without gRPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use plugboard_proto::mapping::v1::{
    Direction as WireDirection, ListSpecsResponse, ListTenantOverridesResponse,
    PutTenantOverrideRequest, PutTenantOverrideResponse, SpecSummary, TenantOverride,
    TransformRequest, TransformResponse, TransformResult, ValidateSpecResponse,
    transform_result::Outcome,
};

use crate::catalog::{RegistryClient, SpecCatalog};
use crate::error::Error;
use crate::spec::{CompiledSpec, Direction, Entity, compile_with_override};
use crate::store::{OverrideKey, OverrideRow, Store};

/// A spec with one tenant's override laid over it: per override, per connector version and
/// override version (both only grow, so an entry never goes stale; it is just not used again).
type OverrideCache = HashMap<(OverrideKey, String, i64), Arc<CompiledSpec>>;

/// Maps partner records with the specs the registry holds for each connector, and each
/// tenant's overrides of them.
pub struct Mapper {
    catalog: SpecCatalog,
    store: Store,
    overridden: Mutex<OverrideCache>,
}

impl Mapper {
    pub(crate) fn new(registry: RegistryClient, store: Store) -> Mapper {
        Mapper {
            catalog: SpecCatalog::new(registry),
            store,
            overridden: Mutex::new(HashMap::new()),
        }
    }

    /// The spec for `entity` and `direction` as `tenant_id` sees it: the connector's, with the
    /// tenant's newest override laid over it.
    async fn spec_for(
        &self,
        tenant_id: &str,
        connector: &str,
        connector_version: &str,
        entity: Entity,
        direction: Direction,
    ) -> Result<Option<Arc<CompiledSpec>>, Error> {
        let specs = self.catalog.specs(connector, connector_version).await?;
        let Some(spec) = specs.find(entity, direction) else {
            return Ok(None);
        };
        let key = OverrideKey {
            tenant_id: tenant_id.to_owned(),
            connector: connector.to_owned(),
            entity: entity.as_str().to_owned(),
            direction: direction.as_str().to_owned(),
        };
        let Some(row) = self.store.latest(&key).await? else {
            return Ok(Some(spec));
        };
        let cache_key = (key, specs.version.clone(), row.version);
        if let Some(cached) = self.cache().get(&cache_key) {
            return Ok(Some(cached.clone()));
        }
        // An override was valid against the spec when it was saved; a new connector version
        // can break it. Failing the batch says so, where mapping without it would silently
        // drop the tenant's fields.
        let name = override_name(&row);
        let compiled = Arc::new(
            compile_with_override(&spec, &name, &row.yaml).map_err(Error::InvalidOverride)?,
        );
        self.cache().insert(cache_key, compiled.clone());
        Ok(Some(compiled))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, OverrideCache> {
        // A panic while holding the lock cannot leave the map inconsistent (inserts are whole).
        self.overridden
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates `request` against the connector's current spec and stores it as the next
    /// version of the caller tenant's override; a bad override is refused with its problems.
    pub async fn put_tenant_override(
        &self,
        tenant_id: &str,
        request: PutTenantOverrideRequest,
    ) -> Result<PutTenantOverrideResponse, Error> {
        let direction = parse_direction(request.direction)?;
        if request.connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        let entity = Entity::parse(&request.entity).ok_or_else(|| {
            Error::InvalidArgument(format!("unknown entity {:?}", request.entity))
        })?;
        let specs = self.catalog.specs(&request.connector, "").await?;
        let spec = specs
            .find(entity, direction)
            .ok_or_else(|| Error::SpecNotFound {
                connector: request.connector.clone(),
                entity: request.entity.clone(),
                direction: direction.as_str(),
            })?;
        let name = format!(
            "override of {} {} {}",
            request.connector,
            entity.as_str(),
            direction.as_str()
        );
        let yaml = request.yaml;
        let checked = {
            let spec = spec.clone();
            let yaml = yaml.clone();
            // Compiling is CPU work; keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                compile_with_override(&spec, &name, &yaml).map(|_| ())
            })
            .await
            .map_err(|error| Error::Task(error.to_string()))?
        };
        checked.map_err(Error::InvalidOverride)?;
        let key = OverrideKey {
            tenant_id: tenant_id.to_owned(),
            connector: request.connector,
            entity: entity.as_str().to_owned(),
            direction: direction.as_str().to_owned(),
        };
        let expected = (request.expected_version > 0).then(|| i64::from(request.expected_version));
        let row = self.store.insert_next(&key, &yaml, expected).await?;
        tracing::info!(
            connector = %row.connector,
            entity = %row.entity,
            version = row.version,
            "saved a tenant override"
        );
        Ok(PutTenantOverrideResponse {
            saved: Some(to_wire(row)),
        })
    }

    /// Every version of the caller tenant's overrides of `connector`, newest first.
    pub async fn list_tenant_overrides(
        &self,
        tenant_id: &str,
        connector: &str,
    ) -> Result<ListTenantOverridesResponse, Error> {
        if connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        let rows = self.store.list(tenant_id, connector).await?;
        Ok(ListTenantOverridesResponse {
            overrides: rows.into_iter().map(to_wire).collect(),
        })
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

        let connection_id = request.connection_id;
        let inputs = request.inputs;
        // Mapping is CPU work proportional to the batch: keep it off the async workers.
        let results = tokio::task::spawn_blocking(move || match direction {
            Direction::Inbound => transform_batch(&spec, inputs, &connection_id),
            Direction::Outbound => transform_batch_outbound(&spec, inputs),
        })
        .await
        .map_err(|error| Error::Task(error.to_string()))?;
        let failed = results
            .iter()
            .filter(|result| matches!(result.outcome, Some(Outcome::Error(_))))
            .count();
        tracing::debug!(records = results.len(), failed, "transformed a batch");
        Ok(TransformResponse { results })
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
        let specs = self.catalog.specs(connector, "").await?;
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

fn override_name(row: &OverrideRow) -> String {
    format!(
        "override v{} of {} {} {}",
        row.version, row.connector, row.entity, row.direction
    )
}

fn to_wire(row: OverrideRow) -> TenantOverride {
    TenantOverride {
        direction: match row.direction.as_str() {
            "outbound" => WireDirection::Outbound,
            _ => WireDirection::Inbound,
        } as i32,
        connector: row.connector,
        entity: row.entity,
        yaml: row.yaml,
        version: u32::try_from(row.version).unwrap_or(u32::MAX),
        created_at: row.created_at,
    }
}

fn transform_batch(
    spec: &Arc<CompiledSpec>,
    inputs: Vec<plugboard_proto::mapping::v1::TransformInput>,
    connection_id: &str,
) -> Vec<TransformResult> {
    inputs
        .into_iter()
        .map(|input| match spec.transform(&input.payload_json) {
            Ok(mapped) => {
                // The caller correlates by the id it sent; the record carries the spec's.
                let external_id = if input.external_id.is_empty() {
                    mapped.external_id.clone()
                } else {
                    input.external_id
                };
                let record = mapped.into_canonical(input.payload_json, connection_id.to_owned());
                TransformResult {
                    external_id,
                    outcome: Some(Outcome::Record(record)),
                }
            }
            Err(error) => failed(input.external_id, error),
        })
        .collect()
}

/// Canonical records (or canonical documents) to partner payloads, one result per input.
fn transform_batch_outbound(
    spec: &Arc<CompiledSpec>,
    inputs: Vec<plugboard_proto::mapping::v1::TransformInput>,
) -> Vec<TransformResult> {
    inputs
        .into_iter()
        .map(|input| {
            let mapped = match &input.record {
                Some(record) => spec.transform_record(record, &input.external_id),
                None => spec.transform_outbound(&input.payload_json, &input.external_id),
            };
            match mapped {
                Ok(partner) => TransformResult {
                    external_id: input.external_id,
                    outcome: Some(Outcome::PartnerRecord(partner.into_proto())),
                },
                Err(error) => failed(input.external_id, error),
            }
        })
        .collect()
}

fn failed(external_id: String, error: crate::spec::FieldError) -> TransformResult {
    tracing::debug!(external_id = %external_id, field = %error.field_path, "record did not map");
    TransformResult {
        external_id,
        outcome: Some(Outcome::Error(error.into_proto())),
    }
}
