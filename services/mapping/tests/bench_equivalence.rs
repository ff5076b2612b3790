//! The benchmark's Plugboard spec (`benches/candidate.inbound.yaml`) produces the same output as
//! the reference JSONata mapping (`shared/bench/candidate_mapping.jsonata`) on the same records.
//!
//! The fixture holds 300 records from `shared/bench/gen_candidates.py 300` and what JSONata 2.2.2
//! made of them (`benches/jsonata_dump.mjs`). Plugboard maps onto the canonical Candidate, so
//! its record is projected back onto JSONata's field names with the correspondence below.
//! Equal means: the same strings, numbers equal as numbers, instants equal as instants, and
//! null, "" and absent the same thing (proto3 cannot tell them apart). `country_id` is the one
//! value the spec translates: through its `country` lookup (Bullhorn 1 = US).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use plugboard_mapping::spec::{CompiledSpec, MappedRecord};
use plugboard_proto::common::v1::canonical_record::Body;
use serde_json::{Value, json};

const SPEC: &str = include_str!("../benches/candidate.inbound.yaml");
const RECORDS: &str = include_str!("fixtures/bench_candidates.json");
const JSONATA: &str = include_str!("fixtures/bench_candidates.jsonata.json");

fn number(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    json!(text.parse::<f64>().unwrap())
}

fn text(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    }
}

/// Plugboard's record under JSONata's names.
fn project(record: &MappedRecord) -> Value {
    let Body::Candidate(candidate) = &record.body else {
        panic!("not a candidate: {:?}", record.body)
    };
    let address = candidate.address.clone().unwrap_or_default();
    let salary = candidate.desired_pay.clone().unwrap_or_default();
    let salary_money = salary.money.clone().unwrap_or_default();
    let day_rate = candidate
        .desired_contract_rate
        .clone()
        .unwrap_or_default()
        .money
        .unwrap_or_default();
    let custom = |name: &str| text(record.custom_fields.get(name).map_or("", String::as_str));
    json!({
        "external_id": record.external_id,
        "given_name": text(&candidate.first_name),
        "family_name": text(&candidate.last_name),
        "email": text(&candidate.email),
        "phone": text(&candidate.phone),
        "status": text(&candidate.status),
        "created_at": instant(&candidate.created_at),
        "updated_at": instant(&candidate.updated_at),
        "city": text(&address.city),
        "region": text(&address.region),
        "country_id": text(&address.country_code),
        "postal_code": text(&address.postal_code),
        "skills": candidate.skills,
        "title": text(&candidate.current_title),
        "employer": text(&candidate.current_employer),
        "salary": {
            "amount": number(&salary_money.amount),
            "currency": text(&salary_money.currency),
            "period": text(&salary.period),
        },
        "day_rate": number(&day_rate.amount),
        "source": text(&candidate.source),
        "owner_name": text(&candidate.owner_name),
        "custom": {"c1": custom("c1"), "c2": custom("c2"), "c3": custom("c3")},
    })
}

fn instant(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text:?} is not RFC 3339: {error}"));
    Value::from(parsed.timestamp_millis())
}

/// JSONata's output with the same normalisation: instants as epoch millis, "" as null, numbers
/// as f64, the country id through the spec's lookup.
fn normalise_reference(mut value: Value) -> Value {
    for key in ["created_at", "updated_at"] {
        let text = value[key].as_str().unwrap().to_owned();
        value[key] = instant(&text);
    }
    value["country_id"] = match &value["country_id"] {
        Value::Number(number) if number.as_i64() == Some(1) => Value::from("US"),
        Value::Null => Value::Null,
        other => panic!("unexpected countryID {other}"),
    };
    for (object, key) in [(None, "day_rate"), (Some("salary"), "amount")] {
        let slot = match object {
            Some(object) => &mut value[object][key],
            None => &mut value[key],
        };
        if let Some(number) = slot.as_f64() {
            *slot = json!(number);
        }
    }
    for key in ["c1", "c2", "c3"] {
        if value["custom"][key] == "" {
            value["custom"][key] = Value::Null;
        }
    }
    for key in [
        "given_name",
        "family_name",
        "email",
        "phone",
        "city",
        "region",
        "postal_code",
        "title",
        "employer",
        "source",
        "owner_name",
    ] {
        if value[key] == "" {
            value[key] = Value::Null;
        }
    }
    value
}

#[test]
fn the_bench_spec_matches_jsonata_on_every_fixture_record() {
    let spec = CompiledSpec::compile("candidate.inbound.yaml", SPEC)
        .unwrap_or_else(|problems| panic!("{problems:#?}"));
    let records: Vec<Value> = serde_json::from_str(RECORDS).unwrap();
    let reference: Vec<Value> = serde_json::from_str(JSONATA).unwrap();
    assert_eq!(records.len(), 300);
    assert_eq!(records.len(), reference.len());
    let mut null_day_rates = 0;
    for (record, expected) in records.iter().zip(reference) {
        let mapped = spec
            .transform(&record.to_string())
            .unwrap_or_else(|error| panic!("record {} failed: {error}", record["id"]));
        let expected = normalise_reference(expected);
        if expected["day_rate"].is_null() {
            null_day_rates += 1;
        }
        assert_eq!(project(&mapped), expected, "record {}", record["id"]);
    }
    // The fixture exercises the optional paths, not only the happy one.
    assert!(null_day_rates > 0);
}
