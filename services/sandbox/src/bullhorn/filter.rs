//! The small parts of Bullhorn's query languages the sandbox understands.
//!
//! - `where=` (the `query` endpoint, JPQL-like): `AND`-joined comparisons `field op value` with
//!   `op` one of `= <> != > >= < <=`, and `field IN (v1, v2)`;
//! - `query=` (the `search` endpoint, Lucene-like): `AND`- or space-joined terms `field:value`
//!   and ranges `field:[low TO high]` with `*` for an open end;
//! - `sort=`/`orderBy=`: comma-separated fields, `-` for descending; `id` always breaks ties;
//! - `fields=`: `*` or a list, with nested selections like `clientCorporation(id,name)`.
//!
//! Dotted paths (`candidate.id`) reach into to-one associations.

use std::cmp::Ordering;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare { field: String, op: Op, value: Value },
    In { field: String, values: Vec<Value> },
}

impl Condition {
    pub fn field(&self) -> &str {
        match self {
            Condition::Compare { field, .. } | Condition::In { field, .. } => field,
        }
    }

    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Condition::Compare { field, op, value } => {
                let Some(actual) = lookup(record, field) else {
                    return false;
                };
                match compare(actual, value) {
                    None => false,
                    Some(ordering) => match op {
                        Op::Eq => ordering == Ordering::Equal,
                        Op::Ne => ordering != Ordering::Equal,
                        Op::Gt => ordering == Ordering::Greater,
                        Op::Ge => ordering != Ordering::Less,
                        Op::Lt => ordering == Ordering::Less,
                        Op::Le => ordering != Ordering::Greater,
                    },
                }
            }
            Condition::In { field, values } => lookup(record, field).is_some_and(|actual| {
                values
                    .iter()
                    .any(|value| compare(actual, value) == Some(Ordering::Equal))
            }),
        }
    }
}

/// Parses a `where=` clause.
pub fn parse_where(text: &str) -> Result<Vec<Condition>, String> {
    split_and(text)
        .into_iter()
        .map(|term| {
            if let Some((field, list)) = split_keyword(term, " IN ") {
                let list = list
                    .trim()
                    .strip_prefix('(')
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| format!("malformed IN list in '{term}'"))?;
                let values = list.split(',').map(literal).collect();
                return Ok(Condition::In {
                    field: field.trim().to_owned(),
                    values,
                });
            }
            for (token, op) in [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("<>", Op::Ne),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ] {
                if let Some((field, value)) = term.split_once(token) {
                    return Ok(Condition::Compare {
                        field: field.trim().to_owned(),
                        op,
                        value: literal(value),
                    });
                }
            }
            Err(format!("cannot parse where clause term '{term}'"))
        })
        .collect()
}

/// Parses a search `query=`.
pub fn parse_search(text: &str) -> Result<Vec<Condition>, String> {
    let mut conditions = Vec::new();
    for term in split_and(text) {
        let (field, value) = term
            .split_once(':')
            .ok_or_else(|| format!("cannot parse search term '{term}'"))?;
        let field = field.trim().to_owned();
        let value = value.trim();
        if let Some(range) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let (low, high) = split_keyword(range, " TO ")
                .ok_or_else(|| format!("malformed range in '{term}'"))?;
            for (bound, op) in [(low.trim(), Op::Ge), (high.trim(), Op::Le)] {
                if bound != "*" {
                    conditions.push(Condition::Compare {
                        field: field.clone(),
                        op,
                        value: literal(bound),
                    });
                }
            }
        } else {
            conditions.push(Condition::Compare {
                field,
                op: Op::Eq,
                value: literal(value),
            });
        }
    }
    Ok(conditions)
}

fn split_and(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut rest = text.trim();
    while let Some((head, tail)) = split_keyword(rest, " AND ") {
        terms.push(head.trim());
        rest = tail.trim();
    }
    if !rest.is_empty() {
        terms.push(rest);
    }
    terms
}

/// Splits at the first case-insensitive occurrence of `keyword` outside brackets.
fn split_keyword<'a>(text: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let upper = text.to_ascii_uppercase();
    let mut depth = 0i32;
    for (index, character) in upper.char_indices() {
        match character {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ if depth == 0 && upper[index..].starts_with(keyword) => {
                return Some((&text[..index], &text[index + keyword.len()..]));
            }
            _ => {}
        }
    }
    None
}

fn literal(text: &str) -> Value {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
    {
        return Value::String(inner.to_owned());
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

/// The value at a dotted path.
pub fn lookup<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(record, |value, key| value.as_object()?.get(key))
}

/// Orders two values of compatible types; booleans also compare with 0 and 1 (`isDeleted:0`).
fn compare(actual: &Value, expected: &Value) -> Option<Ordering> {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Number(b)) => Some(u8::from(*a).cmp(&(b.as_u64()? as u8))),
        _ => None,
    }
}

