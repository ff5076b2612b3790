//! The Greenhouse sandbox's mutable world: records per stream, faults, budget and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::GreenhouseOptions;
use super::seed::{self, Samples};

pub type Shared = Arc<Sandbox>;

pub struct Sandbox {
    pub options: GreenhouseOptions,
    world: Mutex<World>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub rate_limit_burst: u32,
    pub retry_after_seconds: u64,
    pub server_error_burst: u32,
    pub malformed: bool,
    /// The test fixture's deleted-records endpoint answers 422 while set.
    pub deleted_endpoint_fails: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub stream_requests: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub writes: u64,
}

pub struct World {
    /// Records by stream, sorted by id.
    pub records: HashMap<&'static str, Vec<Value>>,
    /// Malformed candidates served while the fault is on.
    pub malformed: Vec<Value>,
    pub faults: Faults,
    /// Start and count of the current rate-limit window.
    pub window: (Instant, u32),
    pub stats: Stats,
    /// Candidates deleted through the admin API: `(id, deleted at)`, for the test fixture's
    /// deleted-records endpoint ([`super::fixture`]).
    pub deleted: Vec<(Value, String)>,
    /// The last webhook delivery sent, `(headers, body)`, so a test can have it sent again.
    pub last_delivery: Option<(Value, String)>,
}

impl Sandbox {
    pub fn new(options: GreenhouseOptions, samples: &Samples) -> Sandbox {
        let data = seed::generate(samples, options.counts, options.seed);
        let records = HashMap::from([
            ("candidates", data.candidates),
            ("jobs", data.jobs),
            ("applications", data.applications),
        ]);
        Sandbox {
            options,
            world: Mutex::new(World {
                records,
                malformed: Vec::new(),
                faults: Faults::default(),
                window: (Instant::now(), 0),
                stats: Stats::default(),
                deleted: Vec::new(),
                last_delivery: None,
            }),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // Plain data: a panic while holding the lock leaves nothing half-written worth dying for.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The field each stream's incremental filter reads.
pub fn cursor_field(stream: &str) -> &'static str {
    if stream == "applications" {
        "last_activity_at"
    } else {
        "updated_at"
    }
}

impl World {
    /// Removes candidates for good and remembers when; returns the removed records.
    pub fn delete_candidates(&mut self, ids: &[Value]) -> Vec<Value> {
        let now = now_rfc3339();
        let candidates = self.records.entry("candidates").or_default();
        let (gone, kept): (Vec<Value>, Vec<Value>) = std::mem::take(candidates)
            .into_iter()
            .partition(|candidate| ids.contains(&candidate["id"]));
        *candidates = kept;
        for candidate in &gone {
            self.deleted.push((candidate["id"].clone(), now.clone()));
        }
        gone
    }

    pub fn set_malformed(&mut self, on: bool) {
        self.faults.malformed = on;
        self.malformed.clear();
        if on {
            let now = now_rfc3339();
            self.malformed = vec![
                json!({"first_name": "Nobody", "last_name": "Without-Id", "updated_at": now}),
                json!({"id": {"nested": true}, "first_name": "Odd", "last_name": "Id", "updated_at": now}),
            ];
        }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
