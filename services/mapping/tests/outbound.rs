//! Outbound specs: canonical records to partner payloads, and round trips through both
//! directions with the real Greenhouse inbound spec and Greenhouse's published samples.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::path::{Path, PathBuf};

use plugboard_mapping::spec::{CompiledSpec, MappedRecord};
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Address, Candidate, CanonicalRecord, Job};
use serde_json::{Value, json};

const GREENHOUSE_INBOUND: &str =
    include_str!("../../connector-greenhouse/mappings/candidate.inbound.yaml");
const GREENHOUSE_OUTBOUND: &str = include_str!("fixtures/greenhouse/candidate.outbound.yaml");

fn compile(name: &str, yaml: &str) -> CompiledSpec {
    CompiledSpec::compile(name, yaml).unwrap_or_else(|problems| panic!("{problems:#?}"))
}

fn harvest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/partners/greenhouse/harvest")
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(harvest().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every candidate object Greenhouse publishes in its Harvest docs that carries an id.
fn greenhouse_candidates() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for name in [
        "harvest__candidates__the-candidate-object__1.json",
        "harvest__candidates__get-retrieve-candidate__1.json",
        "harvest__candidates__get-list-candidates__1.json",
        "harvest__candidates__post-add-candidate__2.json",
    ] {
        match sample(name) {
            Value::Array(items) => found.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| (format!("{name}[{index}]"), item)),
            ),
            item => found.push((name.to_owned(), item)),
        }
    }
    found
}

fn candidate(record: &MappedRecord) -> &Candidate {
    match &record.body {
        Body::Candidate(candidate) => candidate,
        other => panic!("expected a candidate, got {other:?}"),
    }
}

/// What the partner holds after applying a write: the written keys replace its own.
fn apply_write(mut partner: Value, write: &Value) -> Value {
    for (key, value) in write.as_object().unwrap() {
        partner[key] = value.clone();
    }
    partner
}

fn as_record(mapped: MappedRecord) -> CanonicalRecord {
    mapped.into_canonical(String::new(), "conn-gh".to_owned())
}

#[test]
fn greenhouse_partner_to_canonical_to_partner_keeps_every_mapped_field() {
    let inbound = compile("candidate.inbound.yaml", GREENHOUSE_INBOUND);
    let outbound = compile("candidate.outbound.yaml", GREENHOUSE_OUTBOUND);
    let samples = greenhouse_candidates();
    assert!(samples.len() >= 4, "{}", samples.len());
    for (name, partner) in samples {
        let first = inbound.transform(&partner.to_string()).unwrap();
        let id = first.external_id.clone();
        let written = outbound
            .transform_record(&as_record(first.clone()), &id)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(written.external_id, id, "{name}");
        let payload = &written.payload;

        // The written fields are the partner's own values where the canonical model keeps them.
        for key in ["first_name", "last_name", "company", "title", "tags"] {
            let original = partner.get(key).cloned().unwrap_or(Value::Null);
            let empty = original.is_null() || original == json!([]);
            assert_eq!(
                payload.get(key).cloned().unwrap_or(Value::Null),
                if empty && key == "tags" {
                    json!([])
                } else {
                    original
                },
                "{name}: {key}"
            );
        }
        assert_eq!(payload["is_private"], partner["is_private"], "{name}");

        // And reading the partner's record after the write gives the same canonical record.
        let after = apply_write(partner.clone(), payload);
        let second = inbound.transform(&after.to_string()).unwrap();
        assert_eq!(second.body, first.body, "{name}: canonical body changed");
        assert_eq!(second.custom_fields, first.custom_fields, "{name}");
        assert_eq!(second.content_hash, first.content_hash, "{name}");
    }
}