/// A parsed `sort=` list: (path, descending).
pub fn parse_sort(text: Option<&str>) -> Vec<(String, bool)> {
    let mut keys: Vec<(String, bool)> = text
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(|key| match key.strip_prefix('-') {
            Some(field) => (field.to_owned(), true),
            None => (key.trim_start_matches('+').to_owned(), false),
        })
        .collect();
    if !keys.iter().any(|(field, _)| field == "id") {
        keys.push(("id".to_owned(), false));
    }
    keys
}

/// Sort order for `records`: missing or mistyped values sort first.
pub fn order(a: &Value, b: &Value, keys: &[(String, bool)]) -> Ordering {
    for (field, descending) in keys {
        let ordering = match (lookup(a, field), lookup(b, field)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
        };
        let ordering = if *descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// One selected field, with its nested selection when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub name: String,
    pub nested: Option<Vec<Selection>>,
}

/// Parses `fields=`; `None` means every field (`*`).
pub fn parse_fields(text: &str) -> Result<Option<Vec<Selection>>, String> {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return Ok(None);
    }
    let (selections, rest) = parse_list(text)?;
    if !rest.trim().is_empty() {
        return Err(format!("unbalanced parentheses in fields '{text}'"));
    }
    Ok(Some(selections))
}

fn parse_list(mut text: &str) -> Result<(Vec<Selection>, &str), String> {
    let mut selections = Vec::new();
    loop {
        let end = text.find([',', '(', ')']).unwrap_or(text.len());
        let name = text[..end].trim().to_owned();
        text = &text[end..];
        let mut nested = None;
        if let Some(inner) = text.strip_prefix('(') {
            let (list, rest) = parse_list(inner)?;
            text = rest
                .strip_prefix(')')
                .ok_or_else(|| "missing ')' in fields".to_owned())?;
            nested = Some(list);
        }
        if !name.is_empty() {
            selections.push(Selection { name, nested });
        }
        match text.strip_prefix(',') {
            Some(rest) => text = rest,
            None => return Ok((selections, text)),
        }
    }
}

/// The record reduced to `selections`; `id` is always kept, as Bullhorn does.
pub fn project(record: &Value, selections: &[Selection]) -> Value {
    let Some(object) = record.as_object() else {
        return record.clone();
    };
    let mut projected = Map::new();
    if let Some(id) = object.get("id") {
        projected.insert("id".to_owned(), id.clone());
    }
    for selection in selections {
        if selection.name == "*" {
            return record.clone();
        }
        if let Some(value) = object.get(&selection.name) {
            let value = match (&selection.nested, value) {
                (Some(nested), Value::Object(_)) => project(value, nested),
                _ => value.clone(),
            };
            projected.insert(selection.name.clone(), value);
        }
    }
    Value::Object(projected)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn where_and_search_filters_agree() {
        let record = json!({"id": 5, "dateLastModified": 1000, "isDeleted": false,
                            "candidate": {"id": 9}, "status": "Placed"});
        let matches = |conditions: Vec<Condition>| conditions.iter().all(|c| c.matches(&record));
        assert!(matches(parse_where("dateLastModified>=1000").unwrap()));
        assert!(!matches(parse_where("dateLastModified>1000").unwrap()));
        assert!(matches(
            parse_where("candidate.id IN (1, 9) and status='placed'").unwrap()
        ));
        assert!(matches(
            parse_search("dateLastModified:[1000 TO *]").unwrap()
        ));
        assert!(!matches(
            parse_search("dateLastModified:[* TO 999]").unwrap()
        ));
        assert!(matches(parse_search("isDeleted:0 AND id:5").unwrap()));
        assert!(parse_where("nonsense").is_err());
    }

    #[test]
    fn mistyped_values_never_match_a_comparison() {
        let record = json!({"id": 1, "dateLastModified": "yesterday"});
        let condition = &parse_where("dateLastModified>=0").unwrap()[0];
        assert!(!condition.matches(&record));
    }

    #[test]
    fn fields_project_nested_selections_and_keep_id() {
        let record = json!({"id": 1, "title": "Nurse", "secret": 1,
                            "clientCorporation": {"id": 2, "name": "Acme", "phone": "x"}});
        let fields = parse_fields("title,clientCorporation(name)")
            .unwrap()
            .unwrap();
        assert_eq!(
            project(&record, &fields),
            json!({"id": 1, "title": "Nurse", "clientCorporation": {"id": 2, "name": "Acme"}})
        );
        assert_eq!(parse_fields("*").unwrap(), None);
        assert!(parse_fields("a(b").is_err());
    }

    #[test]
    fn sort_breaks_ties_by_id() {
        let keys = parse_sort(Some("dateLastModified"));
        let a = json!({"id": 2, "dateLastModified": 5});
        let b = json!({"id": 1, "dateLastModified": 5});
        assert_eq!(order(&a, &b, &keys), Ordering::Greater);
        let keys = parse_sort(Some("-dateLastModified"));
        let c = json!({"id": 3, "dateLastModified": 6});
        assert_eq!(order(&c, &a, &keys), Ordering::Less);
    }
}
