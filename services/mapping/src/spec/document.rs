//! The YAML document of a spec, read with line numbers for every problem.
//!
//! serde_yaml_ng gives locations for syntax and shape errors; problems found after parsing (a jq
//! error, an unknown lookup) are placed on the line where their key is written.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::{Direction, Entity, SpecProblem};

/// The format version this build reads.
pub const SPEC_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    version: u32,
    connector: String,
    entity: String,
    direction: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for spec authors; kept to accept the key
    description: Option<String>,
    /// Required inbound; outbound it defaults to `.external_id` (the input's partner id).
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    lookups: Mapping,
    fields: Mapping,
    #[serde(default)]
    custom_fields: Mapping,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    lookup: Option<String>,
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    map: Mapping,
    #[serde(default, deserialize_with = "present")]
    default: Option<Option<String>>,
}

/// Tells `default: ~` (leave the field unset) from no `default` key (a miss is an error).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// What a lookup does with a partner value that is not in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OnMiss {
    Fail,
    Unset,
    Use(String),
}

#[derive(Debug)]
pub(crate) struct LookupDoc {
    pub name: String,
    pub entries: Vec<(String, String)>,
    pub on_miss: OnMiss,
}

#[derive(Debug)]
pub(crate) struct FieldDoc {
    pub target: String,
    pub line: u32,
    pub expr: Option<String>,
    pub lookup: Option<String>,
    pub default: Option<serde_json::Value>,
    pub required: bool,
}

#[derive(Debug)]
pub(crate) struct SpecDocument {
    pub connector: String,
    pub entity: Entity,
    pub direction: Direction,
    /// The expression and its line; `None` only for outbound specs that leave it out.
    pub external_id: Option<(String, u32)>,
    pub lookups: Vec<LookupDoc>,
    pub fields: Vec<FieldDoc>,
    pub custom_fields: Vec<(String, String, u32)>,
}

/// Reads `yaml`; on failure every problem found, each with its line.
pub(crate) fn parse(name: &str, yaml: &str) -> Result<SpecDocument, Vec<SpecProblem>> {
    let problem = |line: u32, message: String| SpecProblem {
        file: name.to_owned(),
        line,
        message,
    };
    let raw: RawSpec = serde_yaml_ng::from_str(yaml).map_err(|error| {
        let line = error
            .location()
            .map_or(0, |location| location.line() as u32);
        vec![problem(line, error.to_string())]
    })?;
    let mut problems = Vec::new();

    if raw.version != SPEC_VERSION {
        problems.push(problem(
            line_of(yaml, None, "version"),
            format!(
                "unsupported spec version {}; this build reads version {SPEC_VERSION}",
                raw.version
            ),
        ));
    }
    let entity = Entity::parse(&raw.entity);
    if entity.is_none() {
        problems.push(problem(
            line_of(yaml, None, "entity"),
            format!(
                "unknown entity {:?}; expected job, candidate, application, placement, worker, timesheet, job_posting or parsed_resume",
                raw.entity
            ),
        ));
    }
    let direction = Direction::parse(&raw.direction);
    if direction.is_none() {
        problems.push(problem(
            line_of(yaml, None, "direction"),
            format!(
                "unknown direction {:?}; expected inbound or outbound",
                raw.direction
            ),
        ));
    }

    if raw.external_id.is_none() && direction == Some(Direction::Inbound) {
        problems.push(problem(
            0,
            "an inbound spec needs external_id: the jq expression of the partner's id".to_owned(),
        ));
    }

    let mut lookups = Vec::new();
    for (key, value) in &raw.lookups {
        let key = scalar_text(key);
        let line = line_of(yaml, Some("lookups"), &key);
        match serde_yaml_ng::from_value::<RawLookup>(value.clone()) {
            Ok(lookup) => {
                let entries = lookup
                    .map
                    .iter()
                    .map(|(from, to)| (scalar_text(from), scalar_text(to)))
                    .collect();
                let on_miss = match lookup.default {
                    None => OnMiss::Fail,
                    Some(None) => OnMiss::Unset,
                    Some(Some(value)) => OnMiss::Use(value),
                };
                lookups.push(LookupDoc {
                    name: key,
                    entries,
                    on_miss,
                });
            }
            Err(error) => problems.push(problem(line, format!("lookup {key}: {error}"))),
        }
    }

    let mut fields = Vec::new();
    for (key, value) in &raw.fields {
        let target = scalar_text(key);
        let line = line_of(yaml, Some("fields"), &target);
        let field = match value {
            Yaml::String(expr) => Ok(RawField {
                expr: Some(expr.clone()),
                lookup: None,
                default: None,
                required: false,
            }),
            Yaml::Mapping(_) => serde_yaml_ng::from_value::<RawField>(value.clone())
                .map_err(|error| error.to_string()),
            _ => Err(
                "expected a jq expression or a mapping with expr, lookup, default, required"
                    .to_owned(),
            ),
        };
        match field {
            Ok(field) => {
                if field.expr.is_none() && field.default.is_none() {
                    problems.push(problem(
                        line,
                        format!("field {target}: give expr, default or both"),
                    ));
                }
                fields.push(FieldDoc {
                    target,
                    line,
                    expr: field.expr,
                    lookup: field.lookup,
                    default: field.default.filter(|value| !value.is_null()),
                    required: field.required,
                });
            }
            Err(message) => problems.push(problem(line, format!("field {target}: {message}"))),
        }
    }

    let mut custom_fields = Vec::new();
    for (key, value) in &raw.custom_fields {
        let key = scalar_text(key);
        let line = line_of(yaml, Some("custom_fields"), &key);
        match value {
            Yaml::String(expr) => custom_fields.push((key, expr.clone(), line)),
            _ => problems.push(problem(
                line,
                format!("custom field {key}: expected a jq expression"),
            )),
        }
    }

    match (entity, direction) {
        (Some(entity), Some(direction)) if problems.is_empty() => Ok(SpecDocument {
            connector: raw.connector,
            entity,
            direction,
            external_id: raw
                .external_id
                .map(|source| (source, line_of(yaml, None, "external_id"))),
            lookups,
            fields,
            custom_fields,
        }),
        _ => Err(problems),
    }
}

