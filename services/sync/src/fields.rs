//! Canonical records as flat field values, the unit two-way sync compares, owns and writes.
//!
//! A canonical body (its JSON) becomes a map from dotted field path (`email`, `address.city`)
//! to value. Objects are walked; arrays and scalars are leaves. Values proto3 cannot tell from
//! "not set" (empty text, zero, false, empty lists, null) are left out, so a push writes only
//! the fields its caller set, and a field the partner cleared reads as gone.

use std::collections::BTreeMap;

use plugboard_proto::common::v1::{
    Application, Candidate, Job, JobPosting, ParsedResume, Placement, Timesheet, Worker,
};
use serde_json::{Map, Value};

/// Field path to value; sorted, so equal records give equal maps and stable JSON.
pub type FieldValues = BTreeMap<String, Value>;

/// Fields every entity has that only record when the partner touched the record; they are
/// never owned, never conflicts, and do not make a record differ from our own write.
pub const BOOKKEEPING: [&str; 2] = ["created_at", "updated_at"];

/// The field values of a canonical body.
pub fn of_body(body: &Value) -> FieldValues {
    let mut values = FieldValues::new();
    flatten("", body, &mut values);
    values
}

fn flatten(prefix: &str, value: &Value, into: &mut FieldValues) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, into);
            }
        }
        leaf if is_unset(leaf) || prefix.is_empty() => {}
        leaf => {
            into.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(is_unset),
    }
}

/// The body holding exactly `values`, for the connector's write templates.
pub fn to_body(values: &FieldValues) -> Value {
    let mut body = Map::new();
    for (path, value) in values {
        let segments: Vec<&str> = path.split('.').collect();
        insert_at(&mut body, &segments, value.clone());
    }
    Value::Object(body)
}

fn insert_at(object: &mut Map<String, Value>, segments: &[&str], value: Value) {
    match segments {
        [] => {}
        [last] => {
            object.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let child = object
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_at(child, rest, value);
            }
        }
    }
}

/// Whether an ownership path covers a field: the field itself or one under it.
pub fn covers(path: &str, field: &str) -> bool {
    field == path
        || field
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
}

pub fn is_bookkeeping(field: &str) -> bool {
    BOOKKEEPING.contains(&field)
}

/// Fields whose values differ between `before` and `after` (present in one only, or unequal),
/// bookkeeping left out.
pub fn changed(before: &FieldValues, after: &FieldValues) -> Vec<String> {
    let mut fields: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|field| !is_bookkeeping(field) && before.get(*field) != after.get(*field))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// The JSON of an entity's empty canonical body, whose top-level keys are its fields; `None`
/// for an entity the canonical model does not have.
pub fn empty_body(entity: &str) -> Option<Value> {
    let body = match entity {
        "job" => serde_json::to_value(Job::default()),
        "candidate" => serde_json::to_value(Candidate::default()),
        "application" => serde_json::to_value(Application::default()),
        "placement" => serde_json::to_value(Placement::default()),
        "worker" => serde_json::to_value(Worker::default()),
        "timesheet" => serde_json::to_value(Timesheet::default()),
        "job_posting" => serde_json::to_value(JobPosting::default()),
        "parsed_resume" => serde_json::to_value(ParsedResume::default()),
        _ => return None,
    };
    body.ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_flatten_without_unset_values_and_come_back() {
        let body = json!({
            "first_name": "Ada", "last_name": "", "skills": ["rust"], "tags": [],
            "address": {"city": "Leeds", "lines": [], "postal_code": null},
            "desired_pay": null, "openings": 0, "remote": false, "current": true,
        });
        let values = of_body(&body);
        assert_eq!(
            values.keys().collect::<Vec<_>>(),
            ["address.city", "current", "first_name", "skills"]
        );
        assert_eq!(
            to_body(&values),
            json!({"address": {"city": "Leeds"}, "current": true, "first_name": "Ada",
                   "skills": ["rust"]})
        );
    }

    #[test]
    fn changes_ignore_bookkeeping_and_see_cleared_fields() {
        let before = of_body(&json!({"email": "a@x.io", "title": "Dr", "updated_at": "1"}));
        let after = of_body(&json!({"email": "b@x.io", "title": "", "updated_at": "2"}));
        assert_eq!(changed(&before, &after), ["email", "title"]);
        assert!(changed(&before, &before).is_empty());
    }

    #[test]
    fn a_path_covers_itself_and_what_is_under_it() {
        assert!(covers("address", "address.city"));
        assert!(covers("email", "email"));
        assert!(!covers("address", "addresses"));
        assert!(!covers("address.city", "address"));
    }

    #[test]
    fn every_canonical_entity_has_an_empty_body() {
        let candidate = empty_body("candidate").unwrap();
        assert!(candidate.get("email").is_some());
        assert!(empty_body("invoice").is_none());
    }
}
