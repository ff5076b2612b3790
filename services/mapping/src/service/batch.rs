//! One batch, record by record: every input gets its own outcome.

use std::sync::Arc;

use plugboard_proto::mapping::v1::{TransformInput, TransformResult, transform_result::Outcome};

use crate::spec::{CompiledSpec, FieldError};

/// With `omit_raw_payloads` the records carry no raw payload: the caller keeps the ones it sent.
pub(super) fn inbound(
    spec: &Arc<CompiledSpec>,
    inputs: Vec<TransformInput>,
    connection_id: &str,
    omit_raw_payloads: bool,
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
                let raw_payload_json = if omit_raw_payloads {
                    String::new()
                } else {
                    input.payload_json
                };
                let record = mapped.into_canonical(raw_payload_json, connection_id.to_owned());
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
pub(super) fn outbound(
    spec: &Arc<CompiledSpec>,
    inputs: Vec<TransformInput>,
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

fn failed(external_id: String, error: FieldError) -> TransformResult {
    tracing::debug!(external_id = %external_id, field = %error.field_path, "record did not map");
    TransformResult {
        external_id,
        outcome: Some(Outcome::Error(error.into_proto())),
    }
}
