//! Deterministic generation of Bullhorn records.
//!
//! Field names and shapes follow Bullhorn's entity tables and documented samples: to-one
//! associations as `{id, ...}` objects, addresses as `{address1, address2, city, state, zip,
//! countryID}`, timestamps as epoch milliseconds. `dateLastModified` values are spread over
//! 2025 at second resolution and several records share one value, as real data does.

use serde_json::{Value, json};

/// How many records of each entity to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedCounts {
    pub job_orders: usize,
    pub candidates: usize,
    pub submissions: usize,
    /// Capped by `submissions`: every placement comes from a submission.
    pub placements: usize,
}

impl Default for SeedCounts {
    fn default() -> SeedCounts {
        SeedCounts {
            job_orders: 40,
            candidates: 150,
            submissions: 200,
            placements: 40,
        }
    }
}

/// The generated records of every entity, each sorted by id.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub job_orders: Vec<Value>,
    pub candidates: Vec<Value>,
    pub submissions: Vec<Value>,
    pub placements: Vec<Value>,
}

/// 2025-01-01T09:00:00Z in epoch milliseconds: seeded records are older than any test run.
pub const SEED_EPOCH_MILLIS: i64 = 1_735_722_000_000;

const FIRST_NAMES: [&str; 24] = [
    "Amara", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Keira",
    "Luis", "Maya", "Nikolai", "Olivia", "Priya", "Quinn", "Rafael", "Sofia", "Tomasz", "Uma",
    "Viktor", "Wen", "Yusuf",
];
const LAST_NAMES: [&str; 24] = [
    "Okafor", "Schmidt", "Nguyen", "Patel", "Rossi", "Haddad", "Kim", "Tanaka", "Murphy", "Berg",
    "Walsh", "Garcia", "Cohen", "Ivanov", "Smith", "Sharma", "Dubois", "Silva", "Moreau",
    "Kowalski", "Mensah", "Novak", "Zhang", "Demir",
];
const CITIES: [(&str, &str, &str); 10] = [
    ("Boston", "MA", "02110"),
    ("Chicago", "IL", "60601"),
    ("Austin", "TX", "73301"),
    ("Denver", "CO", "80202"),
    ("Seattle", "WA", "98101"),
    ("Atlanta", "GA", "30303"),
    ("Phoenix", "AZ", "85004"),
    ("Columbus", "OH", "43215"),
    ("Sacramento", "CA", "95814"),
    ("Raleigh", "NC", "27601"),
];
const STREETS: [&str; 8] = [
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Park Blvd",
    "Lake Rd",
    "Elm St",
    "Hill Ct",
];
const TITLES: [(&str, &str); 12] = [
    ("Registered Nurse", "Nursing, Patient Care, BLS"),
    ("Forklift Operator", "Forklift, OSHA, Inventory"),
    ("Java Developer", "Java, Spring, SQL"),
    ("Payroll Specialist", "ADP, Payroll, Excel"),
    ("Warehouse Associate", "Picking, Packing, RF Scanner"),
    ("Project Manager", "PMP, Agile, Budgeting"),
    ("Data Analyst", "SQL, Python, Tableau"),
    ("Customer Service Representative", "CRM, Phones, Data Entry"),
    ("Electrician", "NEC, Conduit, Troubleshooting"),
    ("Accounts Payable Clerk", "AP, Invoicing, SAP"),
    ("Medical Assistant", "EMR, Vitals, Scheduling"),
    ("DevOps Engineer", "Kubernetes, Terraform, CI/CD"),
];
const CLIENTS: [(i64, &str); 8] = [
    (801, "Northwind Logistics"),
    (802, "Contoso Health"),
    (803, "Globex Manufacturing"),
    (804, "Initech Software"),
    (805, "Umbrella Pharma"),
    (806, "Stark Energy"),
    (807, "Wayne Retail Group"),
    (808, "Acme Staffing Partners"),
];
const OWNERS: [(i64, &str, &str); 4] = [
    (11, "Dana", "Recruiter"),
    (12, "Sam", "Account-Manager"),
    (13, "Lee", "Sourcer"),
    (14, "Alex", "Branch-Lead"),
];
const SUBMISSION_STATUSES: [&str; 5] = [
    "Submitted",
    "Client Submission",
    "Interview Scheduled",
    "Offer Extended",
    "Rejected",
];

