//! Outbound transforms: one canonical record to the payload a partner's API takes.
//!
//! An outbound spec is written like an inbound one, with `direction: outbound`: its
//! expressions read the *canonical document* and its `fields` targets are paths in the partner
//! payload. The canonical document is the record's body as JSON, named as in `canonical.proto`
//! (the JSON sync stores), plus `custom_fields` (an object of strings) and `external_id` (the
//! target partner's id for the record; absent for a create). Lookups translate canonical codes
//! into the partner's (`active` to `Active`). Paths an expression reads are checked against the
//! canonical type when the spec compiles, so `.frist_name` is refused, not silently empty.

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::common::v1::canonical_record::Body;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::compiled::CompiledSpec;
use super::expr::Expr;
use super::inbound::{check_target, read_body};
use super::record::Record;
use super::{Direction, Entity, FieldError, truncate};
use crate::canonical;

/// Keys of the canonical document beside the body's own fields.
const CUSTOM_FIELDS: &str = "custom_fields";
const EXTERNAL_ID: &str = "external_id";

/// One canonical record mapped to a partner payload.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerRecord {
    /// The partner's id for the record; empty for a record the partner does not have yet.
    pub external_id: String,
    /// The payload to send: a JSON object, keys sorted.
    pub payload: Value,
    /// SHA-256 hex of the payload's JSON text.
    pub content_hash: String,
}

impl PartnerRecord {
    pub fn payload_json(&self) -> String {
        self.payload.to_string()
    }

    pub fn into_proto(self) -> plugboard_proto::mapping::v1::PartnerRecord {
        plugboard_proto::mapping::v1::PartnerRecord {
            payload_json: self.payload.to_string(),
            external_id: self.external_id,
            content_hash: self.content_hash,
        }
    }
}

impl CompiledSpec {
    /// Maps a canonical record to the partner's payload. `external_id` is the target partner's
    /// id for the record (empty for a create); the record's own id belongs to its source
    /// connection and is not used.
    pub fn transform_record(
        &self,
        record: &CanonicalRecord,
        external_id: &str,
    ) -> Result<PartnerRecord, FieldError> {
        let Some(body) = &record.body else {
            return Err(whole("", "the canonical record has no body".to_owned()));
        };
        let custom_fields = record
            .custom_fields
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        self.outbound_body(body, custom_fields, external_id)
    }

    /// Maps a canonical document (JSON text, see the module docs) to the partner's payload;
    /// a non-empty `external_id` replaces the document's. The document is read into the
    /// canonical type first, so the spec sees what it would see for the same record given as
    /// a [`CanonicalRecord`], and a document that does not fit fails with the path at fault.
    pub fn transform_outbound(
        &self,
        document_json: &str,
        external_id: &str,
    ) -> Result<PartnerRecord, FieldError> {
        let mut document = match serde_json::from_str::<Value>(document_json) {
            Ok(Value::Object(document)) => document,
            Ok(_) => {
                return Err(whole(
                    document_json,
                    "the canonical document must be a JSON object".to_owned(),
                ));
            }
            Err(error) => {
                return Err(whole(
                    document_json,
                    format!("invalid JSON payload: {error}"),
                ));
            }
        };
        let custom_fields = custom_fields_of(document.remove(CUSTOM_FIELDS))?;
        let own_external_id = match document.remove(EXTERNAL_ID) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text,
            Some(other) => {
                return Err(FieldError::new(
                    EXTERNAL_ID,
                    &other,
                    "the external id must be a string".to_owned(),
                ));
            }
        };
        let document = Value::Object(document);
        let body = read_body(self.entity, &document).map_err(|(path, message)| {
            let value = path
                .split('.')
                .try_fold(&document, |value, key| value.get(key))
                .cloned()
                .unwrap_or_default();
            FieldError::new(
                &path,
                &value,
                format!(
                    "does not fit the canonical {} type: {message}",
                    self.entity.as_str()
                ),
            )
        })?;
        let external_id = if external_id.is_empty() {
            own_external_id.as_str()
        } else {
            external_id
        };
        self.outbound_body(&body, custom_fields, external_id)
    }

    fn outbound_body(
        &self,
        body: &Body,
        custom_fields: Map<String, Value>,
        external_id: &str,
    ) -> Result<PartnerRecord, FieldError> {
        canonical::check(body).map_err(|violation| {
            FieldError::new(
                &violation.path,
                &Value::String(violation.value),
                violation.message,
            )
        })?;
        let (entity, mut document) = body_document(body)?;
        if entity != self.entity {
            return Err(whole(
                "",
                format!(
                    "the record is a {}, but {} maps {}",
                    entity.as_str(),
                    self.name,
                    self.entity.as_str()
                ),
            ));
        }
        document.insert(CUSTOM_FIELDS.to_owned(), Value::Object(custom_fields));
        if !external_id.is_empty() {
            document.insert(EXTERNAL_ID.to_owned(), Value::from(external_id));
        }
        self.outbound(&Value::Object(document))
    }

    fn outbound(&self, document: &Value) -> Result<PartnerRecord, FieldError> {
        if self.direction != Direction::Outbound {
            return Err(whole(
                "",
                format!(
                    "{} is an inbound spec: map partner records with transform",
                    self.name
                ),
            ));
        }
        // Expressions read the document as partner records are read: from its JSON text.
        let text = document.to_string();
        let input = Record::parse(&text, &self.paths).map_err(|error| {
            whole(
                &text,
                format!("the canonical document cannot be read: {error}"),
            )
        })?;
        let external_id = self.external_id_value(&input)?.unwrap_or_default();
        let payload = self.mapped_object(&input)?;
        let content_hash = hex::encode(Sha256::digest(payload.to_string().as_bytes()));
        Ok(PartnerRecord {
            external_id,
            payload,
            content_hash,
        })
    }
}

