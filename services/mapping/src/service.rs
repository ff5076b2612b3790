//! The mapping domain: batch transforms, spec validation and listing, without gRPC.

use std::sync::Arc;

use plugboard_proto::mapping::v1::{
    Direction as WireDirection, ListSpecsResponse, SpecSummary, TransformRequest,
    TransformResponse, TransformResult, ValidateSpecResponse, transform_result::Outcome,
};

use crate::catalog::{RegistryClient, SpecCatalog};
use crate::error::Error;
use crate::spec::{CompiledSpec, Direction, Entity};

/// Maps partner records with the specs the registry holds for each connector.
pub struct Mapper {
    catalog: SpecCatalog,
}

impl Mapper {
    pub(crate) fn new(registry: RegistryClient) -> Mapper {
        Mapper {
            catalog: SpecCatalog::new(registry),
        }
    }

    /// One result per input, in order; a bad record yields a field error and never fails the
    /// batch. Errors are for the batch as a whole: unknown spec, broken spec, outbound.
    pub async fn transform(&self, request: TransformRequest) -> Result<TransformResponse, Error> {
        let direction = match WireDirection::try_from(request.direction) {
            Ok(WireDirection::Inbound) => Direction::Inbound,
            Ok(WireDirection::Outbound) => return Err(Error::OutboundNotSupported),
            _ => {
                return Err(Error::InvalidArgument(
                    "direction must be INBOUND or OUTBOUND".to_owned(),
                ));
            }
        };
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
        let specs = self
            .catalog
            .specs(&request.connector, &request.connector_version)
            .await?;
        let spec = specs.find(entity, direction).ok_or_else(not_found)?;

        let connection_id = request.connection_id;
        let inputs = request.inputs;
        // Mapping is CPU work proportional to the batch: keep it off the async workers.
        let results =
            tokio::task::spawn_blocking(move || transform_batch(&spec, inputs, &connection_id))
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
            Err(error) => {
                tracing::debug!(external_id = %input.external_id, field = %error.field_path, "record did not map");
                TransformResult {
                    external_id: input.external_id,
                    outcome: Some(Outcome::Error(error.into_proto())),
                }
            }
        })
        .collect()
}
