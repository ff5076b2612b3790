//! Greenhouse records built from Greenhouse's own sample payloads.
//!
//! Each stream's first documented list sample is the template; generated records keep every
//! field and shape of it and vary ids, names, e-mail addresses, links between records and
//! timestamps, deterministically from a seed. `updated_at` values are spread over 2025 at
//! second resolution, and several records share one, as real data does.

use std::path::Path;

use serde_json::{Value, json};

use super::{Counts, Error};

/// The sample files used as templates, in `shared/partners/greenhouse/harvest`.
pub const CANDIDATE_SAMPLE: &str = "harvest__candidates__get-list-candidates__1.json";
pub const JOB_SAMPLE: &str = "harvest__jobs__get-list-jobs__1.json";
pub const APPLICATION_SAMPLE: &str = "harvest__applications__get-list-applications__1.json";

/// 2025-01-01T00:00:00Z: seeded records are older than any test run.
const SEED_EPOCH_SECONDS: i64 = 1_735_689_600;

const FIRST_NAMES: [&str; 12] = [
    "Amara", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Keira",
    "Luis",
];
const LAST_NAMES: [&str; 12] = [
    "Okafor", "Schmidt", "Nguyen", "Patel", "Rossi", "Haddad", "Kim", "Tanaka", "Murphy", "Berg",
    "Walsh", "Garcia",
];
const JOB_NAMES: [&str; 6] = [
    "Registered Nurse",
    "Forklift Operator",
    "Java Developer",
    "Payroll Specialist",
    "Data Analyst",
    "Electrician",
];
const JOB_STATUSES: [&str; 3] = ["open", "closed", "draft"];
const APPLICATION_STATUSES: [&str; 3] = ["active", "rejected", "hired"];

/// The sample records the generator starts from.
#[derive(Debug, Clone)]
pub struct Samples {
    pub candidate: Value,
    pub job: Value,
    pub application: Value,
}

impl Samples {
    pub fn load(dir: &Path) -> Result<Samples, Error> {
        let first = |file: &str| -> Result<Value, Error> {
            let path = dir.join(file);
            let fail = |reason: String| Error::Samples {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
            let list: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
            list.get(0)
                .filter(|record| record.is_object())
                .cloned()
                .ok_or_else(|| fail("expected a list of objects".to_owned()))
        };
        Ok(Samples {
            candidate: first(CANDIDATE_SAMPLE)?,
            job: first(JOB_SAMPLE)?,
            application: first(APPLICATION_SAMPLE)?,
        })
    }
}

/// Generated records, each list sorted by id.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub candidates: Vec<Value>,
    pub jobs: Vec<Value>,
    pub applications: Vec<Value>,
}

/// splitmix64: the same seed gives the same records everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }

    /// A 2025 timestamp; one in four repeats the previous one, as busy accounts do.
    fn time(&mut self, previous: &mut i64) -> String {
        if *previous == 0 || self.below(4) != 0 {
            *previous = SEED_EPOCH_SECONDS + self.below(360 * 86_400) as i64;
        }
        seconds_to_rfc3339(*previous)
    }
}

pub fn seconds_to_rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub fn generate(samples: &Samples, counts: Counts, seed: u64) -> Dataset {
    let mut rng = Rng(seed);
    let mut previous = 0;
    let jobs: Vec<Value> = (0..counts.jobs)
        .map(|index| {
            let mut job = samples.job.clone();
            let time = rng.time(&mut previous);
            job["id"] = json!(4_000 + index as i64);
            job["name"] = json!(JOB_NAMES[rng.below(JOB_NAMES.len())]);
            job["requisition_id"] = json!(format!("REQ-{:04}", index + 1));
            job["status"] = json!(JOB_STATUSES[rng.below(JOB_STATUSES.len())]);
            job["created_at"] = json!(time);
            job["updated_at"] = json!(time);
            job
        })
        .collect();
    let candidates: Vec<Value> = (0..counts.candidates)
        .map(|index| {
            let mut candidate = samples.candidate.clone();
            let first = FIRST_NAMES[rng.below(FIRST_NAMES.len())];
            let last = LAST_NAMES[rng.below(LAST_NAMES.len())];
            let time = rng.time(&mut previous);
            candidate["id"] = json!(50_000_000 + index as i64);
            candidate["first_name"] = json!(first);
            candidate["last_name"] = json!(last);
            candidate["email_addresses"] = json!([{
                "value": format!("{}.{}{index}@example.com", first.to_lowercase(), last.to_lowercase()),
                "type": "personal"
            }]);
            candidate["created_at"] = json!(time);
            candidate["updated_at"] = json!(time);
            candidate["last_activity"] = json!(time);
            candidate
        })
        .collect();
    let applications: Vec<Value> = (0..counts.applications)
        .map(|index| {
            let mut application = samples.application.clone();
            let time = rng.time(&mut previous);
            let candidate = &candidates[rng.below(candidates.len())];
            let job = &jobs[rng.below(jobs.len())];
            application["id"] = json!(70_000_000 + index as i64);
            application["candidate_id"] = candidate["id"].clone();
            application["jobs"] = json!([{"id": job["id"], "name": job["name"]}]);
            application["status"] =
                json!(APPLICATION_STATUSES[rng.below(APPLICATION_STATUSES.len())]);
            application["applied_at"] = json!(time);
            application["last_activity_at"] = json!(time);
            application
        })
        .collect();
    Dataset {
        candidates,
        jobs,
        applications,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_keeps_the_sample_shape() {
        let samples = Samples {
            candidate: json!({"id": 1, "first_name": "J", "tags": ["x"], "updated_at": ""}),
            job: json!({"id": 2, "name": "n", "departments": []}),
            application: json!({"id": 3, "candidate_id": 1, "jobs": []}),
        };
        let counts = Counts {
            candidates: 5,
            jobs: 2,
            applications: 4,
        };
        let one = generate(&samples, counts, 7);
        let two = generate(&samples, counts, 7);
        assert_eq!(one.candidates, two.candidates);
        assert_eq!(one.candidates.len(), 5);
        assert_eq!(one.candidates[0]["tags"], json!(["x"]));
        assert!(one.jobs[1]["departments"].is_array());
        let ids: Vec<i64> = one
            .candidates
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(seconds_to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
