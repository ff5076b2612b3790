//! A compiled spec and the transform of one partner record.

use std::collections::{BTreeMap, HashMap};

use jaq_json::Val;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{
    Application, Candidate, CanonicalRecord, Job, JobPosting, ParsedResume, Placement, Timesheet,
    Worker,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::document::{self, OnMiss};
use super::expr::{self, Expr};
use super::{Direction, Entity, FieldError, SpecProblem, truncate};

/// A spec ready to run: every expression compiled, every target checked against the canonical
/// type. Compile once, share (it is `Send + Sync`), run per record.
#[derive(Debug)]
pub struct CompiledSpec {
    name: String,
    /// The YAML the spec was compiled from, so tenant overrides can be laid over it.
    source: String,
    connector: String,
    entity: Entity,
    direction: Direction,
    external_id: Expr,
    lookups: Vec<Lookup>,
    fields: Vec<Field>,
    shape: Shape,
    custom_fields: Vec<(String, Expr)>,
}

#[derive(Debug)]
struct Lookup {
    name: String,
    exact: HashMap<String, String>,
    folded: HashMap<String, String>,
    on_miss: OnMiss,
}

#[derive(Debug)]
struct Field {
    target: String,
    segments: Vec<String>,
    expr: Option<Expr>,
    lookup: Option<usize>,
    default: Option<Value>,
    required: bool,
}

/// One partner record mapped to the canonical model.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    pub entity: Entity,
    pub external_id: String,
    pub body: Body,
    pub custom_fields: BTreeMap<String, String>,
    /// SHA-256 hex of the entity, the canonical body and the custom fields.
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
            custom_fields: self.custom_fields.into_iter().collect(),
            raw_payload_json,
            content_hash: self.content_hash,
            connection_id,
            updated_at,
        }
    }
}

impl CompiledSpec {
    /// Compiles the spec in `yaml`; `name` (the file name) is used in problems. On failure,
    /// every problem found, each with its line.
    pub fn compile(name: &str, yaml: &str) -> Result<CompiledSpec, Vec<SpecProblem>> {
        let document = document::parse(name, yaml)?;
        let mut problems = Vec::new();
        let mut problem = |line: u32, message: String| {
            problems.push(SpecProblem {
                file: name.to_owned(),
                line,
                message,
            });
        };

        let (external_id_source, external_id_line) = &document.external_id;
        let external_id = Expr::compile(external_id_source)
            .map_err(|message| {
                problem(
                    *external_id_line,
                    format!("external_id: jq expression {external_id_source:?} does not compile: {message}"),
                );
            })
            .ok();

        let lookups: Vec<Lookup> = document
            .lookups
            .into_iter()
            .map(|lookup| Lookup {
                exact: lookup.entries.iter().cloned().collect(),
                folded: lookup
                    .entries
                    .iter()
                    .map(|(from, to)| (fold(from), to.clone()))
                    .collect(),
                name: lookup.name,
                on_miss: lookup.on_miss,
            })
            .collect();

        let mut fields = Vec::new();
        for field in document.fields {
            let target = field.target;
            let segments: Vec<String> = target.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                problem(
                    field.line,
                    format!("field {target}: the target path has an empty segment"),
                );
                continue;
            }
            if document.direction == Direction::Inbound
                && let Err(message) = check_target(document.entity, &segments)
            {
                problem(field.line, format!("field {target}: {message}"));
            }
            let lookup = match &field.lookup {
                None => None,
                Some(name) => {
                    let index = lookups.iter().position(|lookup| &lookup.name == name);
                    if index.is_none() {
                        problem(
                            field.line,
                            format!("field {target}: no lookup named {name:?}"),
                        );
                    }
                    index
                }
            };
            let expr = match field.expr.as_deref().map(Expr::compile) {
                None => None,
                Some(Ok(expr)) => Some(expr),
                Some(Err(message)) => {
                    let source = field.expr.as_deref().unwrap_or_default();
                    problem(
                        field.line,
                        format!(
                            "field {target}: jq expression {source:?} does not compile: {message}"
                        ),
                    );
                    None
                }
            };
            fields.push((
                field.line,
                Field {
                    target,
                    segments,
                    expr,
                    lookup,
                    default: field.default,
                    required: field.required,
                },
            ));
        }
        for (line, field) in &fields {
            let nested = fields
                .iter()
                .find(|(_, other)| other.target.starts_with(&format!("{}.", field.target)));
            if let Some((_, other)) = nested {
                problem(
                    *line,
                    format!(
                        "field {} is also the parent of field {}; map one or the other",
                        field.target, other.target
                    ),
                );
            }
        }

        let mut custom_fields = Vec::new();
        for (name, source, line) in document.custom_fields {
            match Expr::compile(&source) {
                Ok(expr) => custom_fields.push((name, expr)),
                Err(message) => problem(
                    line,
                    format!(
                        "custom field {name}: jq expression {source:?} does not compile: {message}"
                    ),
                ),
            }
        }

