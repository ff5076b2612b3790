//! One batch, record by record: every input gets its own outcome.

use std::sync::Arc;

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::mapping::v1::{TransformInput, TransformResult, transform_result::Outcome};

use crate::error::Error;
use crate::identity::{self, keys::RecordKey, keys::RecordKeys};
use crate::spec::{CompiledSpec, FieldError};

/// Batches shorter than this are mapped on one thread: a second costs more than it saves.
const SPLIT_FROM: usize = 64;

/// An inbound batch as mapped, and the identity keys of its person records when asked for.
pub(super) struct Inbound {
    pub(super) results: Vec<TransformResult>,
    pub(super) person_keys: Vec<(RecordKey, RecordKeys)>,
}

/// [`inbound`] on blocking threads, a large batch in two halves at once, the results in input
/// order. With `persons_of` (the connector) each half also reads the identity keys of its
/// person records, the same kind of CPU work (every phone number is validated). Why halves:
/// mapping a page is the serial step of a sync run (the runner commits page N while page N+1
/// is mapped), so a second core shortens every page.
pub(super) async fn inbound_in_halves(
    spec: Arc<CompiledSpec>,
    mut inputs: Vec<TransformInput>,
    connection_id: String,
    omit_raw_payloads: bool,
    persons_of: Option<String>,
) -> Result<Inbound, Error> {
    let second = (inputs.len() >= SPLIT_FROM).then(|| inputs.split_off(inputs.len() / 2));
    let half = |inputs: Vec<TransformInput>| {
        let spec = spec.clone();
        let connection_id = connection_id.clone();
        let persons_of = persons_of.clone();
        tokio::task::spawn_blocking(move || {
            let results = inbound(&spec, inputs, &connection_id, omit_raw_payloads);
            let person_keys = match &persons_of {
                Some(connector) => identity::page_keys(&connection_id, connector, mapped(&results)),
                None => Vec::new(),
            };
            Inbound {
                results,
                person_keys,
            }
        })
    };
    let task_failed = |error: tokio::task::JoinError| Error::Task(error.to_string());
    let first = half(inputs);
    let Some(second) = second else {
        return first.await.map_err(task_failed);
    };
    let (first, second) = tokio::join!(first, half(second));
    let mut whole = first.map_err(task_failed)?;
    let second = second.map_err(task_failed)?;
    whole.results.extend(second.results);
    whole.person_keys.extend(second.person_keys);
    Ok(whole)
}

/// The records among `results`, in order.
pub(super) fn mapped(results: &[TransformResult]) -> impl Iterator<Item = &CanonicalRecord> {
    results.iter().filter_map(|result| match &result.outcome {
        Some(Outcome::Record(record)) => Some(record),
        _ => None,
    })
}

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
