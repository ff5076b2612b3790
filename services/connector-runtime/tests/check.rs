//! `plugboard connector check`: every kind of broken manifest or mapping it refuses, each
//! with the file, the line and the problem. Each case breaks a copy of the shipped Greenhouse
//! connector in one place.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use plugboard_connector_runtime::manifest::Problem;
use plugboard_connector_runtime::tooling;

fn greenhouse() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-greenhouse")
}

/// A copy of the Greenhouse folder with `file` rewritten by `edit`.
fn broken(file: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pb-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    for name in [
        "manifest.yaml",
        "mappings/candidate.inbound.yaml",
        "mappings/job.inbound.yaml",
        "mappings/application.inbound.yaml",
    ] {
        let text = std::fs::read_to_string(greenhouse().join(name)).unwrap();
        let text = if name == file { edit(&text) } else { text };
        assert!(
            name != file || text != std::fs::read_to_string(greenhouse().join(name)).unwrap(),
            "the edit of {name} changed nothing"
        );
        // An edit to nothing removes the file.
        if !text.is_empty() {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    dir
}

/// The one problem check reports, after asserting its file, line and message.
fn refused(dir: &Path, file: &str, line: u32, message: &str) -> Problem {
    let problems = tooling::check(dir).expect_err("check should refuse the folder");
    let problem = problems
        .iter()
        .find(|p| p.message.contains(message))
        .unwrap_or_else(|| panic!("no problem mentions {message:?}: {problems:#?}"))
        .clone();
    assert!(problem.file.ends_with(file), "{problem}");
    assert_eq!(problem.line, line, "{problem}");
    let _ = std::fs::remove_dir_all(dir);
    problem
}

fn line_of(file: &str, needle: &str) -> u32 {
    let text = std::fs::read_to_string(greenhouse().join(file)).unwrap();
    text.lines().position(|line| line.contains(needle)).unwrap() as u32 + 1
}

/// Every shipped manifest is valid against the published JSON Schema editors use.
#[test]
fn every_shipped_manifest_validates_against_the_json_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("..")).unwrap() {
        let path = entry.unwrap().path().join("manifest.yaml");
        if !path.exists() {
            continue;
        }
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&yaml)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked += 1;
    }
    assert!(checked >= 2, "{checked} manifests");
}

#[test]
fn the_shipped_connector_passes() {
    let loaded = tooling::check(&greenhouse()).unwrap();
    assert_eq!(loaded.manifest.name, "greenhouse");
    assert_eq!(loaded.mappings.len(), 3);
    assert_eq!(loaded.manifest.credential_kind(), "api_key");
}

#[test]
fn yaml_syntax_errors_point_at_their_line() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("category: ats", "category: ats: x")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "category: ats"),
        "mapping values are not allowed",
    );
}

#[test]
fn unknown_keys_are_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("display_name:", "displayname:")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "display_name:"),
        "unknown field `displayname`",
    );
}

#[test]
fn an_unsupported_version_is_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("manifest_version: 1", "manifest_version: 7")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "manifest_version"),
        "unsupported manifest_version 7",
    );
}

#[test]
fn an_unknown_category_is_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("category: ats", "category: crm")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "category: ats"),
        "unknown category \"crm\"",
    );
}

#[test]
fn a_stream_entity_must_be_canonical() {
    let dir = broken("manifest.yaml", |t| {
        t.replacen("entity: job", "entity: vacancy", 1)
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "entity: job"),
        "unknown entity \"vacancy\"",
    );
}

#[test]
fn an_unknown_pagination_type_is_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replacen("type: link_header", "type: link", 1)
    });
    let problem = refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "type: link_header"),
        "unknown variant `link`",
    );
    assert!(problem.message.contains("link_header"), "{problem}");
}

#[test]
fn templates_may_only_read_declared_settings() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("{{ settings.base_url }}", "{{ settings.baseurl }}")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "base_url: \"{{"),
        "setting \"baseurl\", which `settings` does not declare",
    );
}

#[test]
fn templates_may_only_read_their_scope() {
    let dir = broken("manifest.yaml", |t| {
        t.replace(
            "username: \"{{ secret.key }}\"",
            "username: \"{{ record.key }}\"",
        )
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "username:"),
        "reads \"record\"",
    );
}

