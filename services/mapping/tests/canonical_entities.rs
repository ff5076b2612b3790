//! Specs map onto the staffing entities of canonical model v1 beyond job and candidate:
//! worker, timesheet (periods, entries, pay codes, pay and bill lines), job posting (status per
//! channel) and parsed resume; targets outside the model are refused when a spec compiles.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use plugboard_mapping::spec::{CompiledSpec, Entity};
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{ChargeLine, Money, PayPeriod, PostingChannel, Rate, TimeEntry};

fn compile(yaml: &str) -> CompiledSpec {
    CompiledSpec::compile("test.yaml", yaml).unwrap_or_else(|problems| panic!("{problems:#?}"))
}

const TIMESHEET: &str = r#"
version: 1
connector: vms
entity: timesheet
direction: inbound
external_id: .id
lookups:
  state:
    map: {Approved: approved, Submitted: submitted}
fields:
  worker_external_id: .worker.id | tostring
  placement_external_id: .assignmentId
  status: {expr: .state, lookup: state}
  time_zone: .site.tz
  period.start_date: .weekStart
  period.end_date: .weekEnd
  period.frequency: {default: weekly}
  entries: '[.days[] | {date, hours: (.hours | tostring), pay_code: (.code | ascii_downcase)}]'
  total_hours: '[.days[].hours] | add | tostring'
  pay_lines: '[{pay_code: "regular", quantity: ([.days[].hours] | add | tostring), unit: "hour", rate: {money: {amount: (.payRate | tostring), currency: .currency}, period: "hour"}}]'
  bill_lines: '[{pay_code: "regular", quantity: ([.days[].hours] | add | tostring), unit: "hour", rate: {money: {amount: (.billRate | tostring), currency: .currency}, period: "hour"}}]'
  updated_at: .modified
"#;

#[test]
fn a_vms_timesheet_maps_to_the_canonical_timesheet() {
    let spec = compile(TIMESHEET);
    assert_eq!(spec.entity(), Entity::Timesheet);
    let record = spec
        .transform(
            r#"{"id": "TS-9", "worker": {"id": 77}, "assignmentId": "A-1", "state": "Approved",
                "site": {"tz": "America/Chicago"}, "weekStart": "2026-11-30", "weekEnd": "2026-12-06",
                "days": [{"date": "2026-11-30", "hours": 8, "code": "REGULAR"},
                         {"date": "2026-12-01", "hours": 9.5, "code": "OVERTIME"}],
                "payRate": 30.5, "billRate": 45.75, "currency": "USD",
                "modified": "2026-12-07T09:00:00Z"}"#,
        )
        .unwrap();
    let updated_at = record
        .clone()
        .into_canonical("{}".to_owned(), "conn".to_owned())
        .updated_at;
    assert_eq!(updated_at, "2026-12-07T09:00:00Z");
    let Body::Timesheet(timesheet) = record.body else {
        panic!("{:?}", record.body)
    };
    assert_eq!(record.external_id, "TS-9");
    assert_eq!(timesheet.worker_external_id, "77");
    assert_eq!(timesheet.status, "approved");
    assert_eq!(timesheet.time_zone, "America/Chicago");
    assert_eq!(
        timesheet.period,
        Some(PayPeriod {
            start_date: "2026-11-30".to_owned(),
            end_date: "2026-12-06".to_owned(),
            frequency: "weekly".to_owned(),
        })
    );
    assert_eq!(
        timesheet.entries[1],
        TimeEntry {
            date: "2026-12-01".to_owned(),
            hours: "9.5".to_owned(),
            pay_code: "overtime".to_owned(),
            ..TimeEntry::default()
        }
    );
    assert_eq!(timesheet.total_hours, "17.5");
    let usd = |amount: &str| {
        Some(Rate {
            money: Some(Money {
                amount: amount.to_owned(),
                currency: "USD".to_owned(),
            }),
            period: "hour".to_owned(),
        })
    };
    assert_eq!(
        timesheet.pay_lines,
        vec![ChargeLine {
            pay_code: "regular".to_owned(),
            quantity: "17.5".to_owned(),
            unit: "hour".to_owned(),
            rate: usd("30.5"),
            ..ChargeLine::default()
        }]
    );
    assert_eq!(timesheet.bill_lines[0].rate, usd("45.75"));
}

