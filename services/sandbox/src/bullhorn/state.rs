//! The sandbox's mutable world: records, OAuth codes and tokens, sessions, faults and counters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use super::SandboxOptions;
use super::filter::Condition;
use super::index::{Page, SortedIndex};
use super::seed;

pub type Shared = Arc<Sandbox>;

/// One sandbox instance: its options and its state behind one lock (every critical section is
/// a few map operations, never an await).
pub struct Sandbox {
    pub options: SandboxOptions,
    world: Mutex<World>,
}

/// Faults armed through `POST /_sandbox/faults`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    /// Entity requests still to be answered with 429.
    pub rate_limit_burst: u32,
    /// `Retry-After` seconds sent with those 429s.
    pub retry_after_seconds: u64,
    /// Entity requests still to be answered with 500.
    pub server_error_burst: u32,
    /// Whether malformed Candidate records are mixed into results.
    pub malformed: bool,
    /// A daily request quota, when armed: refused requests answer 429 with a `Retry-After`
    /// of the time left until the quota resets (hours, for a real daily quota).
    pub quota: Option<Quota>,
    /// Milliseconds every entity request takes, for tests that need a run to last.
    pub delay_ms: u64,
}

/// `limit` entity requests per window of `reset_seconds`, the first window starting when armed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quota {
    pub limit: u32,
    pub reset_seconds: u64,
    pub used: u32,
    /// Epoch second the current window started.
    pub window_started: u64,
}

impl Quota {
    /// Counts one request at `now` (epoch seconds); `Err` with the seconds until the reset
    /// when the window's quota is used up.
    pub fn take(&mut self, now: u64) -> Result<(), u64> {
        let resets_at = self.window_started.saturating_add(self.reset_seconds);
        if now >= resets_at {
            self.window_started = now;
            self.used = 0;
        }
        if self.used >= self.limit {
            return Err(self
                .window_started
                .saturating_add(self.reset_seconds)
                .saturating_sub(now)
                .max(1));
        }
        self.used += 1;
        Ok(())
    }
}

/// Counters served by `GET /_sandbox/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub entity_requests: BTreeMap<String, u64>,
    pub rate_limited: u64,
    /// Entity requests refused because the daily quota was used up.
    pub quota_refused: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub authorizations: u64,
    pub token_exchanges: u64,
    pub logins: u64,
}

pub struct World {
    /// Well-formed records by entity, sorted by id; changed only through [`World::records_mut`],
    /// which drops the sorted indexes built over them.
    records: HashMap<&'static str, Vec<Value>>,
    /// Malformed Candidate records, present while the `malformed` fault is on.
    pub malformed: Vec<Value>,
    /// Per entity and sort order, the records (and injected ones) in that order.
    sorted: HashMap<(String, Vec<(String, bool)>), SortedIndex>,
    pub codes: HashMap<String, Instant>,
    pub access_tokens: HashMap<String, Instant>,
    pub refresh_tokens: HashSet<String>,
    pub sessions: HashMap<String, Instant>,
    pub faults: Faults,
    /// Start (epoch second) and request count of the current rate-limit window.
    pub window: (u64, u32),
    pub stats: Stats,
}

impl Sandbox {
    pub fn new(options: SandboxOptions) -> Sandbox {
        let data = seed::generate(options.counts, options.seed);
        let records = HashMap::from([
            ("JobOrder", data.job_orders),
            ("Candidate", data.candidates),
            ("JobSubmission", data.submissions),
            ("Placement", data.placements),
        ]);
        Sandbox {
            options,
            world: Mutex::new(World {
                records,
                malformed: Vec::new(),
                sorted: HashMap::new(),
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                refresh_tokens: HashSet::new(),
                sessions: HashMap::new(),
                faults: Faults::default(),
                window: (0, 0),
                stats: Stats::default(),
            }),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl World {
    /// The well-formed records of `entity`, by id.
    pub fn records(&self, entity: &str) -> Option<&Vec<Value>> {
        self.records.get(entity)
    }

    /// The records of `entity`, to change them; the sorted indexes are rebuilt when next asked.
    pub fn records_mut(&mut self, entity: &str) -> Option<&mut Vec<Value>> {
        self.sorted.clear();
        self.records.get_mut(entity)
    }

    /// The page `start..start + count` of `entity`'s records (with the injected malformed
    /// ones for Candidate) matching `conditions`, in `sort` order.
    pub fn query(
        &mut self,
        entity: &str,
        conditions: &[Condition],
        sort: &[(String, bool)],
        start: usize,
        count: usize,
    ) -> Page<'_> {
        let injected = if entity == "Candidate" {
            self.malformed.as_slice()
        } else {
            &[]
        };
        let records: Vec<&Value> = self
            .records
            .get(entity)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .chain(injected)
            .collect();
        let index = self
            .sorted
            .entry((entity.to_owned(), sort.to_vec()))
            .or_insert_with(|| SortedIndex::build(&records, sort));
        index.page(&records, conditions, sort, start, count)
    }

    pub fn set_malformed(&mut self, on: bool) {
        self.sorted.clear();
        self.faults.malformed = on;
        self.malformed.clear();
        if on {
            let now = now_millis();
            self.malformed = vec![
                json!({
                    "firstName": "Nobody",
                    "lastName": "Without-Id",
                    "email": "no.id@example.com",
                    "dateLastModified": now,
                }),
                json!({
                    "id": 99_001,
                    "firstName": "Wrong",
                    "lastName": "Types",
                    "name": "Wrong Types",
                    "email": 12345,
                    "dateOfBirth": "yesterday",
                    "dateLastModified": now,
                }),
            ];
        }
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// A fresh random token.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_refuses_until_its_window_resets() {
        let mut quota = Quota {
            limit: 2,
            reset_seconds: 3600,
            used: 0,
            window_started: 1_000,
        };
        assert_eq!(quota.take(1_000), Ok(()));
        assert_eq!(quota.take(1_001), Ok(()));
        assert_eq!(
            quota.take(1_600),
            Err(3_000),
            "the wait is the time left in the window"
        );
        assert_eq!(quota.take(4_600), Ok(()), "a new window");
        assert_eq!(quota.used, 1);
    }
}