#[test]
fn unclosed_templates_are_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replace(
            "path: \"/v1/candidates/{{ external_id }}\"",
            "path: \"/v1/candidates/{{ external_id\"",
        )
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "update:"),
        "without }}",
    );
}

#[test]
fn an_invalid_cursor_format_is_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replacen(
            "field: updated_at}",
            "field: updated_at, format: yyyy-mm-dd}",
            1,
        )
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "incremental:"),
        "is not rfc3339",
    );
}

#[test]
fn json_pointers_must_be_pointers() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("event_type: /action", "event_type: action")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "event_type:"),
        "\"action\" is not a JSON pointer",
    );
}

#[test]
fn a_zero_rate_limit_is_refused() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("requests: 50", "requests: 0")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "rate_limit:"),
        "must be at least 1",
    );
}

#[test]
fn a_webhook_event_must_name_a_canonical_entity() {
    let dir = broken("manifest.yaml", |t| {
        t.replace(
            "candidate_stage_change: {entity: application",
            "candidate_stage_change: {entity: stage",
        )
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "candidate_stage_change"),
        "unknown entity \"stage\"",
    );
}

#[test]
fn mapping_jq_errors_come_from_the_mapping_compiler() {
    let dir = broken("mappings/job.inbound.yaml", |t| {
        t.replace("description: .notes", "description: .notes | ]")
    });
    refused(
        &dir,
        "mappings/job.inbound.yaml",
        line_of("mappings/job.inbound.yaml", "description:"),
        "does not compile",
    );
}

#[test]
fn mapping_targets_must_be_canonical_fields() {
    let dir = broken("mappings/candidate.inbound.yaml", |t| {
        t.replace("current_employer: .company", "employer: .company")
    });
    refused(
        &dir,
        "mappings/candidate.inbound.yaml",
        line_of("mappings/candidate.inbound.yaml", "current_employer"),
        "employer",
    );
}

#[test]
fn a_mapping_must_belong_to_the_manifest() {
    let dir = broken("mappings/job.inbound.yaml", |t| {
        t.replace("connector: greenhouse", "connector: lever")
    });
    refused(
        &dir,
        "mappings/job.inbound.yaml",
        line_of("mappings/job.inbound.yaml", "connector:"),
        "for connector \"lever\"",
    );
}

#[test]
fn every_stream_needs_an_inbound_mapping() {
    let dir = broken("mappings/application.inbound.yaml", |_| String::new());
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "entity: application"),
        "stream applications reads application but mappings/ has no inbound spec",
    );
}

#[test]
fn every_inbound_mapping_needs_a_stream() {
    let dir = broken("manifest.yaml", |t| {
        t.replace("entity: job", "entity: placement")
    });
    refused(
        &dir,
        "mappings/job.inbound.yaml",
        line_of("mappings/job.inbound.yaml", "entity:"),
        "no stream or document of the manifest reads job",
    );
}