/// A small deterministic generator (splitmix64): the same seed yields the same dataset on
/// every platform, which tests and the dev demo rely on.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }

    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1).max(1) as u64) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Generates the dataset for `counts` from `seed`.
pub fn generate(counts: SeedCounts, seed: u64) -> Dataset {
    let mut rng = Rng(seed);
    let job_orders = job_orders(&mut rng, counts.job_orders);
    let candidates = candidates(&mut rng, counts.candidates);
    let mut submissions = submissions(&mut rng, counts.submissions, &job_orders, &candidates);
    let placements = placements(&mut rng, counts.placements, &mut submissions);
    Dataset {
        job_orders,
        candidates,
        submissions,
        placements,
    }
}

/// `count` modification times, at second resolution, about a fifth of them shared with the
/// previous one, shuffled so that id order and time order differ.
fn timeline(rng: &mut Rng, count: usize) -> Vec<i64> {
    let mut at = SEED_EPOCH_MILLIS + rng.range(0, 3 * 86_400) * 1000;
    let mut times = Vec::with_capacity(count);
    for index in 0..count {
        if index > 0 && !rng.chance(20) {
            at += rng.range(60, 2 * 86_400) * 1000;
        }
        times.push(at);
    }
    for index in (1..times.len()).rev() {
        let other = rng.below(index as u64 + 1) as usize;
        times.swap(index, other);
    }
    times
}

fn owner(rng: &mut Rng) -> Value {
    let (id, first, last) = *rng.pick(&OWNERS);
    json!({"id": id, "firstName": first, "lastName": last})
}

fn address(rng: &mut Rng) -> Value {
    let (city, state, zip) = *rng.pick(&CITIES);
    json!({
        "address1": format!("{} {}", rng.range(1, 9999), rng.pick(&STREETS)),
        "address2": "",
        "city": city,
        "state": state,
        "zip": zip,
        "countryID": 1,
    })
}

fn job_orders(rng: &mut Rng, count: usize) -> Vec<Value> {
    let times = timeline(rng, count);
    let mut records = Vec::with_capacity(count);
    for (index, modified) in times.into_iter().enumerate() {
        let (title, skills) = *rng.pick(&TITLES);
        let (client_id, client_name) = *rng.pick(&CLIENTS);
        let contract = rng.chance(70);
        let pay_rate = rng.range(18, 85);
        let added = modified - rng.range(0, 30 * 86_400) * 1000;
        let status = *rng.pick(&["Accepting Candidates", "Open", "Covered", "Closed"]);
        let contact_first = *rng.pick(&FIRST_NAMES);
        let contact_last = *rng.pick(&LAST_NAMES);
        let on_site = *rng.pick(&["On-Site", "Remote", "Hybrid"]);
        records.push(json!({
            "id": 2001 + index as i64,
            "title": title,
            "status": status,
            "isOpen": status != "Closed",
            "isDeleted": false,
            "employmentType": if contract { "Contract" } else { "Direct Hire" },
            "clientCorporation": {"id": client_id, "name": client_name},
            "clientContact": {
                "id": 5001 + rng.range(0, 60),
                "firstName": contact_first,
                "lastName": contact_last,
            },
            "owner": owner(rng),
            "address": address(rng),
            "onSite": on_site,
            "numOpenings": rng.range(1, 5),
            "payRate": pay_rate,
            "clientBillRate": (pay_rate as f64 * 1.45).round(),
            "salary": if contract { 0 } else { pay_rate * 2080 },
            "salaryUnit": if contract { "Per Hour" } else { "Per Year" },
            "hoursPerWeek": 40.0,
            "durationWeeks": if contract { rng.range(8, 52) as f64 } else { 0.0 },
            "startDate": modified + rng.range(7, 45) * 86_400_000,
            "skillList": skills,
            "description": format!("{title} for {client_name}. Required: {skills}."),
            "publicDescription": format!("We are hiring a {title}."),
            "dateAdded": added,
            "dateLastModified": modified,
        }));
    }
    records
}

