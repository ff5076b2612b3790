//! Inbound transforms: one partner record to a typed canonical record.

use std::collections::BTreeMap;

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{
    Application, Candidate, CanonicalRecord, Job, JobPosting, ParsedResume, Placement, Timesheet,
    Worker,
};
use plugboard_proto::content_hash;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::compiled::{CompiledSpec, partner_value};
use super::record::Record;
use super::shape::ShapeDeserializer;
use super::{Direction, Entity, FieldError, truncate};
use crate::canonical;

#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    pub entity: Entity,
    pub external_id: String,
    pub body: Body,
    pub custom_fields: BTreeMap<String, String>,
    /// `pb:` and the SHA-256 hex of the canonical body and the custom fields (see
    /// [`plugboard_proto::content_hash`]).
    pub content_hash: String,
}

impl MappedRecord {
    /// The record as stored and sent: with the partner payload and the connection it came from.
    pub fn into_canonical(
        self,
        raw_payload_json: String,
        connection_id: String,
    ) -> CanonicalRecord {
        let updated_at = match &self.body {
            Body::Job(job) => job.updated_at.clone(),
            Body::Candidate(candidate) => candidate.updated_at.clone(),
            Body::Application(application) => application.updated_at.clone(),
            Body::Placement(placement) => placement.updated_at.clone(),
            Body::Worker(worker) => worker.updated_at.clone(),
            Body::Timesheet(timesheet) => timesheet.updated_at.clone(),
            Body::JobPosting(posting) => posting.updated_at.clone(),
            Body::ParsedResume(resume) => resume.updated_at.clone(),
        };
        CanonicalRecord {
            entity: self.entity.as_str().to_owned(),
            external_id: self.external_id,
            body: Some(self.body),
            custom_fields: self.custom_fields,
            raw_payload_json,
            content_hash: self.content_hash,
            connection_id,
            updated_at,
            // Identity is resolved per page by ResolvePersons, not per record here.
            person_id: String::new(),
            // Sync lists them when it answers a stored record.
            personal_data_fields: Vec::new(),
        }
    }
}

impl CompiledSpec {
    /// Maps one partner record (JSON text) to a canonical record, or says which field failed.
    pub fn transform(&self, payload_json: &str) -> Result<MappedRecord, FieldError> {
        if self.direction != Direction::Inbound {
            return Err(FieldError {
                field_path: "$".to_owned(),
                partner_value: String::new(),
                message: format!(
                    "{} is an outbound spec: map canonical records with transform_outbound",
                    self.name
                ),
            });
        }
        // One pass checks the payload is JSON and finds the values the spec's paths read.
        let input = Record::parse(payload_json, &self.paths).map_err(|message| FieldError {
            field_path: "$".to_owned(),
            partner_value: truncate(payload_json),
            message: format!("invalid JSON payload: {message}"),
        })?;

        let external_id = self.external_id_value(&input)?.ok_or_else(|| {
            FieldError::new(
                "external_id",
                &partner_value(&self.external_id, &input),
                "the record has no external id".to_owned(),
            )
        })?;
        let mut values = self.field_values(&input)?;
        // The typed body is read straight from the field values (no intermediate JSON map);
        // a body that does not fit is mapped again to explain where (mapping is
        // deterministic).
        let body = match read_body_owned(
            self.entity,
            ShapeDeserializer::new(&self.shape, &mut values),
        ) {
            Ok(body) => body,
            Err(()) => {
                let mapped = self.mapped_object(&input)?;
                let (path, message) = read_body(self.entity, &mapped).err().unwrap_or_default();
                return Err(self.type_error(&path, &message, &mapped, &input));
            }
        };
        canonical::check(&body).map_err(|violation| self.violation_error(violation, &input))?;
        let custom_fields = self.custom_fields_of(&input)?;
        let content_hash = content_hash(&body, &custom_fields);
        Ok(MappedRecord {
            entity: self.entity,
            external_id,
            body,
            custom_fields,
            content_hash,
        })
    }

    fn custom_fields_of(&self, input: &Record<'_>) -> Result<BTreeMap<String, String>, FieldError> {
        let mut custom_fields = BTreeMap::new();
        for (name, expr) in &self.custom_fields {
            let fail = |message: String| {
                FieldError::new(
                    &format!("custom_fields.{name}"),
                    &partner_value(expr, input),
                    message,
                )
            };
            let text = match expr.eval(input).map_err(|message| {
                fail(format!(
                    "jq expression {:?} failed: {message}",
                    expr.source()
                ))
            })? {
                None => continue,
                Some(Value::String(text)) => text,
                Some(scalar @ (Value::Number(_) | Value::Bool(_))) => scalar.to_string(),
                Some(_) => {
                    return Err(fail(
                        "a custom field must be a string, number or boolean".to_owned(),
                    ));
                }
            };
            custom_fields.insert(name.clone(), text);
        }
        Ok(custom_fields)
    }

    /// The error for a record that breaks a rule of the canonical model; the partner value is
    /// the one the spec mapped to that path, or the canonical value the rule is about.
    fn violation_error(&self, violation: canonical::Violation, input: &Record<'_>) -> FieldError {
        let mapped_from = self
            .fields
            .iter()
            .find(|field| field.target == violation.path)
            .and_then(|field| field.expr.as_ref());
        let value = match mapped_from {
            Some(expr) => partner_value(expr, input),
            None => Value::String(violation.value),
        };
        FieldError::new(&violation.path, &value, violation.message)
    }

