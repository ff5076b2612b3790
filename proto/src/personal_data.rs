//! Which canonical fields hold personal data: the fields `canonical.proto` marks with the
//! `personal_data` option, per canonical entity.
//!
//! prost keeps no field options at run time, so the marks are mirrored here; a test reads
//! `canonical.proto` and fails when the two disagree.

use serde_json::Value;

/// The marked fields of each person entity's body, in proto order.
const MARKED: &[(&str, &[&str])] = &[
    (
        "candidate",
        &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "address",
            "desired_pay",
            "desired_contract_rate",
            "work_history",
            "education",
            "formatted_name",
        ],
    ),
    (
        "worker",
        &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "address",
            "employee_number",
            "hire_date",
            "termination_date",
        ],
    ),
    (
        "parsed_resume",
        &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "address",
            "summary",
            "work_history",
            "education",
        ],
    ),
];

/// The personal-data fields of `entity`'s body; none for entities that describe no person.
pub fn marked(entity: &str) -> &'static [&'static str] {
    MARKED
        .iter()
        .find(|(name, _)| *name == entity)
        .map_or(&[], |(_, fields)| fields)
}

/// The personal-data fields `body` (the canonical body as JSON) sets: present and not empty.
pub fn set_in(entity: &str, body: &Value) -> Vec<String> {
    marked(entity)
        .iter()
        .filter(|field| body.get(**field).is_some_and(is_set))
        .map(|field| (*field).to_owned())
        .collect()
}

fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => fields.values().any(is_set),
        Value::Bool(flag) => *flag,
        Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The fields marked `[(personal_data) = true]` in each message of canonical.proto.
    fn marked_in_proto() -> Vec<(String, Vec<String>)> {
        let text = include_str!("../plugboard/common/v1/canonical.proto");
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        let mut message: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("message ") {
                message = rest.split_whitespace().next().map(str::to_owned);
            } else if line.contains("[(personal_data) = true]") {
                let name = message.clone().unwrap_or_default();
                let field = line
                    .split('=')
                    .next()
                    .and_then(|left| left.split_whitespace().last())
                    .unwrap_or_default()
                    .to_owned();
                match found.iter_mut().find(|(m, _)| *m == name) {
                    Some((_, fields)) => fields.push(field),
                    None => found.push((name, vec![field])),
                }
            }
        }
        found
    }

    #[test]
    fn the_table_is_what_canonical_proto_marks() {
        let entity_of = |message: &str| match message {
            "Candidate" => "candidate",
            "Worker" => "worker",
            "ParsedResume" => "parsed_resume",
            other => panic!("{other} has personal data fields; add its entity to MARKED"),
        };
        let in_proto = marked_in_proto();
        assert_eq!(in_proto.len(), MARKED.len(), "{in_proto:?}");
        for (message, fields) in in_proto {
            assert_eq!(marked(entity_of(&message)), fields, "{message}");
        }
    }

    #[test]
    fn only_set_fields_are_listed() {
        let body = json!({
            "first_name": "Ada", "last_name": "", "email": "ada@example.com",
            "address": {"lines": [], "city": ""}, "skills": ["rust"],
            "work_history": [{"employer": "Acme"}],
        });
        assert_eq!(
            set_in("candidate", &body),
            ["first_name", "email", "work_history"]
        );
        assert!(set_in("job", &json!({"title": "Nurse"})).is_empty());
    }
}
