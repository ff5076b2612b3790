//! The Coupa CCW world at start, made deterministically: job requests (read as XML, so every
//! value is text), candidates suppliers submitted, workers, and the two CSV exports: a work
//! confirmation per engaged worker and two weekly timesheets per work confirmation. Times are
//! RFC 3339 UTC in November 2026, a minute apart.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{TIMESHEET_COLUMNS, WORK_CONFIRMATION_COLUMNS};
use crate::vms::now_rfc3339;

pub const JOB_REQUESTS: usize = 16;
pub const CANDIDATES: usize = 10;
pub const WORK_CONFIRMATIONS: usize = 12;

const TITLES: [&str; 4] = [
    "Clinical Data Manager",
    "SAP Consultant",
    "Marketing Coordinator",
    "Electrical Technician",
];
const ZONES: [&str; 3] = ["Europe/London", "Europe/Berlin", "America/Chicago"];
const CURRENCIES: [&str; 3] = ["GBP", "EUR", "USD"];
const PEOPLE: [(&str, &str); 4] = [
    ("Sofia", "Rossi"),
    ("Liam", "Murphy"),
    ("Anna", "Schmidt"),
    ("Noah", "Brown"),
];

fn at(minutes: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-04T09:30:00Z")
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    (start + chrono::Duration::minutes(minutes as i64))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn bill(n: usize) -> String {
    format!("{}.00", 60 + (n % 4) * 10)
}

fn pay(n: usize) -> String {
    format!("{}.00", 45 + (n % 4) * 7)
}

/// A job request, as its XML reads: text values, the bill rate a nested element.
pub fn job_request(n: usize) -> Value {
    let status = ["open", "open", "pending_approval", "filled"][n % 4];
    json!({
        "id": format!("{}", 1000 + n),
        "title": TITLES[n % TITLES.len()],
        "status": status,
        "positions": format!("{}", 1 + n % 2),
        "department": "Operations",
        "time-zone": ZONES[n % ZONES.len()],
        "start-date": "2027-01-11",
        "end-date": "2027-07-09",
        "bill-rate": {"amount": bill(n), "currency": CURRENCIES[n % CURRENCIES.len()], "unit": "Hourly"},
        "created-at": at(n),
        "updated-at": at(n),
    })
}

fn candidate(n: usize) -> Value {
    let (first, last) = PEOPLE[n % PEOPLE.len()];
    let status = ["new", "reviewed", "interview", "offered", "rejected"][n % 5];
    let job = n % JOB_REQUESTS + 1;
    json!({
        "id": 5000 + n,
        "job-request-id": 1000 + job,
        "first-name": first,
        "last-name": format!("{last}{n}"),
        "email": format!("{}.{}{n}@agency.example", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+44 20 7946 {:04}", 100 + n),
        "supplier-reference": format!("agency-{n}"),
        "bill-rate": {"amount": bill(job), "currency": CURRENCIES[job % CURRENCIES.len()], "unit": "Hourly"},
        "available-date": "2027-01-11",
        "status": status,
        "created-at": at(100 + n),
        "updated-at": at(110 + n),
    })
}

fn worker(n: usize) -> Value {
    let (first, last) = PEOPLE[(n + 1) % PEOPLE.len()];
    json!({
        "id": 7000 + n,
        "first-name": first,
        "last-name": format!("{last}{n}"),
        "email": format!("{}.{}{n}@contractor.example", first.to_lowercase(), last.to_lowercase()),
        "status": if n % 5 == 4 { "inactive" } else { "active" },
        "candidate-id": 5000 + n,
        "time-zone": ZONES[n % ZONES.len()],
        "start-date": "2026-11-02",
        "updated-at": at(200 + n),
    })
}

fn row(columns: &[&str], values: Vec<String>) -> Value {
    let record: Map<String, Value> = columns
        .iter()
        .map(|column| (*column).to_owned())
        .zip(values.into_iter().map(Value::String))
        .collect();
    Value::Object(record)
}

fn work_confirmation(n: usize) -> Value {
    let status = ["Active", "Active", "Pending", "Ended"][n % 4];
    row(
        WORK_CONFIRMATION_COLUMNS,
        vec![
            format!("WC-{:05}", n),
            format!("{}", 1000 + n),
            format!("{}", 7000 + n),
            status.to_owned(),
            "2026-11-02".to_owned(),
            "2027-04-30".to_owned(),
            CURRENCIES[n % CURRENCIES.len()].to_owned(),
            pay(n),
            bill(n),
            "Hourly".to_owned(),
            ZONES[n % ZONES.len()].to_owned(),
            at(300 + n),
        ],
    )
}

fn timesheet(n: usize, week: usize) -> Value {
    let index = n * 2 + week;
    let status = ["Approved", "Approved", "Submitted", "Rejected"][index % 4];
    let (start, end) = if week == 0 {
        ("2026-11-02", "2026-11-08")
    } else {
        ("2026-11-09", "2026-11-15")
    };
    let approved = status == "Approved";
    row(
        TIMESHEET_COLUMNS,
        vec![
            format!("TS-{:05}", index),
            format!("{}", 7000 + n),
            format!("WC-{:05}", n),
            status.to_owned(),
            start.to_owned(),
            end.to_owned(),
            ZONES[n % ZONES.len()].to_owned(),
            "37.5".to_owned(),
            if index.is_multiple_of(3) { "3" } else { "0" }.to_owned(),
            CURRENCIES[n % CURRENCIES.len()].to_owned(),
            pay(n),
            format!("{}.50", 67 + (n % 4) * 10),
            bill(n),
            format!("{}.00", 90 + (n % 4) * 15),
            if approved {
                at(400 + index)
            } else {
                String::new()
            },
            if approved { "Kim Approver" } else { "" }.to_owned(),
            at(420 + index),
        ],
    )
}

pub fn records() -> BTreeMap<String, Vec<Value>> {
    BTreeMap::from([
        (
            "job_requests".to_owned(),
            (1..=JOB_REQUESTS).map(job_request).collect(),
        ),
        (
            "candidates".to_owned(),
            (1..=CANDIDATES).map(candidate).collect(),
        ),
        (
            "workers".to_owned(),
            (1..=WORK_CONFIRMATIONS).map(worker).collect(),
        ),
        (
            "work_confirmations".to_owned(),
            (1..=WORK_CONFIRMATIONS).map(work_confirmation).collect(),
        ),
        (
            "timesheets".to_owned(),
            (1..=WORK_CONFIRMATIONS)
                .flat_map(|n| [timesheet(n, 0), timesheet(n, 1)])
                .collect(),
        ),
    ])
}

/// A job request whose rate has no currency (the mapping refuses it), a work confirmation row
/// without its id (the connector refuses it) and a timesheet row whose status Coupa never
/// writes (the mapping refuses it).
pub fn malformed() -> BTreeMap<String, Vec<Value>> {
    let now = now_rfc3339();
    let mut no_currency = job_request(90);
    no_currency["bill-rate"] = json!({"amount": "70.00", "currency": "", "unit": "Hourly"});
    no_currency["updated-at"] = json!(now);
    let mut no_id = work_confirmation(90);
    no_id["Work Confirmation ID"] = json!("");
    no_id["Updated At"] = json!(now);
    let mut odd_status = timesheet(90, 0);
    odd_status["Status"] = json!("Lost");
    odd_status["Updated At"] = json!(now);
    BTreeMap::from([
        ("job_requests".to_owned(), vec![no_currency]),
        ("work_confirmations".to_owned(), vec![no_id]),
        ("timesheets".to_owned(), vec![odd_status]),
    ])
}
