//! Tenant overrides: a tenant's `fields`, `custom_fields` and `lookups` laid over a connector
//! spec, checked as strictly as the spec itself.
//!
//! An override is YAML with any of the three sections, in the spec format. Its entries add to
//! the spec's sections or replace the entry with the same name (a canonical target, a custom
//! field name, a lookup name). Its expressions must be ones the fast path runs natively (paths,
//! string literals, `+`, and the simple filters listed in `fast`), because tenants write them:
//! such expressions always finish, so a tenant cannot tie up a transform with `repeat(.)`.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value as Yaml};

use super::fast::FastExpr;
use super::record::PathTable;
use super::{CompiledSpec, SpecProblem, expr};

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
    let raw: RawOverride = serde_yaml_ng::from_str(override_yaml).map_err(|error| {
        let line = error
            .location()
            .map_or(0, |location| location.line() as u32);
        vec![problem(line, error.to_string())]
    })?;

    let mut problems = Vec::new();
    let mut check = |section: &str, key: &Yaml, source: Option<&str>| {
        let key_text = key.as_str().map(str::to_owned).unwrap_or_else(|| {
            serde_yaml_ng::to_string(key)
                .unwrap_or_default()
                .trim()
                .to_owned()
        });
        if let Some(source) = source
            && expr::plain_path(source.trim()).is_none()
            && FastExpr::parse(source, &mut PathTable::default()).is_none()
        {
            // A typo is told as one, not as a feature the tenant may not use.
            let message = match expr::Expr::jq_error(source) {
                Some(error) => format!("{section} {key_text}: {source:?} is not valid jq: {error}"),
                None => format!(
                    "{section} {key_text}: {source:?} is not allowed in a tenant override; use \
                     paths, string literals, + and tostring, ascii_downcase, ascii_upcase, \
                     numbers, strings, split(\"...\"), epoch_millis_to_rfc3339"
                ),
            };
            problems.push(problem(
                super::document::line_of(override_yaml, Some(section), &key_text),
                message,
            ));
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
    if !problems.is_empty() {
        return Err(problems);
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
    // Lines of the merged document mean nothing to the tenant: problems keep the messages,
    // which name the field, and point at the override.
    CompiledSpec::compile(name, &merged_yaml).map_err(|problems| {
        problems
            .into_iter()
            .map(|found| problem(0, found.message))
            .collect()
    })
}