#[test]
fn a_job_posting_carries_its_status_per_channel() {
    let spec = compile(
        r#"
version: 1
connector: broadbean
entity: job_posting
direction: inbound
external_id: .advert_id
lookups:
  channel_status:
    map: {Posted: live, Failed: failed, Expired: expired, Pending: pending}
fields:
  job_external_id: .job_ref
  title: .title
  status: {default: live}
  channels: '[.boards[] | {channel: (.name | ascii_downcase), status: ({Posted: "live", Failed: "failed"}[.state] // "pending"), url, error_message: .error}]'
  updated_at: .updated
"#,
    );
    let record = spec
        .transform(
            r#"{"advert_id": 55, "job_ref": "J-1", "title": "Welder", "updated": "2026-12-01T00:00:00Z",
                "boards": [{"name": "Indeed", "state": "Posted", "url": "https://indeed.example/1"},
                           {"name": "LinkedIn", "state": "Failed", "error": "salary required"}]}"#,
        )
        .unwrap();
    let Body::JobPosting(posting) = record.body else {
        panic!()
    };
    assert_eq!(record.external_id, "55");
    assert_eq!(posting.status, "live");
    assert_eq!(
        posting.channels,
        vec![
            PostingChannel {
                channel: "indeed".to_owned(),
                status: "live".to_owned(),
                url: "https://indeed.example/1".to_owned(),
                ..PostingChannel::default()
            },
            PostingChannel {
                channel: "linkedin".to_owned(),
                status: "failed".to_owned(),
                error_message: "salary required".to_owned(),
                ..PostingChannel::default()
            },
        ]
    );
}

#[test]
fn workers_and_parsed_resumes_map() {
    let worker = compile(
        r#"
version: 1
connector: payroll
entity: worker
direction: inbound
external_id: .employeeId
fields:
  first_name: .name.first
  last_name: .name.last
  worker_type: {default: temporary_employee}
  time_zone: .tz
  pay_frequency: .payFrequency | ascii_downcase
  hire_date: .hired
"#,
    );
    let record = worker
        .transform(r#"{"employeeId": "E-1", "name": {"first": "Zoë", "last": "Nguyen"}, "tz": "Europe/London", "payFrequency": "WEEKLY", "hired": "2026-01-05"}"#)
        .unwrap();
    let Body::Worker(worker) = record.body else {
        panic!()
    };
    assert_eq!(worker.first_name, "Zoë");
    assert_eq!(worker.worker_type, "temporary_employee");
    assert_eq!(worker.time_zone, "Europe/London");
    assert_eq!(worker.pay_frequency, "weekly");

    let resume = compile(
        r#"
version: 1
connector: parser
entity: parsed_resume
direction: inbound
external_id: .documentId
fields:
  first_name: .contact.given
  skills: '[.skills[].name]'
  work_history: '[.positions[] | {employer: .org, title, start_date: .from, current: (.to == null)}]'
"#,
    );
    let record = resume
        .transform(r#"{"documentId": "D-1", "contact": {"given": "Ada"}, "skills": [{"name": "Rust"}], "positions": [{"org": "Acme", "title": "Engineer", "from": "2020-01", "to": null}]}"#)
        .unwrap();
    let Body::ParsedResume(resume) = record.body else {
        panic!()
    };
    assert_eq!(resume.skills, vec!["Rust".to_owned()]);
    assert_eq!(resume.work_history[0].employer, "Acme");
    assert!(resume.work_history[0].current);
}

#[test]
fn targets_outside_the_model_are_refused() {
    let problems = CompiledSpec::compile(
        "bad.yaml",
        "version: 1\nconnector: vms\nentity: timesheet\ndirection: inbound\nexternal_id: .id\nfields:\n  period.start: .from\n  hours_total: .h\n",
    )
    .unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages
            .iter()
            .all(|m| m.contains("not a field of the canonical timesheet")),
        "{messages:#?}"
    );
    assert!(
        CompiledSpec::compile(
            "bad.yaml",
            "version: 1\nconnector: x\nentity: invoice\ndirection: inbound\nexternal_id: .id\nfields: {}\n",
        )
        .unwrap_err()[0]
            .message
            .contains("job_posting")
    );
}