/// The custom fields of a canonical document: an object of strings, or nothing.
fn custom_fields_of(value: Option<Value>) -> Result<Map<String, Value>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(fields)) => {
            if let Some((name, value)) = fields.iter().find(|(_, value)| !value.is_string()) {
                return Err(FieldError::new(
                    &format!("{CUSTOM_FIELDS}.{name}"),
                    value,
                    "a canonical custom field is a string".to_owned(),
                ));
            }
            Ok(fields)
        }
        Some(other) => Err(FieldError::new(
            CUSTOM_FIELDS,
            &other,
            "custom_fields must be an object of strings".to_owned(),
        )),
    }
}

/// An error about the input as a whole (`$`).
fn whole(value: &str, message: String) -> FieldError {
    FieldError {
        field_path: "$".to_owned(),
        partner_value: truncate(value),
        message,
    }
}

/// The entity of `body` and its fields as a JSON object.
fn body_document(body: &Body) -> Result<(Entity, Map<String, Value>), FieldError> {
    let (entity, value) = match body {
        Body::Job(job) => (Entity::Job, serde_json::to_value(job)),
        Body::Candidate(candidate) => (Entity::Candidate, serde_json::to_value(candidate)),
        Body::Application(application) => (Entity::Application, serde_json::to_value(application)),
        Body::Placement(placement) => (Entity::Placement, serde_json::to_value(placement)),
        Body::Worker(worker) => (Entity::Worker, serde_json::to_value(worker)),
        Body::Timesheet(timesheet) => (Entity::Timesheet, serde_json::to_value(timesheet)),
        Body::JobPosting(posting) => (Entity::JobPosting, serde_json::to_value(posting)),
        Body::ParsedResume(resume) => (Entity::ParsedResume, serde_json::to_value(resume)),
    };
    match value {
        Ok(Value::Object(object)) => Ok((entity, object)),
        // Messages have string keys and finite numbers, so this does not happen.
        other => Err(whole(
            "",
            format!("the canonical record does not serialize as an object: {other:?}"),
        )),
    }
}

/// Refuses an expression of an outbound spec that reads a path the canonical `entity` does not
/// have. Only the paths the expression is known to read are checked: every path of a plain or
/// fast-path expression, the leading path of any other.
pub(crate) fn check_source(entity: Entity, expr: &Expr) -> Result<(), String> {
    for path in expr.read_paths() {
        let reserved = match path.first().map(String::as_str) {
            Some(CUSTOM_FIELDS) => path.len() <= 2,
            Some(EXTERNAL_ID) => path.len() == 1,
            _ => false,
        };
        if reserved {
            continue;
        }
        check_target(entity, &path).map_err(|message| {
            format!("{:?} reads .{}: {message}", expr.source(), path.join("."))
        })?;
    }
    Ok(())
}
