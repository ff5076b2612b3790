//! HR Open grounding: exports validate against the HR Open 4.2 JSON Schemas (draft-04, relative
//! `$ref`s resolved from the files), and every official Candidate, PositionOpening and Timecard
//! sample imports into the canonical model and exports back with no mapped field lost.
//!
//! "Mapped" is defined per document by `hropen::<document>::MAPPED` (see `hropen`'s docs).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::path::{Path, PathBuf};

use plugboard_mapping::hropen::{self, candidate, position_opening, timecard};
use plugboard_proto::common::v1::{
    Address, Candidate, ChargeLine, Education, Job, Money, PayPeriod, PayRange, Rate, TimeEntry,
    Timesheet, WorkExperience,
};
use serde_json::Value;

fn hr_open() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/partners/hr-open-standards/HROpen-v4.2-1")
        .canonicalize()
        .expect("the HR Open package is in shared/partners")
}

fn validator(schema: &str) -> jsonschema::Validator {
    let path = hr_open().join(schema);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft4::options()
        .with_base_uri(format!("file://{}", path.display()))
        .build(&schema)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn errors(validator: &jsonschema::Validator, document: &Value) -> Vec<String> {
    validator
        .iter_errors(document)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

fn assert_valid(validator: &jsonschema::Validator, document: &Value, what: &str) {
    let errors = errors(validator, document);
    assert!(
        errors.is_empty(),
        "{what} is not valid HR Open: {errors:#?}\n{document:#}"
    );
}

/// Every sample in `dir` whose name starts with `prefix`, ignoring case: the package names most
/// `Candidate_*.json` but also has `candidate_personQualifications.json`.
fn samples(dir: &str, prefix: &str) -> Vec<(String, Value)> {
    let prefix = prefix.to_lowercase();
    let mut found: Vec<(String, Value)> = std::fs::read_dir(hr_open().join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
            name.starts_with(&prefix) && name.ends_with(".json")
        })
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The values at `path`, with null, "", false dropped and numbers as f64 (see the module docs).
fn mapped_values(document: &Value, path: &str) -> Vec<Value> {
    hropen::select(document, path)
        .into_iter()
        .filter(|value| !matches!(value, Value::Null | Value::Bool(false)))
        .filter(|value| value.as_str() != Some(""))
        .map(|value| match value.as_f64() {
            Some(number) => serde_json::json!(number),
            None => value.clone(),
        })
        .collect()
}

/// Round-trips every sample; returns how many mapped values were compared.
fn round_trip(
    samples: &[(String, Value)],
    mapped: &[&str],
    validator: &jsonschema::Validator,
    through: impl Fn(&Value) -> Value,
) -> usize {
    let mut compared = 0;
    for (name, sample) in samples {
        let exported = through(sample);
        // Some official samples break their own schema (timecard date-times without a UTC
        // offset, which `format: date-time` requires); an export keeps those values as they
        // are, so it may repeat the sample's own errors but must add none.
        let known = errors(validator, sample);
        let added: Vec<String> = errors(validator, &exported)
            .into_iter()
            .filter(|error| !known.contains(error))
            .collect();
        assert!(
            added.is_empty(),
            "the export of {name} is not valid HR Open: {added:#?}\n{exported:#}"
        );
        for path in mapped {
            let before = mapped_values(sample, path);
            let after = mapped_values(&exported, path);
            assert_eq!(before, after, "{name}: {path} changed in the round trip");
            compared += before.len();
        }
    }
    compared
}

#[test]
fn every_candidate_sample_round_trips() {
    let samples = samples("recruiting/json/samples", "Candidate");
    assert_eq!(samples.len(), 12);
    assert!(
        samples
            .iter()
            .any(|(name, _)| name == "candidate_personQualifications.json")
    );
    let validator = validator("recruiting/json/CandidateType.json");
    let compared = round_trip(&samples, candidate::MAPPED, &validator, |sample| {
        let (id, body) = candidate::import(sample).unwrap();
        candidate::export(&id, &body)
    });
    assert!(
        compared > 160,
        "only {compared} mapped values in the samples"
    );
}

#[test]
fn every_position_opening_sample_round_trips() {
    let samples = samples("recruiting/json/samples", "PositionOpening");
    assert_eq!(samples.len(), 12);
    let validator = validator("recruiting/json/PositionOpeningType.json");
    let compared = round_trip(&samples, position_opening::MAPPED, &validator, |sample| {
        let (id, body) = position_opening::import(sample).unwrap();
        position_opening::export(&id, &body)
    });
    assert!(
        compared > 200,
        "only {compared} mapped values in the samples"
    );
}

#[test]
fn pay_ranges_import_with_currency_and_period() {
    let samples = samples("recruiting/json/samples", "PositionOpening_UC1");
    let (_, job) = position_opening::import(&samples[0].1).unwrap();
    assert_eq!(job.pay_basis, "salaried");
    assert_eq!(job.schedule, "full_time");
    let base = &job.pay_ranges[0];
    assert_eq!(base.pay_type, "base_pay");
    assert_eq!(base.period, "year");
    assert_eq!(
        base.amount,
        Some(Money {
            amount: "100000".to_owned(),
            currency: "USD".to_owned()
        })
    );
    assert_eq!(job.pay_ranges[1].pay_type, "bonus");

    // An amount without its currency, or an interval with no canonical period, is refused with
    // the canonical path.
    let mut document = samples[0].1.clone();
    let range = &mut document["positionProfiles"][0]["offeredRemunerationPackage"]["ranges"][1];
    range["referenceAmount"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    let error = position_opening::import(&document).unwrap_err();
    assert_eq!(error.path, "pay_ranges[1].amount.currency");
    let mut document = samples[0].1.clone();
    document["positionProfiles"][0]["offeredRemunerationPackage"]["ranges"][0]["intervalCode"] =
        Value::from("Quarter");
    let error = position_opening::import(&document).unwrap_err();
    assert_eq!(error.path, "pay_ranges[0].period");
    assert!(error.message.contains("\"Quarter\""), "{error}");
}

#[test]
fn every_timecard_sample_round_trips() {
    let samples = samples("timecard/json/samples", "");
    assert_eq!(samples.len(), 20);
    let validator = validator("timecard/json/TimecardType.json");
    let compared = round_trip(&samples, timecard::MAPPED, &validator, |sample| {
        let (id, body) = timecard::import(sample).unwrap();
        timecard::export(&id, &body)
    });
    assert!(
        compared > 100,
        "only {compared} mapped values in the samples"
    );
}

#[test]
fn the_validator_refuses_what_the_schema_refuses() {
    let validator = validator("recruiting/json/PositionOpeningType.json");
    let job = Job {
        title: "Welder".to_owned(),
        status: "no_such_status".to_owned(),
        ..Job::default()
    };
    let document = position_opening::export("J-1", &job);
    assert!(!validator.is_valid(&document), "{document}");
}

fn usd(amount: &str, period: &str) -> Option<Rate> {
    Some(Rate {
        money: Some(Money {
            amount: amount.to_owned(),
            currency: "USD".to_owned(),
        }),
        period: period.to_owned(),
    })
}

#[test]
fn canonical_records_export_to_valid_hr_open() {
    let candidate = Candidate {
        first_name: "Chloé".to_owned(),
        last_name: "O'Brien".to_owned(),
        email: "chloe@example.com".to_owned(),
        phone: "+1 617 555 0100".to_owned(),
        address: Some(Address {
            lines: vec!["1 Main St".to_owned(), "Suite 2".to_owned()],
            city: "Boston".to_owned(),
            region: "MA".to_owned(),
            postal_code: "02108".to_owned(),
            country_code: "US".to_owned(),
        }),
        status: "active".to_owned(),
        skills: vec!["Welding".to_owned(), "CNC".to_owned()],
        desired_pay: usd("45.50", "hour"),
        work_history: vec![WorkExperience {
            employer: "Acme".to_owned(),
            title: "Welder".to_owned(),
            start_date: "2019-03".to_owned(),
            current: true,
            ..WorkExperience::default()
        }],
        education: vec![Education {
            institution: "MIT".to_owned(),
            degree: "BSc".to_owned(),
            field_of_study: "Mechanical Engineering".to_owned(),
            start_date: "2010".to_owned(),
            end_date: "2014".to_owned(),
        }],
        ..Candidate::default()
    };
    let document = candidate::export("C-1", &candidate);
    assert_valid(
        &validator("recruiting/json/CandidateType.json"),
        &document,
        "candidate",
    );
    let (id, back) = candidate::import(&document).unwrap();
    assert_eq!(id, "C-1");
    assert_eq!(back.formatted_name, "Chloé O'Brien");
    assert_eq!(back.first_name, candidate.first_name);
    assert_eq!(back.work_history, candidate.work_history);
    assert_eq!(back.education, candidate.education);
    assert_eq!(back.skills, candidate.skills);
    // Two address lines become one HR Open line.
    assert_eq!(
        back.address.unwrap().lines,
        vec!["1 Main St, Suite 2".to_owned()]
    );

    let job = Job {
        title: "Night welder".to_owned(),
        status: "filled".to_owned(),
        employment_type: "contract_to_hire".to_owned(),
        client_name: "Globex".to_owned(),
        openings: 3,
        remote: true,
        start_date: "2027-01-04".to_owned(),
        schedule: "part_time".to_owned(),
        pay_basis: "hourly".to_owned(),
        pay_ranges: vec![PayRange {
            pay_type: "base_pay".to_owned(),
            minimum: usd("28", "hour").and_then(|rate| rate.money),
            // HR Open amounts are JSON numbers, so "34.50" would come back as "34.5".
            maximum: usd("34.5", "hour").and_then(|rate| rate.money),
            period: "hour".to_owned(),
            ..PayRange::default()
        }],
        time_zone: "America/Chicago".to_owned(),
        ..Job::default()
    };
    let document = position_opening::export("J-1", &job);
    assert_valid(
        &validator("recruiting/json/PositionOpeningType.json"),
        &document,
        "position opening",
    );
    assert_eq!(document["statusCode"], "Closed");
    let profile = &document["positionProfiles"][0];
    assert_eq!(profile["positionOfferingTypes"][0], "ContractToHire");
    assert_eq!(profile["positionScheduleTypeCodes"][0], "PartTime");
    assert_eq!(
        profile["offeredRemunerationPackage"],
        serde_json::json!({"basisCode": "Hourly", "ranges": [{
            "typeCode": "BasePay", "intervalCode": "Hour",
            "minimumAmount": {"value": 28, "currency": "USD"},
            "maximumAmount": {"value": 34.5, "currency": "USD"},
        }]})
    );
    let (_, back) = position_opening::import(&document).unwrap();
    assert_eq!(back.pay_ranges, job.pay_ranges);
    assert_eq!(back.pay_basis, job.pay_basis);

    let timesheet = Timesheet {
        worker_external_id: "W-7".to_owned(),
        status: "approved".to_owned(),
        period: Some(PayPeriod {
            start_date: "2026-11-30".to_owned(),
            end_date: "2026-12-06".to_owned(),
            frequency: "weekly".to_owned(),
        }),
        time_zone: "America/Chicago".to_owned(),
        entries: vec![
            TimeEntry {
                date: "2026-11-30".to_owned(),
                start_time: "22:00:00".to_owned(),
                end_time: "06:30:00".to_owned(),
                end_date: "2026-12-01".to_owned(),
                hours: "8.5".to_owned(),
                pay_code: "overtime".to_owned(),
                ..TimeEntry::default()
            },
            TimeEntry {
                date: "2026-12-02".to_owned(),
                hours: "8".to_owned(),
                pay_code: "sick".to_owned(),
                ..TimeEntry::default()
            },
        ],
        pay_lines: vec![ChargeLine {
            pay_code: "OT".to_owned(),
            description: "Overtime".to_owned(),
            rate: usd("30.75", "hour"),
            ..ChargeLine::default()
        }],
        ..Timesheet::default()
    };
    // HR Open date-times need a UTC offset: entry times, local to the timesheet's IANA zone,
    // get that zone's offset at the time (CST in winter).
    let document = timecard::export("T-1", &timesheet);
    assert_valid(
        &validator("timecard/json/TimecardType.json"),
        &document,
        "timecard",
    );
    assert_eq!(document["items"][0]["timeTotal"], "PT8H30M");
    assert_eq!(
        document["items"][0]["period"]["start"],
        "2026-11-30T22:00:00-06:00"
    );
    assert_eq!(
        document["items"][0]["period"]["end"],
        "2026-12-01T06:30:00-06:00"
    );
    let (_, back) = timecard::import(&document).unwrap();
    assert_eq!(back.entries, timesheet.entries);
    assert_eq!(back.status, "approved");

    // Summer time gives the summer offset; without a zone the local text stays (and HR Open's
    // schema refuses it, as it refuses the official samples that do the same).
    let mut summer = timesheet.clone();
    summer.entries[0].date = "2026-07-06".to_owned();
    summer.entries[0].end_date = "2026-07-07".to_owned();
    let document = timecard::export("T-2", &summer);
    assert_eq!(
        document["items"][0]["period"]["start"],
        "2026-07-06T22:00:00-05:00"
    );
    let mut zoneless = timesheet.clone();
    zoneless.time_zone = String::new();
    let document = timecard::export("T-3", &zoneless);
    assert_eq!(
        document["items"][0]["period"]["start"],
        "2026-11-30T22:00:00"
    );
    let (_, back) = timecard::import(&document).unwrap();
    assert_eq!(back.entries, timesheet.entries);
}
