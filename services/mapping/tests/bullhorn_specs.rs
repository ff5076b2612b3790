//! The Bullhorn inbound specs compile and map realistic Bullhorn records.
//!
//! Fixtures follow the field names and types of Bullhorn's entity reference
//! (`shared/partners/bullhorn/entityref`) and the shapes of its REST samples: integer ids,
//! epoch-millisecond timestamps, to-one associations as `{id, ...}`, composite addresses with
//! empty strings for blank parts.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use plugboard_mapping::spec::{CompiledSpec, Entity, MappedRecord};
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{Money, Rate};

const JOB: &str = include_str!("../../connector-bullhorn/mappings/job.inbound.yaml");
const CANDIDATE: &str = include_str!("../../connector-bullhorn/mappings/candidate.inbound.yaml");
const APPLICATION: &str =
    include_str!("../../connector-bullhorn/mappings/application.inbound.yaml");
const PLACEMENT: &str = include_str!("../../connector-bullhorn/mappings/placement.inbound.yaml");

fn compile(name: &str, yaml: &str) -> CompiledSpec {
    CompiledSpec::compile(name, yaml).unwrap_or_else(|problems| {
        panic!("{name} does not compile: {problems:#?}");
    })
}

fn usd_hourly(amount: &str) -> Option<Rate> {
    Some(Rate {
        money: Some(Money {
            amount: amount.to_owned(),
            currency: "USD".to_owned(),
        }),
        period: "hour".to_owned(),
    })
}

fn map(spec: &CompiledSpec, payload: serde_json::Value) -> MappedRecord {
    spec.transform(&payload.to_string())
        .unwrap_or_else(|error| panic!("{} failed: {error}", spec.name()))
}

#[test]
fn every_spec_compiles_for_its_entity() {
    for (name, yaml, entity) in [
        ("job.inbound.yaml", JOB, Entity::Job),
        ("candidate.inbound.yaml", CANDIDATE, Entity::Candidate),
        ("application.inbound.yaml", APPLICATION, Entity::Application),
        ("placement.inbound.yaml", PLACEMENT, Entity::Placement),
    ] {
        let spec = compile(name, yaml);
        assert_eq!(spec.entity(), entity);
        assert_eq!(spec.connector(), "bullhorn");
    }
}

#[test]
fn job_order_maps_to_a_canonical_job() {
    let spec = compile("job.inbound.yaml", JOB);
    let record = map(
        &spec,
        serde_json::json!({
            "id": 4521,
            "title": "Senior Java Developer",
            "status": "Accepting Candidates",
            "employmentType": "Contract To Hire",
            "isOpen": true,
            "clientCorporation": {"id": 88, "name": "Acme Logistics"},
            "address": {"address1": "100 Main St", "address2": "", "city": "Sacramento",
                        "state": "CA", "zip": "95814", "countryID": 1},
            "numOpenings": 2,
            "payRate": 65.50,
            "clientBillRate": 92,
            "salary": 0,
            "salaryUnit": "Per Hour",
            "onSite": "Off-Site",
            "description": "<p>Build services.</p>",
            "startDate": 1704096000000_i64,
            "dateAdded": 1701388800000_i64,
            "dateLastModified": 1709290861123_i64,
            "type": 3
        }),
    );
    assert_eq!(record.external_id, "4521");
    let Body::Job(job) = record.body else {
        panic!("not a job")
    };
    assert_eq!(job.title, "Senior Java Developer");
    assert_eq!(job.status, "open");
    assert_eq!(job.employment_type, "contract_to_hire");
    assert_eq!(job.client_name, "Acme Logistics");
    assert_eq!(job.client_external_id, "88");
    let location = job.location.expect("address maps to a location");
    assert_eq!(location.lines, vec!["100 Main St".to_owned()]);
    assert_eq!(location.city, "Sacramento");
    assert_eq!(location.region, "CA");
    assert_eq!(location.postal_code, "95814");
    assert_eq!(location.country_code, "US");
    assert_eq!(job.openings, 2);
    assert_eq!(job.pay_rate, usd_hourly("65.5"));
    assert_eq!(job.bill_rate, usd_hourly("92"));
    assert!(job.remote);
    assert_eq!(job.start_date, "2024-01-01T08:00:00Z");
    assert_eq!(job.created_at, "2023-12-01T00:00:00Z");
    assert_eq!(job.updated_at, "2024-03-01T11:01:01.123Z");
    assert_eq!(
        record.custom_fields.get("salary_unit").map(String::as_str),
        Some("Per Hour")
    );
    assert_eq!(
        record.custom_fields.get("salary").map(String::as_str),
        Some("0")
    );
}

#[test]
fn closed_job_without_status_and_rates_stays_closed_and_rateless() {
    let spec = compile("job.inbound.yaml", JOB);
    let record = map(
        &spec,
        serde_json::json!({"id": 9, "title": "Forklift Driver", "isOpen": false,
                           "employmentType": "Opportunity", "dateLastModified": 1709290861000_i64}),
    );
    let Body::Job(job) = record.body else {
        panic!("not a job")
    };
    assert_eq!(job.status, "closed");
    assert_eq!(
        job.employment_type, "",
        "unknown employment types are left unset"
    );
    assert_eq!(job.pay_rate, None);
    assert_eq!(job.location, None);
}