        let fields: Vec<Field> = fields.into_iter().map(|(_, field)| field).collect();
        match external_id {
            Some(external_id) if problems.is_empty() => Ok(CompiledSpec {
                name: name.to_owned(),
                source: yaml.to_owned(),
                connector: document.connector,
                entity: document.entity,
                direction: document.direction,
                external_id,
                lookups,
                shape: Shape::of(&fields),
                fields,
                custom_fields,
            }),
            _ => Err(problems),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn connector(&self) -> &str {
        &self.connector
    }

    pub fn entity(&self) -> Entity {
        self.entity
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Canonical fields plus custom fields the spec maps.
    pub fn field_count(&self) -> usize {
        self.fields.len() + self.custom_fields.len()
    }

    /// Maps one partner record (JSON text) to a canonical record, or says which field failed.
    pub fn transform(&self, payload_json: &str) -> Result<MappedRecord, FieldError> {
        if self.direction != Direction::Inbound {
            return Err(FieldError {
                field_path: "$".to_owned(),
                partner_value: String::new(),
                message: format!(
                    "{} is an outbound spec; outbound mapping arrives with two-way sync (TODO(#6))",
                    self.name
                ),
            });
        }
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(payload_json) {
            return Err(FieldError {
                field_path: "$".to_owned(),
                partner_value: truncate(payload_json),
                message: format!("invalid JSON payload: {error}"),
            });
        }
        let input = expr::parse_payload(payload_json).map_err(|message| FieldError {
            field_path: "$".to_owned(),
            partner_value: truncate(payload_json),
            message: format!("invalid JSON payload: {message}"),
        })?;

        let external_id = self.external_id_of(&input)?;
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            values.push(self.field_value(field, &input)?);
        }
        let mapped = self.shape.build(&mut values, true).unwrap_or_default();
        let body = read_body(self.entity, &mapped)
            .map_err(|(path, message)| self.type_error(&path, &message, &mapped, &input))?;
        let custom_fields = self.custom_fields_of(&input)?;
        let content_hash = content_hash(self.entity, &body, &custom_fields);
        Ok(MappedRecord {
            entity: self.entity,
            external_id,
            body,
            custom_fields,
            content_hash,
        })
    }

    fn external_id_of(&self, input: &Val) -> Result<String, FieldError> {
        let fail = |message: String| {
            FieldError::new(
                "external_id",
                &partner_value(&self.external_id, input),
                message,
            )
        };
        match self.external_id.eval(input).map_err(&fail)? {
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
                Ok(number.to_string())
            }
            None | Some(Value::String(_)) => Err(fail("the record has no external id".to_owned())),
            Some(other) => Err(fail(format!(
                "the external id must be a string or an integer, not {other}"
            ))),
        }
    }

    /// The value for `field` and whether it came from the record (as opposed to a default).
    fn field_value(&self, field: &Field, input: &Val) -> Result<Option<(Value, bool)>, FieldError> {
        let source_value = || {
            field
                .expr
                .as_ref()
                .map_or(Value::Null, |expr| partner_value(expr, input))
        };
        let mut value = match &field.expr {
            None => None,
            Some(expr) => expr.eval(input).map_err(|message| {
                FieldError::new(
                    &field.target,
                    &source_value(),
                    format!("jq expression {:?} failed: {message}", expr.source()),
                )
            })?,
        };
        let mut from_record = value.is_some();
        if let (Some(found), Some(index)) = (&value, field.lookup) {
            let lookup = &self.lookups[index];
            let translated = lookup
                .translate(found)
                .map_err(|message| FieldError::new(&field.target, found, message))?;
            from_record = translated.is_some();
            value = translated.map(Value::String);
        }
        if value.is_none()
            && let Some(default) = &field.default
        {
            value = Some(default.clone());
            from_record = false;
        }
        match value {
            Some(value) => Ok(Some((value, from_record))),
            None if field.required => Err(FieldError::new(
                &field.target,
                &source_value(),
                "required field has no value".to_owned(),
            )),
            None => Ok(None),
        }
    }

