//! Canonical records between their wire form and their stored form.
//!
//! The body is stored as the JSON of its canonical message (the same JSON mapping specs
//! produce), so the store stays readable with plain SQL and survives additive model changes.

use std::collections::BTreeMap;

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::common::v1::canonical_record::Body;

use crate::error::Error;
use crate::store::StoredRecord;

/// The stored form of a mapped record.
/// The canonical entities a record can be, as `entity` names them.
pub const ENTITIES: &[&str] = &[
    "job",
    "candidate",
    "application",
    "placement",
    "worker",
    "timesheet",
    "job_posting",
    "parsed_resume",
];

pub fn to_stored(record: &CanonicalRecord, updated_at: &str) -> Result<StoredRecord, Error> {
    let (body_json, custom_fields_json) = stored_json(record)?;
    Ok(StoredRecord {
        entity: record.entity.clone(),
        external_id: record.external_id.clone(),
        content_hash: record.content_hash.clone(),
        body_json,
        custom_fields_json,
        raw_payload_json: record.raw_payload_json.clone(),
        updated_at: updated_at.to_owned(),
    })
}

/// [`to_stored`] taking the record, so its strings (the raw payload is most of a record) move
/// instead of being copied.
pub fn into_stored(record: CanonicalRecord, updated_at: &str) -> Result<StoredRecord, Error> {
    let (body_json, custom_fields_json) = stored_json(&record)?;
    Ok(StoredRecord {
        entity: record.entity,
        external_id: record.external_id,
        content_hash: record.content_hash,
        body_json,
        custom_fields_json,
        raw_payload_json: record.raw_payload_json,
        updated_at: updated_at.to_owned(),
    })
}

/// The body and the custom fields of `record` as stored: JSON text.
fn stored_json(record: &CanonicalRecord) -> Result<(String, String), Error> {
    let body_json = match &record.body {
        Some(Body::Job(job)) => serde_json::to_string(job),
        Some(Body::Candidate(candidate)) => serde_json::to_string(candidate),
        Some(Body::Application(application)) => serde_json::to_string(application),
        Some(Body::Placement(placement)) => serde_json::to_string(placement),
        Some(Body::Worker(worker)) => serde_json::to_string(worker),
        Some(Body::Timesheet(timesheet)) => serde_json::to_string(timesheet),
        Some(Body::JobPosting(posting)) => serde_json::to_string(posting),
        Some(Body::ParsedResume(resume)) => serde_json::to_string(resume),
        None => Ok("{}".to_owned()),
    }
    .map_err(|e| Error::Corrupt(format!("canonical body: {e}")))?;
    let custom_fields_json = serde_json::to_string(&record.custom_fields)
        .map_err(|e| Error::Corrupt(format!("custom fields: {e}")))?;
    Ok((body_json, custom_fields_json))
}

/// The wire form of a stored record.
pub fn from_stored(record: StoredRecord, connection_id: &str) -> Result<CanonicalRecord, Error> {
    let corrupt = |e: serde_json::Error| {
        Error::Corrupt(format!(
            "{} record {}: {e}",
            record.entity, record.external_id
        ))
    };
    let body = match record.entity.as_str() {
        "job" => Some(Body::Job(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "candidate" => Some(Body::Candidate(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "application" => Some(Body::Application(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "placement" => Some(Body::Placement(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "worker" => Some(Body::Worker(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "timesheet" => Some(Body::Timesheet(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "job_posting" => Some(Body::JobPosting(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        "parsed_resume" => Some(Body::ParsedResume(
            serde_json::from_str(&record.body_json).map_err(corrupt)?,
        )),
        _ => None,
    };
    let custom_fields: BTreeMap<String, String> =
        serde_json::from_str(&record.custom_fields_json).map_err(corrupt)?;
    let personal_data_fields = serde_json::from_str(&record.body_json)
        .map(|body| plugboard_proto::personal_data::set_in(&record.entity, &body))
        .map_err(corrupt)?;
    Ok(CanonicalRecord {
        entity: record.entity,
        external_id: record.external_id,
        body,
        custom_fields,
        raw_payload_json: record.raw_payload_json,
        content_hash: record.content_hash,
        connection_id: connection_id.to_owned(),
        updated_at: record.updated_at,
        // Looked up from mapping when answered (see `persons`).
        person_id: String::new(),
        personal_data_fields,
    })
}

#[cfg(test)]
mod tests {
    use plugboard_proto::common::v1::{Candidate, Money, Rate};

    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let record = CanonicalRecord {
            entity: "candidate".into(),
            external_id: "42".into(),
            body: Some(Body::Candidate(Candidate {
                first_name: "Ada".into(),
                skills: vec!["rust".into()],
                desired_pay: Some(Rate {
                    money: Some(Money {
                        amount: "55.00".into(),
                        currency: "USD".into(),
                    }),
                    period: "hour".into(),
                }),
                ..Candidate::default()
            })),
            custom_fields: BTreeMap::from([("clearance".into(), "sc".into())]),
            raw_payload_json: "{\"id\":42}".into(),
            content_hash: "abc".into(),
            connection_id: "c1".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            person_id: String::new(),
            personal_data_fields: vec!["first_name".into(), "desired_pay".into()],
        };
        let stored = to_stored(&record, "2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(from_stored(stored, "c1").unwrap(), record);
    }
}