#[test]
fn candidate_maps_to_a_canonical_candidate() {
    let spec = compile("candidate.inbound.yaml", CANDIDATE);
    let record = map(
        &spec,
        serde_json::json!({
            "id": 5059165,
            "firstName": "Alanzo",
            "lastName": "Smith",
            "email": "alanzo.smith@example.com",
            "phone": "916-555-0100",
            "mobile": "",
            "address": {"address1": "", "address2": "", "city": "Sacramento", "state": "ca",
                        "zip": "", "countryID": 1},
            "status": "New Lead",
            "occupation": "Warehouse Supervisor",
            "companyName": "Acme Logistics",
            "skillSet": "forklift, inventory ,  OSHA 10",
            "hourlyRate": 24.75,
            "source": "LinkedIn",
            "dateAdded": 1701388800000_i64,
            "dateLastModified": 1709290861000_i64,
            "customText1": "tenant specific"
        }),
    );
    assert_eq!(record.external_id, "5059165");
    let Body::Candidate(candidate) = record.body else {
        panic!("not a candidate")
    };
    assert_eq!(candidate.first_name, "Alanzo");
    assert_eq!(candidate.last_name, "Smith");
    assert_eq!(candidate.email, "alanzo.smith@example.com");
    assert_eq!(
        candidate.phone, "916-555-0100",
        "an empty mobile falls back to phone"
    );
    let address = candidate.address.expect("address");
    assert!(address.lines.is_empty());
    assert_eq!(address.city, "Sacramento");
    assert_eq!(address.region, "ca");
    assert_eq!(address.postal_code, "");
    assert_eq!(candidate.status, "new");
    assert_eq!(candidate.current_title, "Warehouse Supervisor");
    assert_eq!(candidate.current_employer, "Acme Logistics");
    assert_eq!(candidate.skills, vec!["forklift", "inventory", "OSHA 10"]);
    assert_eq!(candidate.desired_pay, usd_hourly("24.75"));
    assert_eq!(candidate.source, "LinkedIn");
    assert_eq!(candidate.updated_at, "2024-03-01T11:01:01Z");
    assert!(
        record.custom_fields.is_empty(),
        "{:?}",
        record.custom_fields
    );
}

#[test]
fn candidate_without_a_last_name_is_refused() {
    let spec = compile("candidate.inbound.yaml", CANDIDATE);
    let error = spec
        .transform(r#"{"id": 1, "firstName": "Ana", "dateLastModified": 1709290861000}"#)
        .unwrap_err();
    assert_eq!(error.field_path, "last_name");
}

#[test]
fn job_submission_maps_to_a_canonical_application() {
    let spec = compile("application.inbound.yaml", APPLICATION);
    let record = map(
        &spec,
        serde_json::json!({
            "id": 31007,
            "candidate": {"id": 5059165, "firstName": "Alanzo", "lastName": "Smith"},
            "jobOrder": {"id": 4521, "title": "Senior Java Developer"},
            "status": "Interview Scheduled",
            "payRate": 60,
            "billRate": 90.25,
            "source": "Web",
            "sendingUser": {"id": 12},
            "dateAdded": 1706745600000_i64,
            "dateLastModified": 1709290861000_i64
        }),
    );
    let Body::Application(application) = record.body else {
        panic!("not an application")
    };
    assert_eq!(application.candidate_external_id, "5059165");
    assert_eq!(application.job_external_id, "4521");
    assert_eq!(application.status, "interviewing");
    assert_eq!(application.proposed_pay, usd_hourly("60"));
    assert_eq!(application.proposed_bill, usd_hourly("90.25"));
    assert_eq!(application.submitted_at, "2024-02-01T00:00:00Z");
    assert_eq!(application.source, "Web");
    assert_eq!(
        record
            .custom_fields
            .get("sending_user_id")
            .map(String::as_str),
        Some("12")
    );
}

#[test]
fn placement_maps_to_a_canonical_placement() {
    let spec = compile("placement.inbound.yaml", PLACEMENT);
    let record = map(
        &spec,
        serde_json::json!({
            "id": 777,
            "candidate": {"id": 5059165, "firstName": "Alanzo", "lastName": "Smith"},
            "jobOrder": {"id": 4521},
            "status": "Approved",
            "employmentType": "Contract",
            "dateBegin": 1709251200000_i64,
            "dateEnd": null,
            "payRate": 62.5,
            "clientBillRate": 95.0,
            "salary": 0,
            "salaryUnit": "Per Hour",
            "dateAdded": 1708992000000_i64,
            "dateLastModified": 1709290861000_i64
        }),
    );
    let Body::Placement(placement) = record.body else {
        panic!("not a placement")
    };
    assert_eq!(placement.candidate_external_id, "5059165");
    assert_eq!(placement.job_external_id, "4521");
    assert_eq!(placement.status, "active");
    assert_eq!(placement.employment_type, "contract");
    assert_eq!(placement.start_date, "2024-03-01T00:00:00Z");
    assert_eq!(placement.end_date, "");
    assert_eq!(placement.pay_rate, usd_hourly("62.5"));
    assert_eq!(placement.bill_rate.unwrap().money.unwrap().currency, "USD");
    assert_eq!(placement.created_at, "2024-02-27T00:00:00Z");
}

#[test]
fn placement_without_candidate_is_refused_with_its_path() {
    let spec = compile("placement.inbound.yaml", PLACEMENT);
    let error = spec
        .transform(
            r#"{"id": 1, "jobOrder": {"id": 2}, "status": "Approved", "dateLastModified": 1}"#,
        )
        .unwrap_err();
    assert_eq!(error.field_path, "candidate_external_id");
}
