//! A compiled spec: every expression compiled, every path checked against the canonical type.
//! The per-direction transforms live in `inbound` and `outbound`.

use std::collections::HashMap;

use serde_json::Value;

use super::document::{self, OnMiss};
use super::expr::{self, Expr};
use super::inbound::check_target;
use super::outbound::check_source;
use super::record::{PathTable, Record};
use super::shape::{Found, Shape};
use super::{Direction, Entity, FieldError, SpecProblem};

/// A spec ready to run: every expression compiled, every canonical path checked against the
/// canonical type. Compile once, share (it is `Send + Sync`), run per record.
#[derive(Debug)]
pub struct CompiledSpec {
    pub(super) name: String,
    /// The YAML the spec was compiled from, so tenant overrides can be laid over it.
    source: String,
    connector: String,
    pub(super) entity: Entity,
    pub(super) direction: Direction,
    pub(super) external_id: Expr,
    pub(super) lookups: Vec<Lookup>,
    pub(super) fields: Vec<Field>,
    pub(super) shape: Shape,
    pub(super) custom_fields: Vec<(String, Expr)>,
    /// Every plain path the expressions read, so a record is parsed once into their values.
    pub(super) paths: PathTable,
}

#[derive(Debug)]
pub(crate) struct Lookup {
    name: String,
    exact: HashMap<String, String>,
    folded: HashMap<String, String>,
    on_miss: OnMiss,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) target: String,
    pub(crate) segments: Vec<String>,
    pub(crate) expr: Option<Expr>,
    pub(crate) lookup: Option<usize>,
    pub(crate) default: Option<Value>,
    pub(crate) required: bool,
}

/// What an outbound spec without `external_id` uses: the partner id given with the input.
const OUTBOUND_EXTERNAL_ID: &str = ".external_id";

impl CompiledSpec {
    /// Compiles the spec in `yaml`; `name` (the file name) is used in problems. On failure,
    /// every problem found, each with its line.
    pub fn compile(name: &str, yaml: &str) -> Result<CompiledSpec, Vec<SpecProblem>> {
        let document = document::parse(name, yaml)?;
        let entity = document.entity;
        let direction = document.direction;
        let mut problems = Vec::new();
        let mut paths = PathTable::default();
        let mut problem = |line: u32, message: String| {
            problems.push(SpecProblem {
                file: name.to_owned(),
                line,
                message,
            });
        };

        let (external_id_source, external_id_line) = document
            .external_id
            .clone()
            .unwrap_or_else(|| (OUTBOUND_EXTERNAL_ID.to_owned(), 0));
        let external_id = Expr::compile(&external_id_source, &mut paths)
            .map_err(|message| {
                problem(
                    external_id_line,
                    format!("external_id: jq expression {external_id_source:?} does not compile: {message}"),
                );
            })
            .ok();
        if direction == Direction::Outbound
            && let Some(expr) = &external_id
            && let Err(message) = check_source(entity, expr)
        {
            problem(external_id_line, format!("external_id: {message}"));
        }

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
            // Inbound the targets are canonical; outbound the sources are.
            if direction == Direction::Inbound
                && let Err(message) = check_target(entity, &segments)
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
            let expr = match field
                .expr
                .as_deref()
                .map(|source| Expr::compile(source, &mut paths))
            {
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
            if direction == Direction::Outbound
                && let Some(expr) = &expr
                && let Err(message) = check_source(entity, expr)
            {
                problem(field.line, format!("field {target}: {message}"));
            }
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
            if direction == Direction::Outbound {
                problem(
                    line,
                    format!(
                        "custom field {name}: an outbound spec writes partner fields under \
                         `fields`; read a canonical custom field there as .custom_fields.{name}"
                    ),
                );
                continue;
            }
            match Expr::compile(&source, &mut paths) {
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
                entity,
                direction,
                external_id,
                lookups,
                shape: Shape::of(&fields),
                fields,
                custom_fields,
                paths,
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

    /// Fields plus custom fields the spec maps.
    pub fn field_count(&self) -> usize {
        self.fields.len() + self.custom_fields.len()
    }

    /// The external id `input` gives: a non-empty string or an integer, else `Ok(None)`.
    pub(super) fn external_id_value(
        &self,
        input: &Record<'_>,
    ) -> Result<Option<String>, FieldError> {
        let fail = |message: String| {
            FieldError::new(
                "external_id",
                &partner_value(&self.external_id, input),
                message,
            )
        };
        match self.external_id.eval(input).map_err(&fail)? {
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
            Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
                Ok(Some(number.to_string()))
            }
            None | Some(Value::String(_)) => Ok(None),
            Some(other) => Err(fail(format!(
                "the external id must be a string or an integer, not {other}"
            ))),
        }
    }

    /// The value for `field` and whether it came from the record (as opposed to a default).
    pub(super) fn field_value(
        &self,
        field: &Field,
        input: &Record<'_>,
    ) -> Result<Option<(Value, bool)>, FieldError> {
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

    /// Every field's value for `input`, in field order.
    pub(super) fn field_values(&self, input: &Record<'_>) -> Result<Vec<Found>, FieldError> {
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            values.push(self.field_value(field, input)?);
        }
        Ok(values)
    }

    /// Every field's value for `input`, built into one object by the spec's shape.
    pub(super) fn mapped_object(&self, input: &Record<'_>) -> Result<Value, FieldError> {
        let mut values = self.field_values(input)?;
        Ok(self.shape.build(&mut values, true).unwrap_or_default())
    }
}

impl Lookup {
    /// The mapped value for `found`: `Ok(None)` leaves the field unset.
    fn translate(&self, found: &Value) -> Result<Option<String>, String> {
        let scalar;
        let key: &str = match found {
            Value::String(text) => text,
            // The number's own text, without serde's value serializer (this runs per record).
            Value::Number(number) => {
                scalar = number.to_string();
                &scalar
            }
            Value::Bool(flag) => {
                if *flag {
                    "true"
                } else {
                    "false"
                }
            }
            _ => {
                return Err(format!(
                    "lookup {} needs a string, number or boolean",
                    self.name
                ));
            }
        };
        if let Some(value) = self.exact.get(key).or_else(|| self.folded.get(&fold(key))) {
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

/// The source value an expression starts from, or the whole record when it has no plain
/// leading path. Only used to explain errors.
pub(super) fn partner_value(expr: &Expr, input: &Record<'_>) -> Value {
    let Ok(record) = input.jaq_value() else {
        return Value::Null;
    };
    let value = match expr.source_path() {
        Some(path) => expr::walk(record, &path).unwrap_or_default(),
        None => record.clone(),
    };
    expr::to_json(&value).unwrap_or_default()
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSpec>();
};