    fn custom_fields_of(&self, input: &Val) -> Result<BTreeMap<String, String>, FieldError> {
        let mut custom_fields = BTreeMap::new();
        for (name, expr) in &self.custom_fields {
            let path = format!("custom_fields.{name}");
            let fail =
                |message: String| FieldError::new(&path, &partner_value(expr, input), message);
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

    /// The error for a mapped value that does not fit the canonical type at `path`.
    fn type_error(&self, path: &str, message: &str, mapped: &Value, input: &Val) -> FieldError {
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

impl Lookup {
    /// The canonical value for `found`: `Ok(None)` leaves the field unset.
    fn translate(&self, found: &Value) -> Result<Option<String>, String> {
        let key = match found {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => found.to_string(),
            _ => {
                return Err(format!(
                    "lookup {} needs a string, number or boolean",
                    self.name
                ));
            }
        };
        if let Some(value) = self
            .exact
            .get(&key)
            .or_else(|| self.folded.get(&fold(&key)))
        {
            return Ok(Some(value.clone()));
        }
        match &self.on_miss {
            OnMiss::Use(value) => Ok(Some(value.clone())),
            OnMiss::Unset => Ok(None),
            OnMiss::Fail => Err(format!(
                "{key:?} is not in lookup {} and the lookup has no default",
                self.name
            )),
        }
    }
}

fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

/// The partner value an expression starts from, or the whole record when it has no plain
/// leading path. Only used to explain errors.
fn partner_value(expr: &Expr, input: &Val) -> Value {
    let value = match expr.source_path() {
        Some(path) => expr::walk(input, &path).unwrap_or_default(),
        None => input.clone(),
    };
    expr::to_json(&value).unwrap_or_default()
}

/// Where each field's value goes in the mapped object, worked out once per spec.
#[derive(Debug, Default)]
struct Shape {
    children: Vec<(String, Slot)>,
}

#[derive(Debug)]
enum Slot {
    Field(usize),
    Object(Shape),
}

/// One field's value for one record, and whether the record gave it (not a default).
type Found = Option<(Value, bool)>;

impl Shape {
    fn of(fields: &[Field]) -> Shape {
        let mut shape = Shape::default();
        for (index, field) in fields.iter().enumerate() {
            shape.insert(&field.segments, index);
        }
        shape
    }

    fn insert(&mut self, segments: &[String], index: usize) {
        // Parent/child target conflicts are refused at compile time, so a field never needs
        // to become an object here.
        match segments {
            [] => {}
            [last] => self.children.push((last.clone(), Slot::Field(index))),
            [first, rest @ ..] => {
                let position = self
                    .children
                    .iter()
                    .position(|(key, slot)| key == first && matches!(slot, Slot::Object(_)));
                let position = position.unwrap_or_else(|| {
                    self.children
                        .push((first.clone(), Slot::Object(Shape::default())));
                    self.children.len() - 1
                });
                if let Slot::Object(child) = &mut self.children[position].1 {
                    child.insert(rest, index);
                }
            }
        }
    }

    fn has_record_value(&self, values: &[Found]) -> bool {
        self.children.iter().any(|(_, slot)| match slot {
            Slot::Field(index) => matches!(values[*index], Some((_, true))),
            Slot::Object(shape) => shape.has_record_value(values),
        })
    }

    /// The mapped object; nested objects made only of defaults are left out.
    fn build(&self, values: &mut [Found], root: bool) -> Option<Value> {
        if !root && !self.has_record_value(values) {
            return None;
        }
        let mut object = serde_json::Map::new();
        for (key, slot) in &self.children {
            let value = match slot {
                Slot::Field(index) => values[*index].take().map(|(value, _)| value),
                Slot::Object(shape) => shape.build(values, false),
            };
            if let Some(value) = value {
                object.insert(key.clone(), value);
            }
        }
        Some(Value::Object(object))
    }
}

fn read<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    // The plain read is the common case; the path-tracking one only runs to explain a failure.
    T::deserialize(value).or_else(|_| {
        serde_path_to_error::deserialize(value)
            .map_err(|error| (error.path().to_string(), error.inner().to_string()))
    })
}

/// Reads a mapped object into the canonical message for `entity`; on failure the field path
/// and serde's message.
fn read_body(entity: Entity, value: &Value) -> Result<Body, (String, String)> {
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
fn check_target(entity: Entity, segments: &[String]) -> Result<(), String> {
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

fn body_json(body: &Body) -> String {
    let json = match body {
        Body::Job(job) => serde_json::to_string(job),
        Body::Candidate(candidate) => serde_json::to_string(candidate),
        Body::Application(application) => serde_json::to_string(application),
        Body::Placement(placement) => serde_json::to_string(placement),
        Body::Worker(worker) => serde_json::to_string(worker),
        Body::Timesheet(timesheet) => serde_json::to_string(timesheet),
        Body::JobPosting(posting) => serde_json::to_string(posting),
        Body::ParsedResume(resume) => serde_json::to_string(resume),
    };
    json.expect("canonical messages have string keys and finite values, so they serialize")
}

/// SHA-256 over a canonical serialization: the entity, the typed body (fields in declaration
/// order, defaults included) and the custom fields sorted by name.
fn content_hash(entity: Entity, body: &Body, custom_fields: &BTreeMap<String, String>) -> String {
    let custom = serde_json::to_string(custom_fields).expect("a map of strings always serializes");
    let mut hasher = Sha256::new();
    hasher.update(entity.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(body_json(body).as_bytes());
    hasher.update(b"\n");
    hasher.update(custom.as_bytes());
    hex::encode(hasher.finalize())
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSpec>();
};