/// A copy of the Bullhorn folder with its manifest rewritten by `edit`.
fn broken_bullhorn(edit: impl Fn(&str) -> String) -> PathBuf {
    let source = greenhouse().join("../connector-bullhorn");
    let dir = std::env::temp_dir().join(format!("pb-check-bh-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    for entry in std::fs::read_dir(source.join("mappings")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("mappings").join(path.file_name().unwrap())).unwrap();
    }
    let manifest = std::fs::read_to_string(source.join("manifest.yaml")).unwrap();
    let edited = edit(&manifest);
    assert_ne!(edited, manifest, "the edit changed nothing");
    std::fs::write(dir.join("manifest.yaml"), edited).unwrap();
    dir
}

fn bullhorn_line_of(needle: &str) -> u32 {
    let text =
        std::fs::read_to_string(greenhouse().join("../connector-bullhorn/manifest.yaml")).unwrap();
    text.lines().position(|line| line.contains(needle)).unwrap() as u32 + 1
}

#[test]
fn a_login_step_may_only_read_what_earlier_steps_captured() {
    let dir =
        broken_bullhorn(|t| t.replace("{{ steps.authorize.code }}", "{{ steps.token.code }}"));
    refused(
        &dir,
        "manifest.yaml",
        bullhorn_line_of("steps:"),
        "reads no value an earlier login step captures",
    );
}

#[test]
fn a_login_needs_request_or_steps() {
    let dir =
        broken_bullhorn(|t| t.replacen("  steps:\n", "  request: {url: /login}\n  steps:\n", 1));
    refused(
        &dir,
        "manifest.yaml",
        bullhorn_line_of("auth:"),
        "exactly one of request or steps",
    );
}

#[test]
fn keyset_paging_needs_offset_pagination() {
    let dir = broken_bullhorn(|t| t.replace("type: start_count", "type: link_header"));
    refused(
        &dir,
        "manifest.yaml",
        bullhorn_line_of("incremental: &modified"),
        "incremental.keyset needs offset or start_count pagination",
    );
}

#[test]
fn an_initial_cursor_must_be_in_the_cursor_format() {
    let dir = broken_bullhorn(|t| t.replace("initial: 0", "initial: yesterday"));
    refused(
        &dir,
        "manifest.yaml",
        bullhorn_line_of("incremental: &modified"),
        "incremental.initial \"yesterday\" is not a epoch_millis value",
    );
}

#[test]
fn scaffolded_connectors_pass_check_and_count_their_lines() {
    let services = std::env::temp_dir().join(format!("pb-new-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&services).unwrap();
    let dir = tooling::scaffold(&services, "acme-ats").unwrap();
    let loaded = tooling::check(&dir).unwrap();
    assert_eq!(loaded.manifest.name, "acme-ats");
    assert!(tooling::scaffold(&services, "acme-ats").is_err());
    assert!(tooling::scaffold(&services, "Bad Name").is_err());
    let rows = tooling::stats(&services).unwrap();
    assert_eq!(rows.len(), 1);
    let manifest = std::fs::read_to_string(dir.join("manifest.yaml")).unwrap();
    let counted = manifest
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .count();
    assert_eq!(rows[0].manifest_lines, counted);
    assert_eq!(rows[0].rust_lines, 0);
    assert_eq!(rows[0].streams, 1);
    let _ = std::fs::remove_dir_all(services);
}

/// The exact counts of the shipped connectors, and the table in docs/connectors.md says the
/// same: when a manifest or mapping changes, update both.
#[test]
fn stats_counts_the_shipped_connectors() {
    let rows = tooling::stats(&greenhouse().join("..")).unwrap();
    let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
    let greenhouse = row("greenhouse");
    assert_eq!(
        (
            greenhouse.category.as_str(),
            greenhouse.streams,
            greenhouse.writes,
            greenhouse.webhook_events,
            greenhouse.manifest_lines,
            greenhouse.mapping_lines,
            greenhouse.rust_lines
        ),
        ("ats", 3, 2, 3, 72, 60, 0)
    );
    let bullhorn = row("bullhorn");
    assert_eq!(
        (
            bullhorn.category.as_str(),
            bullhorn.streams,
            bullhorn.manifest_lines,
            bullhorn.rust_lines
        ),
        ("ats", 4, 81, 0)
    );
    let docs = std::fs::read_to_string(connectors_doc()).unwrap();
    for row in &rows {
        let expected = format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.category,
            row.streams,
            row.writes,
            row.webhook_events,
            row.manifest_lines,
            row.mapping_lines,
            row.rust_lines
        );
        assert!(
            docs.lines().any(|line| line.trim() == expected),
            "docs/connectors.md has no row {expected}"
        );
    }
    assert!(tooling::render_stats(&rows).contains("greenhouse"));
}

fn connectors_doc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/connectors.md")
}

/// The published JSON Schema names exactly the keys the runtime reads, at every level a
/// manifest can spell out (serde writes every field, set or not).
#[test]
fn the_json_schema_matches_the_manifest_types() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let manifest = tooling::check(&greenhouse()).unwrap().manifest;
    let written = serde_json::to_value(&manifest).unwrap();
    let keys = |value: &serde_json::Value| -> std::collections::BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let properties = |pointer: &str| keys(&schema.pointer(pointer).unwrap()["properties"]);
    assert_eq!(keys(&written), properties(""));
    assert_eq!(
        keys(&written["streams"]["candidates"]),
        properties("/properties/streams/additionalProperties")
    );
    assert_eq!(
        keys(&written["rate_limit"]),
        properties("/properties/rate_limit")
    );
    assert_eq!(
        keys(&written["webhooks"]),
        properties("/properties/webhooks")
    );
    assert_eq!(
        keys(&written["webhooks"]["signature"]),
        properties("/properties/webhooks/properties/signature")
    );
    assert_eq!(
        keys(&written["streams"]["candidates"]["incremental"]),
        properties("/properties/streams/additionalProperties/properties/incremental")
    );
    let basic = schema["properties"]["auth"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|variant| variant["properties"]["type"]["const"] == "basic")
        .unwrap();
    assert_eq!(keys(&written["auth"]), keys(&basic["properties"]));
}