#[test]
fn greenhouse_typed_lists_are_written_from_the_canonical_fields() {
    let inbound = compile("candidate.inbound.yaml", GREENHOUSE_INBOUND);
    let outbound = compile("candidate.outbound.yaml", GREENHOUSE_OUTBOUND);
    let partner = sample("harvest__candidates__get-retrieve-candidate__1.json");
    let mapped = inbound.transform(&partner.to_string()).unwrap();
    // The inbound spec picks the personal address out of work and personal.
    assert_eq!(candidate(&mapped).email, "test@example.com");
    let written = outbound
        .transform_record(&as_record(mapped), "53883394")
        .unwrap();
    assert_eq!(
        written.payload["email_addresses"],
        json!([{"value": "test@example.com", "type": "personal"}])
    );
    assert_eq!(
        written.payload["phone_numbers"],
        json!([{"value": "555-555-5555", "type": "mobile"}])
    );
    assert_eq!(
        written.payload["addresses"],
        json!([{"value": "123 City Street\nNew York, Ny 10001", "type": "home"}])
    );
    // Read-only at Greenhouse, so never written.
    for key in ["id", "created_at", "updated_at", "recruiter"] {
        assert!(written.payload.get(key).is_none(), "{key} was written");
    }
    assert_eq!(written.content_hash.len(), 64);
}

#[test]
fn canonical_to_greenhouse_to_canonical_keeps_what_greenhouse_stores() {
    let inbound = compile("candidate.inbound.yaml", GREENHOUSE_INBOUND);
    let outbound = compile("candidate.outbound.yaml", GREENHOUSE_OUTBOUND);
    let original = Candidate {
        first_name: "Chloé".to_owned(),
        last_name: "O'Brien".to_owned(),
        email: "chloe@example.com".to_owned(),
        phone: "+44 20 7946 0958".to_owned(),
        address: Some(Address {
            lines: vec!["1 Main St".to_owned(), "Leeds LS1 1AA".to_owned()],
            ..Address::default()
        }),
        current_title: "Welder".to_owned(),
        current_employer: "Acme".to_owned(),
        skills: vec!["TIG".to_owned(), "MIG".to_owned()],
        updated_at: "2026-12-01T10:00:00Z".to_owned(),
        ..Candidate::default()
    };
    let record = CanonicalRecord {
        entity: "candidate".to_owned(),
        external_id: "bullhorn-77".to_owned(),
        body: Some(Body::Candidate(original.clone())),
        custom_fields: std::collections::BTreeMap::from([(
            "is_private".to_owned(),
            "true".to_owned(),
        )]),
        ..CanonicalRecord::default()
    };
    // A create: no Greenhouse id yet, and the source connection's id is not used.
    let written = outbound.transform_record(&record, "").unwrap();
    assert_eq!(written.external_id, "");
    assert_eq!(written.payload["is_private"], json!(true));
    // Greenhouse answers with the record it created.
    let created = apply_write(
        json!({"id": 901, "updated_at": "2026-12-01T10:00:00Z"}),
        &written.payload,
    );
    let back = inbound.transform(&created.to_string()).unwrap();
    assert_eq!(back.external_id, "901");
    assert_eq!(candidate(&back), &original);
    assert_eq!(
        back.custom_fields.get("is_private").map(String::as_str),
        Some("true")
    );
}

const BULLHORN_OUT: &str = include_str!("fixtures/bullhorn/candidate.outbound.yaml");

