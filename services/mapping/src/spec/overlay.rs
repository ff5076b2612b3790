//! Tenant overrides: a tenant's `fields`, `custom_fields` and `lookups` laid over a connector
//! spec, checked as strictly as the spec itself.
//!
//! An override is YAML with any of the three sections, in the spec format. Its entries add to
//! the spec's sections or replace the entry with the same name (a canonical target, a custom
//! field name, a lookup name). Its expressions must be ones the fast path runs natively (paths,
//! string literals, `+`, and the simple filters listed in `fast`), because tenants write them:
//! such expressions always finish, so a tenant cannot tie up a transform with `repeat(.)`.

use std::collections::HashSet;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::fast::FastExpr;
use super::record::PathTable;
use super::{CompiledSpec, SpecProblem, expr};

/// The sections an override may have.
const SECTIONS: [&str; 3] = ["fields", "custom_fields", "lookups"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default)]
    fields: Mapping,
    #[serde(default)]
    custom_fields: Mapping,
    #[serde(default)]
    lookups: Mapping,
}

/// Compiles `spec` (the connector's spec file) with `override_yaml` laid over it. Problems name
/// the override (`name`) and the entry at fault.
pub fn compile_with_override(
    spec: &CompiledSpec,
    name: &str,
    override_yaml: &str,
) -> Result<CompiledSpec, Vec<SpecProblem>> {
    let problem = |line: u32, message: String| SpecProblem {
        file: name.to_owned(),
        line,
        message,
    };
    let yaml_problem = |error: serde_yaml_ng::Error| {
        let line = error
            .location()
            .map_or(0, |location| location.line() as u32);
        vec![problem(line, error.to_string())]
    };
    let mut document: Mapping = match serde_yaml_ng::from_str::<Option<Mapping>>(override_yaml) {
        Ok(document) => document.unwrap_or_default(),
        Err(error) => return Err(yaml_problem(error)),
    };
    let mut problems = Vec::new();
    // An unknown section is told beside the other problems, not instead of them.
    document.retain(|key, _| {
        let known = key.as_str().is_some_and(|key| SECTIONS.contains(&key));
        if !known {
            let key_text = key.as_str().unwrap_or("(not a name)");
            problems.push(problem(
                super::document::line_of(override_yaml, None, key_text),
                format!(
                    "unknown section {key_text:?}; an override has {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
        known
    });
    let raw: RawOverride =
        serde_yaml_ng::from_value(Yaml::Mapping(document)).map_err(yaml_problem)?;

    // The entries already at fault, so compiling the merged spec does not name them twice.
    let mut faulty: HashSet<(String, String)> = HashSet::new();
    let mut check = |section: &str, key: &Yaml, source: Option<&str>| {
        let key_text = key.as_str().map(str::to_owned).unwrap_or_else(|| {
            serde_yaml_ng::to_string(key)
                .unwrap_or_default()
                .trim()
                .to_owned()
        });
        let Some(source) = source else {
            return;
        };
        let fast = FastExpr::parse(source, &mut PathTable::default());
        let message = if expr::plain_path(source.trim()).is_some() {
            None
        } else if let Some(fast) = fast {
            // A custom field holds one value: a split always fails every record, so it is
            // refused now rather than found by the first sync.
            (section == "custom_fields" && fast.yields_list()).then(|| {
                format!(
                    "{section} {key_text}: {source:?} gives a list; a custom field holds one \
                     string, number or boolean"
                )
            })
        } else {
            // A typo is told as one, not as a feature the tenant may not use.
            Some(match expr::Expr::jq_error(source) {
                Some(error) => format!("{section} {key_text}: {source:?} is not valid jq: {error}"),
                None => format!(
                    "{section} {key_text}: {source:?} is not allowed in a tenant override; use \
                     paths, string literals, + and tostring, ascii_downcase, ascii_upcase, \
                     numbers, strings, split(\"...\"), epoch_millis_to_rfc3339"
                ),
            })
        };
        if let Some(message) = message {
            problems.push(problem(
                super::document::line_of(override_yaml, Some(section), &key_text),
                message,
            ));
            faulty.insert((section.to_owned(), key_text));
        }
    };
    for (key, rule) in &raw.fields {
        match rule {
            Yaml::String(source) => check("fields", key, Some(source)),
            Yaml::Mapping(rule) => check("fields", key, rule.get("expr").and_then(Yaml::as_str)),
            _ => check("fields", key, None),
        }
    }
    for (key, source) in &raw.custom_fields {
        check("custom_fields", key, source.as_str());
    }

    let mut merged: Mapping = serde_yaml_ng::from_str(spec.source()).map_err(|error| {
        vec![problem(
            0,
            format!("the connector spec does not parse: {error}"),
        )]
    })?;
    for (section, entries) in [
        ("fields", raw.fields),
        ("custom_fields", raw.custom_fields),
        ("lookups", raw.lookups),
    ] {
        if entries.is_empty() {
            continue;
        }
        let slot = merged
            .entry(Yaml::from(section))
            .or_insert_with(|| Yaml::Mapping(Mapping::new()));
        if !slot.is_mapping() {
            *slot = Yaml::Mapping(Mapping::new());
        }
        if let Yaml::Mapping(existing) = slot {
            for (key, value) in entries {
                existing.insert(key, value);
            }
        }
    }
    let merged_yaml = serde_yaml_ng::to_string(&merged)
        .map_err(|error| vec![problem(0, format!("cannot merge the override: {error}"))])?;
    let compiled = CompiledSpec::compile(name, &merged_yaml);
    // Lines of the merged document mean nothing to the tenant: a problem with an entry of the
    // override points at that entry's line in the override (0 when the entry is the spec's).
    if let Err(found) = &compiled {
        for found in found {
            let entry = super::document::entry_at(&merged_yaml, found.line);
            if entry.as_ref().is_some_and(|entry| faulty.contains(entry)) {
                continue;
            }
            let line = entry.map_or(0, |(section, key)| {
                super::document::line_of(override_yaml, Some(&section), &key)
            });
            problems.push(problem(line, found.message.clone()));
        }
    }
    match compiled {
        Ok(compiled) if problems.is_empty() => Ok(compiled),
        _ => {
            // In the order of the tenant's YAML.
            problems.sort_by_key(|problem| problem.line);
            Err(problems)
        }
    }
}