    /// The error for a mapped value that does not fit the canonical type at `path`.
    fn type_error(
        &self,
        path: &str,
        message: &str,
        mapped: &Value,
        input: &Record<'_>,
    ) -> FieldError {
        let field = self.fields.iter().find(|field| {
            path == field.target
                || path.starts_with(&format!("{}.", field.target))
                || path.starts_with(&format!("{}[", field.target))
        });
        let value = match field {
            Some(field) => match field
                .expr
                .as_ref()
                .filter(|expr| expr.source_path().is_some())
            {
                Some(expr) => partner_value(expr, input),
                None => field
                    .segments
                    .iter()
                    .try_fold(mapped, |value, key| value.get(key))
                    .cloned()
                    .unwrap_or_default(),
            },
            None => Value::Null,
        };
        FieldError::new(
            path,
            &value,
            format!(
                "does not fit the canonical {} type: {message}",
                self.entity.as_str()
            ),
        )
    }
}

fn read<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    // The plain read is the common case; the path-tracking one only runs to explain a failure.
    T::deserialize(value).or_else(|_| {
        serde_path_to_error::deserialize(value)
            .map_err(|error| (error.path().to_string(), error.inner().to_string()))
    })
}

/// [`read_body`] from the shape's deserializer; the error says only that it does not fit.
fn read_body_owned(entity: Entity, value: ShapeDeserializer<'_>) -> Result<Body, ()> {
    fn owned<T: DeserializeOwned>(value: ShapeDeserializer<'_>) -> Result<T, ()> {
        T::deserialize(value).map_err(|_| ())
    }
    Ok(match entity {
        Entity::Job => Body::Job(owned(value)?),
        Entity::Candidate => Body::Candidate(owned(value)?),
        Entity::Application => Body::Application(owned(value)?),
        Entity::Placement => Body::Placement(owned(value)?),
        Entity::Worker => Body::Worker(owned(value)?),
        Entity::Timesheet => Body::Timesheet(owned(value)?),
        Entity::JobPosting => Body::JobPosting(owned(value)?),
        Entity::ParsedResume => Body::ParsedResume(owned(value)?),
    })
}

/// Reads a mapped object into the canonical message for `entity`; on failure the field path
/// and serde's message.
pub(crate) fn read_body(entity: Entity, value: &Value) -> Result<Body, (String, String)> {
    Ok(match entity {
        Entity::Job => Body::Job(read::<Job>(value)?),
        Entity::Candidate => Body::Candidate(read::<Candidate>(value)?),
        Entity::Application => Body::Application(read::<Application>(value)?),
        Entity::Placement => Body::Placement(read::<Placement>(value)?),
        Entity::Worker => Body::Worker(read::<Worker>(value)?),
        Entity::Timesheet => Body::Timesheet(read::<Timesheet>(value)?),
        Entity::JobPosting => Body::JobPosting(read::<JobPosting>(value)?),
        Entity::ParsedResume => Body::ParsedResume(read::<ParsedResume>(value)?),
    })
}

/// Refuses targets that are not canonical fields, or that go below a scalar field.
pub(crate) fn check_target(entity: Entity, segments: &[String]) -> Result<(), String> {
    let probe = segments
        .iter()
        .rev()
        .fold(Value::Null, |value, key| serde_json::json!({ key: value }));
    match read_body(entity, &probe) {
        Ok(_) => Ok(()),
        Err((_, message)) if message.starts_with("unknown field") => Err(format!(
            "not a field of the canonical {}: {message}",
            entity.as_str()
        )),
        Err((path, message)) if path != segments.join(".") => Err(format!(
            "{path} is not an object in the canonical {}: {message}",
            entity.as_str()
        )),
        Err(_) => Ok(()),
    }
}

/// The content hash ([`content_hash::PROTOBUF_SCHEME`]): SHA-256 of the body's protobuf
/// encoding, whose oneof field number names the entity, then each custom field's name and
/// value, length-prefixed and sorted by name. Canonical bodies have no map fields (a test in
/// plugboard-proto keeps it so), so equal bodies encode to equal bytes. The encoding is about a
/// third the size of the body's JSON, which this hashed before, and cheaper to write.
pub(super) fn content_hash(body: &Body, custom_fields: &BTreeMap<String, String>) -> String {
    thread_local! {
        // The encoding is only hashed, never kept: one buffer per thread, reused, saves an
        // allocation per record on the hot path.
        static ENCODED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }
    let digest = ENCODED.with_borrow_mut(|hashed| {
        hashed.clear();
        body.encode(hashed);
        for (name, value) in custom_fields {
            for text in [name, value] {
                prost::encoding::encode_varint(text.len() as u64, hashed);
                hashed.extend_from_slice(text.as_bytes());
            }
        }
        let digest = Sha256::digest(hashed.as_slice());
        // A rare huge record does not keep its buffer for the thread's life.
        if hashed.capacity() > 64 * 1024 {
            *hashed = Vec::with_capacity(1024);
        }
        digest
    });
    let mut digits = [0_u8; 64];
    hex::encode_to_slice(digest, &mut digits).expect("a SHA-256 digest is 32 bytes, 64 hex digits");
    let mut hash = String::with_capacity(content_hash::PROTOBUF_SCHEME.len() + 1 + digits.len());
    hash.push_str(content_hash::PROTOBUF_SCHEME);
    hash.push(':');
    hash.push_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"));
    hash
}
