//! The Fieldglass world at start, made deterministically: job postings from a buyer, work
//! orders engaging workers on some of them, two weekly time sheets per work order (a flat file,
//! so every value is text), and job seekers other suppliers submitted. Times are RFC 3339 UTC
//! in November 2026, one minute apart, so incremental reads have a clear order.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::TIME_SHEET_COLUMNS;
use crate::vms::now_rfc3339;

pub const JOB_POSTINGS: usize = 24;
pub const WORK_ORDERS: usize = 18;
pub const JOB_SEEKERS: usize = 10;

const TITLES: [&str; 6] = [
    "Java Developer",
    "Project Manager",
    "Business Analyst",
    "Network Engineer",
    "Data Analyst",
    "QA Tester",
];
const SITES: [(&str, &str, &str, &str, &str); 3] = [
    ("CHI01", "Chicago Plant", "Chicago", "IL", "America/Chicago"),
    (
        "NYC02",
        "New York Office",
        "New York",
        "NY",
        "America/New_York",
    ),
    (
        "SFO03",
        "San Francisco Lab",
        "San Francisco",
        "CA",
        "America/Los_Angeles",
    ),
];
const NAMES: [(&str, &str); 6] = [
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Katherine", "Johnson"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Donald", "Knuth"),
];

/// `2026-11-02T08:00:00.000Z` plus `minutes`.
fn at(minutes: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-02T08:00:00Z")
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    (start + chrono::Duration::minutes(minutes as i64))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn site(index: usize) -> Value {
    let (code, name, city, state, zone) = SITES[index % SITES.len()];
    json!({"code": code, "name": name, "city": city, "state": state, "country": "US", "timeZone": zone})
}

fn bill_rate(index: usize) -> String {
    format!("{}.00", 70 + (index % 6) * 5)
}

fn pay_rate(index: usize) -> String {
    format!("{}.50", 50 + (index % 6) * 4)
}

pub fn job_posting(n: usize) -> Value {
    let status = match n % 6 {
        4 => "Closed",
        5 => "Filled",
        _ => "Open",
    };
    json!({
        "jobPostingId": format!("JP{n:07}"),
        "title": TITLES[n % TITLES.len()],
        "status": status,
        "buyerCode": "ACME",
        "buyerName": "Acme Manufacturing",
        "site": site(n),
        "positions": 1 + n % 3,
        "startDate": "2027-01-04",
        "endDate": "2027-06-30",
        "billRate": {"max": bill_rate(n), "currency": "USD", "unit": "Hr"},
        "description": format!("{} for the {} team.", TITLES[n % TITLES.len()], SITES[n % SITES.len()].1),
        "createdDate": at(n),
        "modifiedDate": at(n),
    })
}

fn work_order(n: usize) -> Value {
    let status = match n % 6 {
        4 => "Completed",
        5 => "Pending",
        _ => "Active",
    };
    json!({
        "workOrderId": format!("WO{n:07}"),
        "jobPostingId": format!("JP{n:07}"),
        "workerId": format!("WK{n:07}"),
        "status": status,
        "startDate": "2026-11-02",
        "endDate": "2027-04-30",
        "payRate": {"amount": pay_rate(n), "currency": "USD", "unit": "Hr"},
        "billRate": {"amount": bill_rate(n), "currency": "USD", "unit": "Hr"},
        "timeSheetFrequency": "Weekly",
        "site": site(n),
        "createdDate": at(100 + n),
        "modifiedDate": at(100 + n),
    })
}

fn worker(n: usize) -> Value {
    let (first, last) = NAMES[n % NAMES.len()];
    let status = if n % 6 == 4 { "Closed" } else { "Active" };
    json!({
        "workerId": format!("WK{n:07}"),
        "firstName": first,
        "lastName": format!("{last}{n}"),
        "email": format!("{}.{}{n}@example.com", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+1 312 555 {:04}", 1000 + n),
        "status": status,
        "workerType": "Contingent",
        "workOrderId": format!("WO{n:07}"),
        "jobSeekerId": format!("JS{n:07}"),
        "startDate": "2026-11-02",
        "timeZone": SITES[n % SITES.len()].4,
        "createdDate": at(200 + n),
        "modifiedDate": at(200 + n),
    })
}

/// Week `week` (0 or 1) of work order `n`'s time sheets, as the flat file's text columns.
fn time_sheet(n: usize, week: usize) -> Value {
    let index = n * 2 + week;
    let status = match index % 4 {
        0 | 1 => "Approved",
        2 => "Submitted",
        _ => "Draft",
    };
    let (start, end) = if week == 0 {
        ("2026-11-02", "2026-11-08")
    } else {
        ("2026-11-09", "2026-11-15")
    };
    let overtime = if index.is_multiple_of(3) { "4.5" } else { "0" };
    let approved = status == "Approved";
    let submitted = status != "Draft";
    let text = |value: &str| Value::String(value.to_owned());
    let values = [
        text(&format!("TS{index:07}")),
        text(&format!("WK{n:07}")),
        text(&format!("WO{n:07}")),
        text(status),
        text(start),
        text(end),
        text(SITES[n % SITES.len()].4),
        text("40"),
        text(overtime),
        text("USD"),
        text(&pay_rate(n)),
        text(&format!("{}.75", 75 + (n % 6) * 6)),
        text(&bill_rate(n)),
        text(&format!("{}.50", 105 + (n % 6) * 7)),
        text("Hr"),
        text(&if submitted {
            at(300 + index)
        } else {
            String::new()
        }),
        text(&if approved {
            at(310 + index)
        } else {
            String::new()
        }),
        text(if approved { "Pat Manager" } else { "" }),
        text(&at(320 + index)),
    ];
    let record: serde_json::Map<String, Value> = TIME_SHEET_COLUMNS
        .iter()
        .map(|column| (*column).to_owned())
        .zip(values)
        .collect();
    Value::Object(record)
}

fn job_seeker(n: usize) -> Value {
    let (first, last) = NAMES[(n + 3) % NAMES.len()];
    let status = match n % 5 {
        0 => "Submitted",
        1 => "Interview Requested",
        2 => "Selected",
        3 => "Rejected",
        _ => "Withdrawn",
    };
    json!({
        "jobSeekerId": format!("JS{n:07}"),
        "jobPostingId": format!("JP{:07}", n % JOB_POSTINGS + 1),
        "firstName": first,
        "lastName": format!("{last}{n}"),
        "email": format!("{}.{}{n}@supplier.example", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+1 646 555 {:04}", 2000 + n),
        "billRate": {"amount": bill_rate(n), "currency": "USD", "unit": "Hr"},
        "availableDate": "2027-01-04",
        "supplierReference": format!("other-supplier-{n}"),
        "status": status,
        "submittedDate": at(400 + n),
        "createdDate": at(400 + n),
        "modifiedDate": at(410 + n),
    })
}

/// Every stream's records.
pub fn records() -> BTreeMap<String, Vec<Value>> {
    let mut records = BTreeMap::new();
    records.insert(
        "job_postings".to_owned(),
        (1..=JOB_POSTINGS).map(job_posting).collect(),
    );
    records.insert(
        "work_orders".to_owned(),
        (1..=WORK_ORDERS).map(work_order).collect(),
    );
    records.insert(
        "workers".to_owned(),
        (1..=WORK_ORDERS).map(worker).collect(),
    );
    records.insert(
        "time_sheets".to_owned(),
        (1..=WORK_ORDERS)
            .flat_map(|n| [time_sheet(n, 0), time_sheet(n, 1)])
            .collect(),
    );
    records.insert(
        "job_seekers".to_owned(),
        (1..=JOB_SEEKERS).map(job_seeker).collect(),
    );
    records
}

/// What the malformed fault serves: a job posting without its id (the connector refuses it),
/// one whose rate has no currency and a time sheet whose rates have none (the mappings refuse
/// those), and a time sheet row without its id.
pub fn malformed() -> BTreeMap<String, Vec<Value>> {
    let now = now_rfc3339();
    let mut no_id = job_posting(90);
    no_id["jobPostingId"] = Value::Null;
    no_id["modifiedDate"] = json!(now);
    let mut no_currency = job_posting(91);
    no_currency["billRate"] = json!({"max": "80.00", "unit": "Hr"});
    no_currency["modifiedDate"] = json!(now);
    let mut sheet_no_id = time_sheet(90, 0);
    sheet_no_id["Time Sheet ID"] = json!("");
    sheet_no_id["Last Modified"] = json!(now);
    let mut sheet_no_currency = time_sheet(91, 0);
    sheet_no_currency["Currency"] = json!("");
    sheet_no_currency["Last Modified"] = json!(now);
    BTreeMap::from([
        ("job_postings".to_owned(), vec![no_id, no_currency]),
        (
            "time_sheets".to_owned(),
            vec![sheet_no_id, sheet_no_currency],
        ),
    ])
}
