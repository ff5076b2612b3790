use std::collections::BTreeMap;

use plugboard_proto::common::v1::canonical_record::Body;

use super::inbound::content_hash;
use super::*;

const SPEC: &str = r#"version: 1
connector: acme
entity: job
direction: inbound
external_id: .id
lookups:
  status:
    map:
      Active: open
      Done: closed
  kind:
    map:
      C: contract
    default: temporary
fields:
  title:
    expr: .name
    required: true
  status:
    expr: .state
    lookup: status
  employment_type:
    expr: .kind
    lookup: kind
  openings: .seats
  pay_rate.money.amount: .pay // empty | tostring
  pay_rate.money.currency:
    default: EUR
  pay_rate.period:
    default: hour
  location.city: .where.city
  description:
    expr: .text
    default: none given
custom_fields:
  priority: .priority
"#;

fn spec() -> CompiledSpec {
    CompiledSpec::compile("acme/job.inbound.yaml", SPEC).expect("the test spec compiles")
}

fn job(record: &MappedRecord) -> &plugboard_proto::common::v1::Job {
    match &record.body {
        Body::Job(job) => job,
        other => panic!("expected a job, got {other:?}"),
    }
}

#[test]
fn maps_nested_targets_lookups_defaults_and_custom_fields() {
    let record = spec()
        .transform(
            r#"{"id": 7, "name": "Welder", "state": "active", "kind": "C", "seats": 2,
                "pay": 31.5, "where": {"city": "Leeds"}, "priority": 3}"#,
        )
        .unwrap();
    assert_eq!(record.external_id, "7");
    let job = job(&record);
    assert_eq!(job.title, "Welder");
    assert_eq!(job.status, "open", "lookup matches ignoring case");
    assert_eq!(job.employment_type, "contract");
    assert_eq!(job.openings, 2);
    let pay = job.pay_rate.as_ref().unwrap();
    assert_eq!(pay.money.as_ref().unwrap().amount, "31.5");
    assert_eq!(pay.money.as_ref().unwrap().currency, "EUR");
    assert_eq!(pay.period, "hour");
    assert_eq!(job.location.as_ref().unwrap().city, "Leeds");
    assert_eq!(job.description, "none given");
    assert_eq!(
        record.custom_fields.get("priority").map(String::as_str),
        Some("3")
    );
    assert!(
        record.content_hash.starts_with("pb:"),
        "{}",
        record.content_hash
    );
    assert_eq!(record.content_hash.len(), 67);
}

