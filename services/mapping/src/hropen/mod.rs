//! HR Open Standards 4.2 documents to and from the canonical model.
//!
//! Three documents are covered, each in both directions:
//!
//! | HR Open | canonical | module |
//! |---|---|---|
//! | `CandidateType` | [`Candidate`](plugboard_proto::common::v1::Candidate) | [`candidate`] |
//! | `PositionOpeningType` | [`Job`](plugboard_proto::common::v1::Job) | [`position_opening`] |
//! | `TimecardType` | [`Timesheet`](plugboard_proto::common::v1::Timesheet) | [`timecard`] |
//!
//! Each module lists its **mapped fields** in a `MAPPED` constant: JSON paths into the HR Open
//! document (`*` stands for every element of an array). A mapped field is one whose value
//! survives import and export: the values found at that path in a document equal, in order,
//! the values found there after `export(import(document))`. Null, `""`, `false` and absent
//! count as the same value, because proto3 cannot tell them apart; numbers compare as numbers.
//! Everything else in a document (geo-locations, attachments, licences, ...) is not carried
//! by the canonical model and is not exported.
//!
//! Imports check the rules of the canonical model ([`crate::canonical`]) and refuse a document
//! that breaks one, with the canonical path at fault. Exports validate against the HR Open JSON
//! Schemas (draft-04); `tests/hropen.rs` checks that and the round trip over every official
//! Candidate, PositionOpening and Timecard sample.
//!
//! # Limitations
//!
//! - Only the first profile of a candidate and of a position opening is read.
//! - One e-mail address, one phone number and one postal address per person.
//! - Pay ranges whose interval has no canonical rate period (`TwoWeeks`, `Quarter`, `Once`,
//!   ...) fail the import of their position opening, as an amount without currency does: the
//!   canonical model keeps amounts per hour, day, week, month or year.
//! - HR Open carries no time zone: imported timecard entry times keep their wall time and lose
//!   any UTC offset; exports add the offset of the timesheet's zone.
//! - The timecard's person name, cost centres, departments, expenses and approvers are not
//!   carried by the canonical timesheet.

pub mod candidate;
pub mod position_opening;
pub mod timecard;

use serde_json::{Map, Value};

/// The string at `pointer` (RFC 6901), or `""`.
pub(crate) fn text(document: &Value, pointer: &str) -> String {
    match document.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    }
}

/// The array at `pointer`, or an empty slice.
pub(crate) fn items<'a>(document: &'a Value, pointer: &str) -> &'a [Value] {
    match document.pointer(pointer) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// Drops nulls, empty strings, `false` and the objects and arrays left empty by that, so an
/// export carries only what the canonical record holds.
pub(crate) fn prune(value: Value) -> Option<Value> {
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::String(text) if text.is_empty() => None,
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(prune).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(object) => {
            let object: Map<String, Value> = object
                .into_iter()
                .filter_map(|(key, value)| prune(value).map(|value| (key, value)))
                .collect();
            (!object.is_empty()).then_some(Value::Object(object))
        }
        other => Some(other),
    }
}

/// A decimal string as a JSON number, or null when it is not one.
pub(crate) fn number(decimal: &str) -> Value {
    serde_json::from_str::<serde_json::Number>(decimal)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A JSON number as a decimal string (as written, where serde_json keeps it), else `""`.
pub(crate) fn decimal(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    }
}

/// Translates `value` through `(from, to)` pairs; `None` when it is not listed.
pub(crate) fn code<'a>(pairs: &'a [(&'a str, &'a str)], value: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(from, _)| *from == value)
        .map(|(_, to)| *to)
}

/// The same pairs read the other way.
pub(crate) fn code_back<'a>(pairs: &'a [(&'a str, &'a str)], value: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(_, to)| *to == value)
        .map(|(from, _)| *from)
}

/// The values a mapped path selects in `document`, in document order (see the module docs).
pub fn select<'a>(document: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![document];
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        current = current
            .into_iter()
            .flat_map(|value| -> Vec<&'a Value> {
                match (segment, value) {
                    ("*", Value::Array(items)) => items.iter().collect(),
                    (index, Value::Array(items)) => index
                        .parse::<usize>()
                        .ok()
                        .and_then(|index| items.get(index))
                        .into_iter()
                        .collect(),
                    (key, Value::Object(object)) => object.get(key).into_iter().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    current
}