/// Text of a YAML scalar used as a key or a lookup value (`1: US` has a number key).
fn scalar_text(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => text.clone(),
        Yaml::Number(number) => number.to_string(),
        Yaml::Bool(flag) => flag.to_string(),
        Yaml::Null => String::new(),
        other => serde_yaml_ng::to_string(other)
            .map(|text| text.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// 1-based line where `key:` is written, inside the top-level `section` when given; the
/// section's own line (or 0) when the key cannot be found, e.g. in flow style.
pub(crate) fn line_of(yaml: &str, section: Option<&str>, key: &str) -> u32 {
    let mut in_section = section.is_none();
    let mut section_line = 0;
    for (index, line) in yaml.lines().enumerate() {
        let number = index as u32 + 1;
        let top_level = !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty();
        if let Some(section) = section {
            if top_level {
                in_section = is_key_line(line, section);
                if in_section {
                    section_line = number;
                }
                continue;
            }
        } else if !top_level {
            continue;
        }
        if in_section && is_key_line(line.trim_start(), key) {
            return number;
        }
    }
    section_line
}

/// The section and entry key whose line `line` (1-based) of `yaml` is, the inverse of
/// [`line_of`] for entries of a section.
pub(crate) fn entry_at(yaml: &str, line: u32) -> Option<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let key_of = |text: &str| -> Option<String> {
        let (key, _) = text.trim().split_once(':')?;
        Some(key.trim().trim_matches(['"', '\'']).to_owned())
    };
    let entry = lines.get(index)?;
    if !entry.starts_with([' ', '\t']) {
        return None;
    }
    let section = lines[..index]
        .iter()
        .rev()
        .find(|text| !text.starts_with([' ', '\t', '#']) && !text.trim().is_empty())?;
    Some((key_of(section)?, key_of(entry)?))
}

fn is_key_line(line: &str, key: &str) -> bool {
    [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .any(|quoted| {
            line.strip_prefix(quoted.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_from_their_line() {
        let yaml = "version: 1\nfields:\n  title: .title\n  \"status\":\n    expr: .s\n";
        assert_eq!(entry_at(yaml, 3), Some(("fields".into(), "title".into())));
        assert_eq!(entry_at(yaml, 4), Some(("fields".into(), "status".into())));
        assert_eq!(entry_at(yaml, 1), None);
        assert_eq!(entry_at(yaml, 0), None);
        assert_eq!(entry_at(yaml, 99), None);
    }

    #[test]
    fn keys_are_found_in_their_section() {
        let yaml =
            "version: 1\nfields:\n  title: .title\n  \"status\": .status\nlookups:\n  title:\n";
        assert_eq!(line_of(yaml, None, "version"), 1);
        assert_eq!(line_of(yaml, Some("fields"), "title"), 3);
        assert_eq!(line_of(yaml, Some("fields"), "status"), 4);
        assert_eq!(line_of(yaml, Some("lookups"), "title"), 6);
        assert_eq!(line_of(yaml, Some("fields"), "missing"), 2);
    }
}