#[test]
fn lookups_defaults_custom_fields_and_nested_targets_go_out() {
    let spec = compile("candidate.outbound.yaml", BULLHORN_OUT);
    let written = spec
        .transform_outbound(
            r#"{"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com",
                "status": "placed", "skills": ["math", "looms"],
                "address": {"lines": ["12 St James's Sq"], "city": "London", "country_code": "GB"},
                "custom_fields": {"security_clearance": "SC"}}"#,
            "7",
        )
        .unwrap();
    assert_eq!(
        written.external_id, "7",
        "the default external id is the input's"
    );
    assert_eq!(
        written.payload,
        json!({
            "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
            "status": "Placed", "skillSet": "math,looms",
            // GB is not in the lookup, whose default leaves the field out.
            "address": {"address1": "12 St James's Sq", "city": "London"},
        })
    );

    // A lookup miss takes the lookup default; no address, no address object.
    let written = spec
        .transform_outbound(r#"{"first_name": "Ada", "status": "onboarding"}"#, "")
        .unwrap();
    assert_eq!(
        written.payload,
        json!({"firstName": "Ada", "status": "Active"})
    );
    assert_eq!(written.external_id, "");

    // A nested object made only of defaults is left out.
    let yaml = BULLHORN_OUT.replace(
        "  address.zip: .address.postal_code",
        "  address.zip: .address.postal_code\n  address.countryCode: {default: US}",
    );
    let defaults_only = compile("t.yaml", &yaml)
        .transform_outbound(r#"{"first_name": "Ada"}"#, "")
        .unwrap();
    assert!(
        defaults_only.payload.get("address").is_none(),
        "{}",
        defaults_only.payload
    );

    // Equal writes hash equally, different ones do not.
    let again = spec
        .transform_outbound(r#"{"status": "onboarding", "first_name": "Ada"}"#, "")
        .unwrap();
    assert_eq!(again.content_hash, written.content_hash);
    let other = spec
        .transform_outbound(r#"{"first_name": "Bea"}"#, "")
        .unwrap();
    assert_ne!(other.content_hash, written.content_hash);
}

#[test]
fn bad_canonical_input_fails_the_record_with_its_path() {
    let spec = compile("candidate.outbound.yaml", BULLHORN_OUT);
    let error = spec
        .transform_outbound(r#"{"last_name": "Lovelace"}"#, "")
        .unwrap_err();
    assert_eq!(error.field_path, "firstName");
    assert!(error.message.contains("required"), "{error}");

    let error = spec
        .transform_outbound(r#"{"first_name": "Ada", "external_id": 7}"#, "")
        .unwrap_err();
    assert_eq!(error.field_path, "external_id");

    let error = spec
        .transform_outbound(r#"{"first_name": "Ada", "frist_name": "x"}"#, "")
        .unwrap_err();
    assert!(error.message.contains("canonical candidate"), "{error}");

    let error = spec
        .transform_outbound(r#"{"first_name": 12}"#, "")
        .unwrap_err();
    assert_eq!(error.field_path, "first_name");
    assert_eq!(error.partner_value, "12");

    let error = spec
        .transform_outbound(
            r#"{"first_name": "Ada", "custom_fields": {"security_clearance": 3}}"#,
            "",
        )
        .unwrap_err();
    assert_eq!(error.field_path, "custom_fields.security_clearance");

    let error = spec.transform_outbound("{oops", "").unwrap_err();
    assert_eq!(error.field_path, "$");
    assert!(error.message.starts_with("invalid JSON payload"), "{error}");

    // A job is not a candidate.
    let job = CanonicalRecord {
        entity: "job".to_owned(),
        body: Some(Body::Job(Job::default())),
        ..CanonicalRecord::default()
    };
    let error = spec.transform_record(&job, "").unwrap_err();
    assert_eq!(error.field_path, "$");
    assert!(error.message.contains("is a job"), "{error}");

    // Each direction refuses the other's input.
    let inbound = compile("candidate.inbound.yaml", GREENHOUSE_INBOUND);
    assert!(inbound.transform_outbound("{}", "").is_err());
    assert!(spec.transform(r#"{"id": 1}"#).is_err());
}

#[test]
fn outbound_specs_must_read_canonical_fields() {
    let problems = CompiledSpec::compile(
        "t.yaml",
        &BULLHORN_OUT.replace("lastName: .last_name", "lastName: .lastname"),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .message
            .starts_with("field lastName: \".lastname\" reads .lastname: not a field"),
        "{problems:#?}"
    );
    assert_eq!(
        problems[0].line,
        BULLHORN_OUT
            .lines()
            .position(|line| line.contains("lastName"))
            .unwrap() as u32
            + 1
    );

    // Every path of a fast-path expression is checked, and the leading path of jq ones.
    let yaml = BULLHORN_OUT.replace(
        "  email: .email | ascii_downcase",
        "  email: .email + .mail\n  phone: '.fone | select(. != \"\")'",
    );
    let problems = CompiledSpec::compile("t.yaml", &yaml).unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("reads .mail"), "{messages:#?}");
    assert!(messages[1].contains("reads .fone"), "{messages:#?}");

    // Canonical custom fields are read in `fields`, not written from a `custom_fields` section.
    let yaml = format!("{BULLHORN_OUT}custom_fields:\n  x: .email\n");
    let problems = CompiledSpec::compile("t.yaml", &yaml).unwrap_err();
    assert!(
        problems[0]
            .message
            .contains("read a canonical custom field"),
        "{problems:#?}"
    );

    // Inbound specs still need their external id.
    let problems = CompiledSpec::compile(
        "t.yaml",
        &GREENHOUSE_INBOUND.replace("external_id: .id\n", ""),
    )
    .unwrap_err();
    assert!(
        problems[0].message.contains("needs external_id"),
        "{problems:#?}"
    );
}