#[test]
fn a_write_body_is_a_template_or_the_outbound_spec_not_both() {
    let dir = broken("manifest.yaml", |t| {
        t.replacen(
            "      path: /v1/candidates\n",
            "      path: /v1/candidates\n      mapping: true\n",
            1,
        )
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "    create:"),
        "a body template or `mapping: true`, not both",
    );
}

#[test]
fn a_mapped_write_needs_an_outbound_spec() {
    let dir = broken("manifest.yaml", |t| {
        let update_body = "      body:\n        first_name: \"{{ record.first_name }}\"\n        \
                           last_name: \"{{ record.last_name }}\"\n        company: \
                           \"{{ record.current_employer }}\"\n        title: \
                           \"{{ record.current_title }}\"\nwebhooks:";
        t.replace(update_body, "      mapping: true\nwebhooks:")
    });
    refused(
        &dir,
        "manifest.yaml",
        line_of("manifest.yaml", "  candidate:"),
        "mappings/ has no outbound spec for candidate",
    );
}

/// A copy of the RChilli folder (a parser: no streams, the key in the body) with its
/// manifest rewritten by `edit`; the problems `check` reports about it.
fn broken_parser(edit: impl Fn(&str) -> String) -> Vec<Problem> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-rchilli");
    let dir = std::env::temp_dir().join(format!("pb-check-parser-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    for name in [
        "mappings/candidate.inbound.yaml",
        "mappings/parsed_resume.inbound.yaml",
    ] {
        std::fs::copy(source.join(name), dir.join(name)).unwrap();
    }
    let manifest = std::fs::read_to_string(source.join("manifest.yaml")).unwrap();
    let edited = edit(&manifest);
    assert_ne!(edited, manifest, "the edit changed nothing");
    std::fs::write(dir.join("manifest.yaml"), edited).unwrap();
    let problems = tooling::check(&dir).expect_err("check should refuse the folder");
    let _ = std::fs::remove_dir_all(dir);
    problems
}

fn mentions(problems: &[Problem], message: &str) {
    let problem = problems
        .iter()
        .find(|p| p.message.contains(message))
        .unwrap_or_else(|| panic!("no problem mentions {message:?}: {problems:#?}"));
    assert!(problem.file.ends_with("manifest.yaml"), "{problem}");
    assert!(problem.line > 0, "{problem}");
}

#[test]
fn a_body_credential_must_be_the_one_the_auth_puts_there() {
    let problems = broken_parser(|t| {
        t.replace(
            "userkey: \"{{ auth.userkey }}\"",
            "userkey: \"{{ auth.key }}\"",
        )
    });
    mentions(
        &problems,
        "reads a credential the auth does not put in the body",
    );
    let problems = broken_parser(|t| {
        t.replace(
            "auth: {type: api_key, in: body, name: userkey}",
            "auth: {type: api_key, name: userkey}",
        )
    });
    mentions(
        &problems,
        "reads a credential the auth does not put in the body",
    );
}

#[test]
fn a_document_cost_must_be_a_decimal_in_an_iso_currency() {
    let problems = broken_parser(|t| {
        t.replace(
            "amount: \"0.05\", currency: USD",
            "amount: \"five cents\", currency: USD",
        )
    });
    mentions(&problems, "must be a decimal");
    let problems = broken_parser(|t| {
        t.replace(
            "amount: \"0.05\", currency: USD",
            "amount: \"0.05\", currency: dollars",
        )
    });
    mentions(&problems, "ISO 4217");
}

#[test]
fn a_connector_without_streams_needs_a_check_and_a_document() {
    let problems = broken_parser(|t| {
        let start = t.find("check:\n").unwrap();
        let end = t.find("documents:\n").unwrap();
        format!("{}{}", &t[..start], &t[end..])
    });
    mentions(&problems, "without streams needs a check request");
}

#[test]
fn error_codes_need_a_pointer_to_find_them() {
    let problems = broken_parser(|t| {
        t.replace(
            "      errors:\n        pointer: /error/errorcode\n        message: /error/errormsg\n",
            "      errors:\n",
        )
    });
    mentions(&problems, "errors.codes need errors.pointer");
}
