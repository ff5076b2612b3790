//! The Beeline world at start, made deterministically: requisitions of one client site,
//! candidates suppliers submitted, assignments engaging workers, and two weekly timesheets per
//! assignment with daily entries and pay and bill charges. Times are RFC 3339 UTC in November
//! 2026, a minute apart; ids are numbers, as Beeline's are.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::vms::now_rfc3339;

pub const REQUISITIONS: usize = 20;
pub const CANDIDATES: usize = 12;
pub const ASSIGNMENTS: usize = 15;

const TITLES: [&str; 5] = [
    "Warehouse Associate",
    "Registered Nurse",
    "Payroll Specialist",
    "Forklift Operator",
    "Help Desk Technician",
];
const LOCATIONS: [(&str, &str, &str); 3] = [
    ("Jacksonville", "FL", "America/New_York"),
    ("Dallas", "TX", "America/Chicago"),
    ("Denver", "CO", "America/Denver"),
];
const PEOPLE: [(&str, &str); 5] = [
    ("Maria", "Garcia"),
    ("James", "Smith"),
    ("Aisha", "Khan"),
    ("Wei", "Chen"),
    ("Olu", "Adeyemi"),
];

fn at(minutes: usize) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-03T14:00:00Z")
        .map(|time| time.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    (start + chrono::Duration::minutes(minutes as i64))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn money(amount: String) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

fn bill(n: usize) -> String {
    format!("{}.00", 32 + (n % 5) * 6)
}

fn pay(n: usize) -> String {
    format!("{}.00", 22 + (n % 5) * 4)
}

pub fn requisition(n: usize) -> Value {
    let (city, state, zone) = LOCATIONS[n % LOCATIONS.len()];
    let status = ["OPEN", "OPEN", "OPEN", "FILLED", "CLOSED"][n % 5];
    json!({
        "id": 100_000 + n,
        "title": TITLES[n % TITLES.len()],
        "status": status,
        "siteId": super::SITE_ID,
        "location": {"city": city, "stateProvince": state, "countryCode": "US", "timeZone": zone},
        "numberOfPositions": 1 + n % 4,
        "startDate": "2026-12-07",
        "endDate": "2027-03-26",
        "billRateMax": money(bill(n)),
        "rateType": "HOURLY",
        "created": at(n),
        "lastModified": at(n),
    })
}

fn candidate(n: usize) -> Value {
    let (first, last) = PEOPLE[n % PEOPLE.len()];
    let status = [
        "SUBMITTED",
        "SHORTLISTED",
        "INTERVIEW",
        "OFFER",
        "HIRED",
        "DECLINED",
    ][n % 6];
    json!({
        "id": 200_000 + n,
        "requisitionId": 100_000 + (n % REQUISITIONS) + 1,
        "firstName": first,
        "lastName": format!("{last}{n}"),
        "email": format!("{}.{}{n}@staffing.example", first.to_lowercase(), last.to_lowercase()),
        "phone": format!("+1 904 555 {:04}", 3000 + n),
        "supplierCandidateId": format!("supplier-{n}"),
        "billRate": money(bill(n)),
        "rateType": "HOURLY",
        "availableStartDate": "2026-12-07",
        "status": status,
        "submittedAt": at(100 + n),
        "lastModified": at(110 + n),
    })
}

fn assignment(n: usize) -> Value {
    let status = ["ACTIVE", "ACTIVE", "PENDING_START", "ENDED"][n % 4];
    json!({
        "id": 300_000 + n,
        "requisitionId": 100_000 + n,
        "workerId": 400_000 + n,
        "candidateId": 200_000 + n,
        "status": status,
        "startDate": "2026-11-02",
        "endDate": "2027-02-26",
        "payRate": money(pay(n)),
        "billRate": money(bill(n)),
        "rateType": "HOURLY",
        "payFrequency": "WEEKLY",
        "timeZone": LOCATIONS[n % LOCATIONS.len()].2,
        "lastModified": at(200 + n),
    })
}

fn worker(n: usize) -> Value {
    let (first, last) = PEOPLE[(n + 2) % PEOPLE.len()];
    let status = if n % 4 == 3 { "OFFBOARDED" } else { "ACTIVE" };
    json!({
        "id": 400_000 + n,
        "firstName": first,
        "lastName": format!("{last}{n}"),
        "email": format!("{}.{}{n}@worker.example", first.to_lowercase(), last.to_lowercase()),
        "status": status,
        "workerType": "CONTINGENT",
        "candidateId": 200_000 + n,
        "employeeNumber": format!("BL-{n:05}"),
        "startDate": "2026-11-02",
        "timeZone": LOCATIONS[n % LOCATIONS.len()].2,
        "lastModified": at(300 + n),
    })
}

/// Timesheet `week` (0 or 1) of assignment `n`: five eight-hour days, overtime on Fridays of
/// every third one, and the pay and bill charges the client's rules computed.
fn timesheet(n: usize, week: usize) -> Value {
    let index = n * 2 + week;
    let status = ["APPROVED", "APPROVED", "SUBMITTED", "DRAFT", "REJECTED"][index % 5];
    let first_day = 2 + week * 7;
    let overtime = index.is_multiple_of(3);
    let mut entries: Vec<Value> = (0..5)
        .map(|day| json!({"date": format!("2026-11-{:02}", first_day + day), "hours": "8", "payCode": "REG"}))
        .collect();
    if overtime {
        entries.push(
            json!({"date": format!("2026-11-{:02}", first_day + 4), "hours": "2", "payCode": "OT"}),
        );
    }
    let (pay_rate, bill_rate) = (pay(n), bill(n));
    let rate =
        |text: &str, factor: f64| format!("{:.2}", text.parse::<f64>().unwrap_or(0.0) * factor);
    let charge = |kind: &str, code: &str, hours: f64, rate: String| {
        let amount = format!("{:.2}", rate.parse::<f64>().unwrap_or(0.0) * hours);
        json!({"kind": kind, "payCode": code, "quantity": format!("{hours}"), "rate": rate, "amount": amount, "currency": "USD"})
    };
    let mut charges = vec![
        charge("PAY", "REG", 40.0, pay_rate.clone()),
        charge("BILL", "REG", 40.0, bill_rate.clone()),
    ];
    if overtime {
        charges.push(charge("PAY", "OT", 2.0, rate(&pay_rate, 1.5)));
        charges.push(charge("BILL", "OT", 2.0, rate(&bill_rate, 1.5)));
    }
    let approved = status == "APPROVED";
    json!({
        "id": 600_000 + index,
        "assignmentId": 300_000 + n,
        "workerId": 400_000 + n,
        "status": status,
        "weekStart": format!("2026-11-{:02}", first_day),
        "weekEnd": format!("2026-11-{:02}", first_day + 6),
        "timeZone": LOCATIONS[n % LOCATIONS.len()].2,
        "entries": entries,
        "totalHours": if overtime { "42" } else { "40" },
        "charges": charges,
        "submittedAt": if status == "DRAFT" { Value::Null } else { json!(at(400 + index)) },
        "approvedAt": if approved { json!(at(420 + index)) } else { Value::Null },
        "approvedBy": if approved { json!("Lee Supervisor") } else { Value::Null },
        "lastModified": at(440 + index),
    })
}

pub fn records() -> BTreeMap<String, Vec<Value>> {
    BTreeMap::from([
        (
            "requisitions".to_owned(),
            (1..=REQUISITIONS).map(requisition).collect(),
        ),
        (
            "candidates".to_owned(),
            (1..=CANDIDATES).map(candidate).collect(),
        ),
        (
            "assignments".to_owned(),
            (1..=ASSIGNMENTS).map(assignment).collect(),
        ),
        (
            "workers".to_owned(),
            (1..=ASSIGNMENTS).map(worker).collect(),
        ),
        (
            "timesheets".to_owned(),
            (1..=ASSIGNMENTS)
                .flat_map(|n| [timesheet(n, 0), timesheet(n, 1)])
                .collect(),
        ),
    ])
}

/// A requisition without an id (the connector refuses it), one whose rate has no currency and
/// a timesheet whose charge has none (the mappings refuse those).
pub fn malformed() -> BTreeMap<String, Vec<Value>> {
    let now = now_rfc3339();
    let mut no_id = requisition(90);
    no_id.as_object_mut().map(|r| r.remove("id"));
    no_id["lastModified"] = json!(now);
    let mut no_currency = requisition(91);
    no_currency["billRateMax"] = json!({"amount": "40.00"});
    no_currency["lastModified"] = json!(now);
    let mut sheet = timesheet(91, 0);
    sheet["charges"][0]["currency"] = json!("");
    sheet["lastModified"] = json!(now);
    BTreeMap::from([
        ("requisitions".to_owned(), vec![no_id, no_currency]),
        ("timesheets".to_owned(), vec![sheet]),
    ])
}