#[test]
fn defaults_never_create_a_nested_object_alone() {
    let record = spec()
        .transform(r#"{"id": "j1", "name": "Welder", "kind": "X"}"#)
        .unwrap();
    let job = job(&record);
    assert_eq!(
        job.pay_rate, None,
        "currency and period defaults alone make no rate"
    );
    assert_eq!(job.location, None);
    assert_eq!(job.employment_type, "temporary", "lookup default");
    assert_eq!(job.status, "", "no value, no lookup");
    assert!(record.custom_fields.is_empty());
}

#[test]
fn equal_content_hashes_equal_and_changes_show() {
    let spec = spec();
    let a = spec
        .transform(r#"{"id": 1, "name": "A", "noise": 1}"#)
        .unwrap();
    let b = spec
        .transform(r#"{"name": "A", "id": 1, "noise": 2}"#)
        .unwrap();
    let c = spec.transform(r#"{"id": 1, "name": "B"}"#).unwrap();
    assert_eq!(
        a.content_hash, b.content_hash,
        "unmapped partner fields do not count"
    );
    assert_ne!(a.content_hash, c.content_hash);
}

/// The content hash is `pb:` and SHA-256 over the body's protobuf encoding and the custom
/// fields, each length-prefixed: sync has stored it for every record and compares it to find
/// changes, so however it is computed it must stay this (another way is another scheme, see
/// `plugboard_proto::content_hash`).
#[test]
fn the_content_hash_is_the_hash_of_the_records_protobuf_encoding() {
    use prost::Message;
    use sha2::Digest;
    let record = spec()
        .transform(
            r#"{"id": 7, "name": "Welder \"Ö\"", "state": "Done", "seats": 2, "pay": 31.50,
                "where": {"city": "Leeds"}, "priority": "high"}"#,
        )
        .unwrap();
    // A job is field 3 of the body oneof: its tag (length-delimited), the length and the
    // job's encoding.
    let job = job(&record).encode_to_vec();
    let mut bytes = vec![3 << 3 | 2];
    prost::encoding::encode_varint(job.len() as u64, &mut bytes);
    bytes.extend_from_slice(&job);
    bytes.extend_from_slice(b"\x08priority\x04high");
    assert_eq!(
        record.content_hash,
        format!("pb:{}", hex::encode(sha2::Sha256::digest(&bytes)))
    );
    // And the digest itself, so that a change to how prost encodes a job shows here.
    assert_eq!(
        record.content_hash,
        "pb:26b9cf8bbdb5cc1f446d9387bd3e3821e4637b71c505191ceafc83c85d169a8b"
    );
}

/// Equal bodies built apart hash equally, and the length prefixes keep custom fields apart.
#[test]
fn equal_bodies_hash_equally_and_custom_fields_do_not_run_together() {
    let spec = spec();
    let payload = r#"{"id": 3, "name": "Fitter", "where": {"city": "York"}, "seats": 1}"#;
    let first = spec.transform(payload).unwrap();
    let second = spec
        .transform(r#"{"seats": 1, "where": {"city": "York"}, "name": "Fitter", "id": 3}"#)
        .unwrap();
    assert_eq!(first.body, second.body);
    assert_eq!(first.content_hash, second.content_hash);

    let split = |name: &str, value: &str| {
        content_hash(
            &first.body,
            &BTreeMap::from([(name.to_owned(), value.to_owned())]),
        )
    };
    assert_ne!(split("ab", "c"), split("a", "bc"));
    assert_ne!(split("a", "b"), content_hash(&first.body, &BTreeMap::new()));
}

#[test]
fn required_field_missing_names_the_path() {
    let error = spec().transform(r#"{"id": 1, "name": null}"#).unwrap_err();
    assert_eq!(error.field_path, "title");
    assert_eq!(error.partner_value, "null");
    assert!(error.message.contains("required"), "{error}");
}

#[test]
fn lookup_miss_without_default_names_path_and_value() {
    let error = spec()
        .transform(r#"{"id": 1, "name": "A", "state": "Paused"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "status");
    assert_eq!(error.partner_value, "\"Paused\"");
    assert!(error.message.contains("not in lookup status"), "{error}");
}

#[test]
fn type_mismatch_names_the_canonical_path_and_partner_value() {
    let error = spec()
        .transform(r#"{"id": 1, "name": "A", "seats": "two"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "openings");
    assert_eq!(error.partner_value, "\"two\"");
    assert!(error.message.contains("canonical job"), "{error}");

    let yaml = SPEC.replace(".pay // empty | tostring", ".pay");
    let spec = CompiledSpec::compile("t.yaml", &yaml).unwrap();
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": 12.5}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.money.amount");
    assert_eq!(error.partner_value, "12.5");
}

#[test]
fn jq_runtime_error_names_the_path_and_value() {
    let yaml = SPEC.replace(".pay // empty | tostring", ".pay | tonumber | tostring");
    let spec = CompiledSpec::compile("t.yaml", &yaml).unwrap();
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": "lots"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.money.amount");
    assert_eq!(error.partner_value, "\"lots\"");
    assert!(error.message.contains("failed"), "{error}");
}

#[test]
fn invalid_payload_and_missing_external_id_fail_the_record() {
    let error = spec().transform("{not json").unwrap_err();
    assert_eq!(error.field_path, "$");
    assert!(error.message.starts_with("invalid JSON payload"), "{error}");
    let error = spec().transform(r#"{"name": "A"}"#).unwrap_err();
    assert_eq!(error.field_path, "external_id");
}

#[test]
fn partner_values_are_truncated() {
    let long = "x".repeat(500);
    let error = spec()
        .transform(&format!(r#"{{"id": 1, "name": "A", "state": "{long}"}}"#))
        .unwrap_err();
    assert_eq!(error.partner_value.chars().count(), MAX_PARTNER_VALUE_CHARS);
}

#[test]
fn invalid_yaml_reports_its_line() {
    let yaml = "version: 1\nconnector: acme\nentity: job\nfields:\n  title: .a\n   bad: [\n";
    let problems = CompiledSpec::compile("broken.yaml", yaml).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].file, "broken.yaml");
    assert_eq!(problems[0].line, 6, "{}", problems[0]);
}

#[test]
fn semantic_problems_name_field_line_and_expression() {
    let yaml = SPEC
        .replace("  openings: .seats", "  openings: .seats | (")
        .replace(
            "  location.city: .where.city",
            "  location.town: .where.city",
        )
        .replace("    lookup: kind", "    lookup: kinds");
    let problems = CompiledSpec::compile("t.yaml", &yaml).unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("t.yaml:25: field openings: jq expression \".seats | (\"")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("t.yaml:31: field location.town: not a field")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("t.yaml:22: field employment_type: no lookup named \"kinds\"")),
        "{messages:#?}"
    );
}

#[test]
fn unknown_keys_versions_and_conflicting_targets_are_refused() {
    let problems =
        CompiledSpec::compile("t.yaml", &SPEC.replace("version: 1", "version: 2")).unwrap_err();
    assert!(problems[0].message.contains("unsupported spec version 2"));
    assert_eq!(problems[0].line, 1);

    let problems = CompiledSpec::compile(
        "t.yaml",
        &SPEC.replace("    required: true", "    requird: true"),
    )
    .unwrap_err();
    assert!(
        problems[0].message.contains("unknown field `requird`"),
        "{:?}",
        problems
    );

    let yaml = SPEC.replace(
        "  openings: .seats",
        "  openings: .seats\n  pay_rate: .rate",
    );
    let problems = CompiledSpec::compile("t.yaml", &yaml).unwrap_err();
    assert!(
        problems[0]
            .message
            .contains("also the parent of field pay_rate."),
        "{:?}",
        problems
    );

    let yaml = SPEC.replace("  openings: .seats", "  title.x: .seats");
    assert!(
        CompiledSpec::compile("t.yaml", &yaml).is_err(),
        "a scalar has no sub-fields"
    );
}

#[test]
fn money_without_currency_and_rates_without_period_fail_with_the_path() {
    let yaml = SPEC.replace(
        "  pay_rate.money.currency:\n    default: EUR",
        "  pay_rate.money.currency: .currency",
    );
    let spec = CompiledSpec::compile("t.yaml", &yaml).unwrap();
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": 31.5}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.money.currency");
    assert_eq!(
        error.partner_value, "null",
        "the partner's (missing) currency"
    );
    assert!(error.message.contains("no currency"), "{error}");
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": 31.5, "currency": "€"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.money.currency");
    assert_eq!(error.partner_value, "\"€\"");
    // No amount, no rate to check.
    assert!(spec.transform(r#"{"id": 1, "name": "A"}"#).is_ok());

    let yaml = SPEC.replace(
        "  pay_rate.period:\n    default: hour",
        "  pay_rate.period: .per",
    );
    let spec = CompiledSpec::compile("t.yaml", &yaml).unwrap();
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": 31.5, "per": "shift"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.period");
    assert_eq!(error.partner_value, "\"shift\"");
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "pay": 31.5}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "pay_rate.period");
    assert!(error.message.contains("needs its period"), "{error}");
}

#[test]
fn a_job_time_zone_must_be_an_iana_zone() {
    let yaml = SPEC.replace("  openings: .seats", "  time_zone: .tz");
    let spec = CompiledSpec::compile("t.yaml", &yaml).unwrap();
    let record = spec
        .transform(r#"{"id": 1, "name": "A", "tz": "America/Chicago"}"#)
        .unwrap();
    assert_eq!(job(&record).time_zone, "America/Chicago");
    let error = spec
        .transform(r#"{"id": 1, "name": "A", "tz": "CST"}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "time_zone");
    assert_eq!(error.partner_value, "\"CST\"");
}

/// The typed body read straight from the field values equals the one read from the built JSON
/// object, on every record of the benchmark fixture and on this file's own spec.
#[test]
fn the_shape_deserializer_reads_what_the_json_object_holds() {
    let bench = CompiledSpec::compile(
        "candidate.inbound.yaml",
        include_str!("../../benches/candidate.inbound.yaml"),
    )
    .unwrap();
    let fixture: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../tests/fixtures/bench_candidates.json")).unwrap();
    assert!(fixture.len() >= 300);
    let job_record = serde_json::json!({"id": 7, "name": "Welder", "state": "active",
        "kind": "C", "seats": 2, "pay": 31.5, "where": {"city": "Leeds"}});
    let job_spec = spec();
    for (spec, record) in fixture
        .iter()
        .map(|record| (&bench, record))
        .chain([(&job_spec, &job_record)])
    {
        let payload = record.to_string();
        let typed = spec.transform(&payload).unwrap();
        let input = super::record::Record::parse(&payload, &spec.paths).unwrap();
        let mapped = spec.mapped_object(&input).unwrap();
        let via_json = super::inbound::read_body(spec.entity(), &mapped).unwrap();
        assert_eq!(typed.body, via_json, "{payload}");
    }
}

fn bullhorn_candidate() -> CompiledSpec {
    CompiledSpec::compile(
        "candidate.inbound.yaml",
        include_str!("../../../connector-bullhorn/mappings/candidate.inbound.yaml"),
    )
    .unwrap()
}

#[test]
fn override_problems_are_all_told_each_at_its_line_in_the_override() {
    let yaml = "fields:\n  email: .email\n  shoe_size: .y\ncustom_fields:\n  b: .x | repeat(.)\n";
    let problems = compile_with_override(&bullhorn_candidate(), "override", yaml).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    let shoe = problems
        .iter()
        .find(|problem| problem.message.contains("shoe_size"))
        .expect("the unknown target");
    assert_eq!(shoe.line, 3, "{shoe}");
    assert!(shoe.message.contains("not a field"), "{shoe}");
    let repeat = problems
        .iter()
        .find(|problem| problem.message.contains("repeat"))
        .expect("the disallowed expression");
    assert_eq!(repeat.line, 5, "{repeat}");
    assert!(repeat.message.contains("not allowed"), "{repeat}");
}

#[test]
fn an_override_whose_custom_field_gives_a_list_is_refused_when_saved() {
    let yaml = "custom_fields:\n  skills: .skillSet | split(\", \")\n";
    let problems = compile_with_override(&bullhorn_candidate(), "override", yaml).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 2);
    assert!(
        problems[0].message.contains("gives a list"),
        "{}",
        problems[0]
    );
    // The same split into a list field of the canonical candidate is fine.
    compile_with_override(
        &bullhorn_candidate(),
        "override",
        "fields:\n  skills: .skillSet | split(\", \")\n",
    )
    .unwrap();
}

#[test]
fn an_unknown_section_is_told_beside_the_other_problems_in_line_order() {
    let yaml =
        "fields:\n  address.planet: .x\nextras:\n  a: 1\ncustom_fields:\n  b: .x | repeat(.)\n";
    let problems = compile_with_override(&bullhorn_candidate(), "override", yaml).unwrap_err();
    let lines: Vec<u32> = problems.iter().map(|problem| problem.line).collect();
    assert_eq!(lines, vec![2, 3, 6], "{problems:?}");
    assert!(problems[0].message.contains("planet"), "{}", problems[0]);
    assert!(
        problems[1].message.contains("unknown section \"extras\""),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].message.contains("not allowed"),
        "{}",
        problems[2]
    );
}