fn candidates(rng: &mut Rng, count: usize) -> Vec<Value> {
    let times = timeline(rng, count);
    let mut records = Vec::with_capacity(count);
    for (index, modified) in times.into_iter().enumerate() {
        let id = 10_001 + index as i64;
        let first = *rng.pick(&FIRST_NAMES);
        let last = *rng.pick(&LAST_NAMES);
        let (title, skills) = *rng.pick(&TITLES);
        let hourly = rng.range(18, 90);
        let added = modified - rng.range(0, 120 * 86_400) * 1000;
        let status = *rng.pick(&["New Lead", "Active", "Available", "Placed"]);
        let employee_type = *rng.pick(&["W2", "1099", "C2C"]);
        let source = *rng.pick(&["LinkedIn", "Indeed", "Referral", "Website"]);
        records.push(json!({
            "id": id,
            "firstName": first,
            "lastName": last,
            "name": format!("{first} {last}"),
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), id),
            "mobile": format!("555-{:03}-{:04}", rng.range(200, 999), rng.range(0, 9999)),
            "phone": format!("555-{:03}-{:04}", rng.range(200, 999), rng.range(0, 9999)),
            "address": address(rng),
            "status": status,
            "occupation": title,
            "skillSet": skills,
            "experience": rng.range(0, 25),
            "employeeType": employee_type,
            "hourlyRate": hourly,
            "salary": hourly * 2080,
            "source": source,
            "willRelocate": rng.chance(30),
            "isDeleted": false,
            "owner": owner(rng),
            "dateAvailable": modified + rng.range(0, 60) * 86_400_000,
            "dateAdded": added,
            "dateLastModified": modified,
        }));
    }
    records
}

fn submissions(rng: &mut Rng, count: usize, jobs: &[Value], people: &[Value]) -> Vec<Value> {
    if jobs.is_empty() || people.is_empty() {
        return Vec::new();
    }
    let times = timeline(rng, count);
    let mut records = Vec::with_capacity(count);
    for (index, modified) in times.into_iter().enumerate() {
        let job = rng.pick(jobs);
        let person = rng.pick(people);
        let pay_rate = job["payRate"].as_i64().unwrap_or(30);
        let status = *rng.pick(&SUBMISSION_STATUSES);
        let source = *rng.pick(&["Web Response", "Recruiter", "Referral"]);
        records.push(json!({
            "id": 30_001 + index as i64,
            "candidate": {
                "id": person["id"],
                "firstName": person["firstName"],
                "lastName": person["lastName"],
            },
            "jobOrder": {"id": job["id"], "title": job["title"]},
            "status": status,
            "source": source,
            "payRate": pay_rate,
            "billRate": (pay_rate as f64 * 1.45).round(),
            "isDeleted": false,
            "isHidden": false,
            "sendingUser": owner(rng),
            "comments": format!("Submitted for {}", job["title"].as_str().unwrap_or("a job")),
            "dateAdded": modified - rng.range(0, 14 * 86_400) * 1000,
            "dateLastModified": modified,
        }));
    }
    records
}

/// Each placement comes from a distinct submission, which is marked `Placed`.
fn placements(rng: &mut Rng, count: usize, submissions: &mut [Value]) -> Vec<Value> {
    let count = count.min(submissions.len());
    let times = timeline(rng, count);
    let step = submissions
        .len()
        .checked_div(count.max(1))
        .unwrap_or(1)
        .max(1);
    let mut records = Vec::with_capacity(count);
    for (index, modified) in times.into_iter().enumerate() {
        let submission = &mut submissions[index * step];
        submission["status"] = json!("Placed");
        let pay_rate = submission["payRate"].as_i64().unwrap_or(30);
        let begin = modified + rng.range(1, 30) * 86_400_000;
        let employment = *rng.pick(&["Contract", "Temp", "Contract To Hire"]);
        let employee = *rng.pick(&["W2", "1099"]);
        let status = *rng.pick(&["Approved", "Submitted", "Completed", "Terminated"]);
        let reporter_first = *rng.pick(&FIRST_NAMES);
        let reporter_last = *rng.pick(&LAST_NAMES);
        let cost_center = format!("CC-{}", rng.range(100, 999));
        records.push(json!({
            "id": 4001 + index as i64,
            "candidate": submission["candidate"].clone(),
            "jobOrder": submission["jobOrder"].clone(),
            "jobSubmission": {"id": submission["id"]},
            "status": status,
            "employmentType": employment,
            "employeeType": employee,
            "dateBegin": begin,
            "dateEnd": begin + rng.range(8, 52) * 7 * 86_400_000,
            "payRate": pay_rate,
            "clientBillRate": (pay_rate as f64 * 1.45).round(),
            "salary": 0,
            "salaryUnit": "Per Hour",
            "fee": 0.0,
            "hoursPerDay": 8.0,
            "costCenter": cost_center,
            "reportTo": format!("{reporter_first} {reporter_last}"),
            "owner": owner(rng),
            "dateAdded": modified - rng.range(0, 7 * 86_400) * 1000,
            "dateLastModified": modified,
        }));
    }
    records
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::bullhorn::schema;

    #[test]
    fn same_seed_same_data_and_counts_hold() {
        let one = generate(SeedCounts::default(), 7);
        let two = generate(SeedCounts::default(), 7);
        assert_eq!(one.candidates, two.candidates);
        assert_eq!(one.placements, two.placements);
        assert_eq!(one.job_orders.len(), 40);
        assert_eq!(one.candidates.len(), 150);
        assert_eq!(one.submissions.len(), 200);
        assert_eq!(one.placements.len(), 40);
        assert_ne!(
            generate(SeedCounts::default(), 8).candidates,
            one.candidates
        );
    }

    #[test]
    fn every_generated_field_exists_in_bullhorns_tables() {
        let data = generate(SeedCounts::default(), 1);
        for (entity, records) in [
            ("JobOrder", &data.job_orders),
            ("Candidate", &data.candidates),
            ("JobSubmission", &data.submissions),
            ("Placement", &data.placements),
        ] {
            let fields = schema::fields(entity).unwrap();
            for record in records {
                for key in record.as_object().unwrap().keys() {
                    assert!(
                        fields.contains(key),
                        "{entity}.{key} is not a Bullhorn field"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_repeat_and_are_not_in_id_order() {
        let data = generate(SeedCounts::default(), 3);
        let times: Vec<i64> = data
            .candidates
            .iter()
            .map(|c| c["dateLastModified"].as_i64().unwrap())
            .collect();
        let distinct: HashSet<i64> = times.iter().copied().collect();
        assert!(
            distinct.len() < times.len(),
            "some timestamps must be shared"
        );
        assert!(
            times.windows(2).any(|w| w[0] > w[1]),
            "shuffled against ids"
        );
        assert!(
            times
                .iter()
                .all(|t| t % 1000 == 0 && *t >= SEED_EPOCH_MILLIS)
        );
    }

    #[test]
    fn placements_reference_placed_submissions() {
        let data = generate(SeedCounts::default(), 5);
        for placement in &data.placements {
            let id = &placement["jobSubmission"]["id"];
            let submission = data.submissions.iter().find(|s| &s["id"] == id).unwrap();
            assert_eq!(submission["status"], "Placed");
            assert_eq!(submission["candidate"], placement["candidate"]);
        }
    }
}
